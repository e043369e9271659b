package cluster

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// Headers of LEDGER_IN's messages.
const (
	// HeaderReply is the subject the integrator answers a LEDGER_IN
	// message on, once the commit carrying its spans is in
	// LEDGER_INTEGRATED.
	HeaderReply = "Logline-Reply"
)

// A LEDGER_IN message carries entries in a binary form (the answer's
// conventions: integers are unsigned varints, strings and byte strings a
// varint length then the bytes):
//
//	message = 'I' count entry*
//	entry   = kind:string tenant:string id:string this:string body:bytes
//
// body is the record's canonical JSON object, exactly as the gateway
// produced it (the integrator checks that it is JSON and stores it as
// given). The first form, a JSON array of
// {"kind","tenant","id","this","body"} objects, is still read.
type inEntry struct {
	Kind   string          `json:"kind,omitempty"`
	Tenant string          `json:"tenant"`
	ID     string          `json:"id,omitempty"`
	This   string          `json:"this,omitempty"`
	Body   json.RawMessage `json:"body"`
}

// encodeEntries is the payload of a LEDGER_IN message carrying entries.
func encodeEntries(entries []ledger.Entry) ([]byte, error) {
	n := 1 + binary.MaxVarintLen64
	for _, e := range entries {
		n += len(e.Kind) + len(e.Tenant) + len(e.ID) + len(e.This) + len(e.Body) + 5*binary.MaxVarintLen32
	}
	b := make([]byte, 0, n)
	b = append(b, 'I')
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = appendString(b, e.Kind)
		b = appendString(b, e.Tenant)
		b = appendString(b, e.ID)
		b = appendString(b, e.This)
		b = append(binary.AppendUvarint(b, uint64(len(e.Body))), e.Body...)
	}
	return b, nil
}

// decodeEntries reads a LEDGER_IN message's payload. The bodies are
// slices of data.
func decodeEntries(data []byte) ([]ledger.Entry, error) {
	if len(data) > 0 && data[0] == '[' {
		var in []inEntry
		if err := json.Unmarshal(data, &in); err != nil {
			return nil, fmt.Errorf("cluster: a %s message: %w", StreamIn, err)
		}
		out := make([]ledger.Entry, len(in))
		for i, e := range in {
			out[i] = ledger.Entry{Kind: e.Kind, Tenant: e.Tenant, ID: e.ID, This: e.This, Body: e.Body}
		}
		return out, nil
	}
	if len(data) == 0 || data[0] != 'I' {
		return nil, fmt.Errorf("cluster: a %s message: not entries", StreamIn)
	}
	r := wireReader{b: data[1:]}
	n := r.uvarint()
	if n > uint64(len(r.b))/5 { // each entry takes five bytes at least
		r.fail()
	}
	var out []ledger.Entry
	if r.err == nil {
		out = make([]ledger.Entry, n)
	}
	for i := range out {
		e := &out[i]
		e.Kind, e.Tenant, e.ID, e.This = r.string(), r.string(), r.string(), r.string()
		e.Body = r.bytes(r.uvarint())
		if r.err != nil {
			break
		}
		if !json.Valid(e.Body) {
			return nil, fmt.Errorf("cluster: a %s message: entry %d (%s/%s): the body is not JSON", StreamIn, i, e.Tenant, e.ID)
		}
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("cluster: a %s message: %w", StreamIn, r.err)
	}
	return out, nil
}

// The integrator's answer to a LEDGER_IN message: the results of its
// entries, in order, or the error that stopped them all. An answer is sent
// in parts of at most MaxReplyBytes (replyBytes), since the receipts of a
// message's entries can outgrow what one NATS message carries (1 MiB by
// default); the gateway puts them back together. A part is binary (JSON
// cost more than the rest of a request's path): integers are unsigned
// varints, strings and byte strings a varint length then the bytes,
// hashes their 32 bytes, times nanoseconds since 1970 as a varint; the
// fields a commit's receipts share are sent once per part.
//
//	part    = 'R' from total nbatch batch* nresult result*
//	batch   = op:string first size root:hash kid:string sig:bytes ts
//	result  = status:byte batch-index seq leaf:hash npath hash* span_id:string tenant:string jti:string
//	error   = 'E' message:string
//
// status is 'a' accepted, 'd' duplicate, 'c' conflict.

// MaxReplyBytes bounds one part of an answer: well under NATS's default
// maximum payload (a server configured with less bounds a part to half
// its maximum payload).
const MaxReplyBytes = 256 << 10

// replyBytes is the bound of an answer's part on a server whose maximum
// payload is maxPayload.
func replyBytes(maxPayload int64) int {
	return int(min(MaxReplyBytes, maxPayload/2))
}

var statusByte = map[ledger.Status]byte{ledger.Accepted: 'a', ledger.Duplicate: 'd', ledger.Conflict: 'c'}

// encodeReply returns the parts of the answer to a message whose entries
// had results res, or failed with err, each at most max bytes (or one
// result, if larger).
func encodeReply(res []ledger.Result, err error, max int) [][]byte {
	if err != nil {
		return [][]byte{appendString([]byte{'E'}, err.Error())}
	}
	var parts [][]byte
	for from := 0; from < len(res) || len(parts) == 0; {
		var batches, results []byte
		var nb, nr int
		index := map[uint64]int{} // batch first -> index in this part
		i := from
		for ; i < len(res); i++ {
			r := &res[i].Receipt
			at := len(results)
			k, ok := index[r.Batch.First]
			bat := len(batches)
			if !ok {
				k = nb
				batches = appendString(batches, r.Op)
				batches = binary.AppendUvarint(batches, r.Batch.First)
				batches = binary.AppendUvarint(batches, r.Batch.Size)
				batches = append(batches, r.Batch.Root[:]...)
				batches = appendString(batches, r.KID)
				batches = appendString(batches, string(r.Sig))
				batches = binary.AppendUvarint(batches, uint64(r.TS.UnixNano()))
			}
			results = append(results, statusByte[res[i].Status])
			results = binary.AppendUvarint(results, uint64(k))
			results = binary.AppendUvarint(results, r.Seq)
			results = append(results, r.Leaf[:]...)
			results = binary.AppendUvarint(results, uint64(len(r.Batch.Path)))
			for _, h := range r.Batch.Path {
				results = append(results, h[:]...)
			}
			results = appendString(results, r.SpanID)
			results = appendString(results, r.Tenant)
			results = appendString(results, r.JTI)
			if nr > 0 && 32+len(batches)+len(results) > max {
				results, batches = results[:at], batches[:bat] // this one starts the next part
				break
			}
			if !ok {
				index[r.Batch.First] = k
				nb++
			}
			nr++
		}
		b := []byte{'R'}
		b = binary.AppendUvarint(b, uint64(from))
		b = binary.AppendUvarint(b, uint64(len(res)))
		b = binary.AppendUvarint(b, uint64(nb))
		b = append(b, batches...)
		b = binary.AppendUvarint(b, uint64(nr))
		b = append(b, results...)
		parts = append(parts, b)
		from = i
	}
	return parts
}

// appendString appends s with its length.
func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// wireReader reads the binary forms of this file; the first error sticks.
type wireReader struct {
	b   []byte
	err error
}

func (r *wireReader) uvarint() uint64 {
	x, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return x
}

func (r *wireReader) bytes(n uint64) []byte {
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	x := r.b[:n:n]
	r.b = r.b[n:]
	return x
}

func (r *wireReader) string() string { return string(r.bytes(r.uvarint())) }

func (r *wireReader) hash() (h ledgerfmt.Hash) {
	copy(h[:], r.bytes(32))
	return h
}

func (r *wireReader) fail() {
	if r.err == nil {
		r.err = errors.New("truncated or malformed")
	}
	r.b = nil
}

// decodeReply reads one part of an answer to a message of n entries: the
// index of its first result and its results.
func decodeReply(data []byte, n int) (int, []ledger.Result, error) {
	if len(data) > 0 && data[0] == 'E' {
		r := wireReader{b: data[1:]}
		msg := r.string()
		if r.err != nil {
			return 0, nil, fmt.Errorf("cluster: the integrator's answer: %w", r.err)
		}
		return 0, nil, fmt.Errorf("%w: %s", ErrIntegrator, msg)
	}
	if len(data) == 0 || data[0] != 'R' {
		return 0, nil, errors.New("cluster: the integrator's answer: not an answer")
	}
	r := wireReader{b: data[1:]}
	from, total := r.uvarint(), r.uvarint()
	nb := r.uvarint()
	if nb > uint64(len(r.b)) {
		r.fail()
	}
	type shared struct {
		op, kid string
		ref     ledgerfmt.BatchRef
		sig     []byte
		ts      ledgerfmt.Timestamp
	}
	batches := make([]shared, nb)
	for i := range batches {
		b := &batches[i]
		b.op = r.string()
		b.ref.First, b.ref.Size = r.uvarint(), r.uvarint()
		b.ref.Root = r.hash()
		b.kid = r.string()
		b.sig = r.bytes(r.uvarint())
		b.ts = ledgerfmt.Timestamp{Time: time.Unix(0, int64(r.uvarint())).UTC()}
	}
	nr := r.uvarint()
	if r.err == nil && (total != uint64(n) || from > total || nr > total-from || nr == 0 && n > 0) {
		return 0, nil, fmt.Errorf("cluster: the integrator answered results [%d,+%d) of %d for %d entries", from, nr, total, n)
	}
	out := make([]ledger.Result, 0, nr)
	for range nr {
		if r.err != nil {
			break
		}
		var res ledger.Result
		switch st := r.bytes(1); {
		case len(st) == 0:
		case st[0] == 'a':
			res.Status = ledger.Accepted
		case st[0] == 'd':
			res.Status = ledger.Duplicate
		case st[0] == 'c':
			res.Status = ledger.Conflict
		default:
			return 0, nil, fmt.Errorf("cluster: the integrator answered status %q", st)
		}
		k := r.uvarint()
		if k >= nb {
			r.fail()
			break
		}
		b := &batches[k]
		rc := &res.Receipt
		rc.Op, rc.Batch, rc.KID, rc.Sig, rc.TS = b.op, b.ref, b.kid, b.sig, b.ts
		rc.Seq = r.uvarint()
		rc.Leaf = r.hash()
		if np := r.uvarint(); np > 0 {
			if np > uint64(len(r.b))/32 {
				r.fail()
				break
			}
			rc.Batch.Path = make([]ledgerfmt.Hash, np)
			for j := range rc.Batch.Path {
				rc.Batch.Path[j] = r.hash()
			}
		}
		rc.SpanID, rc.Tenant, rc.JTI = r.string(), r.string(), r.string()
		out = append(out, res)
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return 0, nil, fmt.Errorf("cluster: the integrator's answer: %w", r.err)
	}
	return int(from), out, nil
}
