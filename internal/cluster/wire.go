package cluster

import (
	"encoding/json"
	"fmt"

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

// inEntry is one entry of a LEDGER_IN message. A message is a JSON array
// of them:
//
//	[{"kind":"span","tenant":"t_bakery","id":"s_1","this":"order:1","body":{…}}, …]
//
// body is the record's canonical JSON object, exactly as the gateway
// produced it (the integrator stores it as given).
type inEntry struct {
	Kind   string          `json:"kind,omitempty"`
	Tenant string          `json:"tenant"`
	ID     string          `json:"id,omitempty"`
	This   string          `json:"this,omitempty"`
	Body   json.RawMessage `json:"body"`
}

// encodeEntries is the payload of a LEDGER_IN message carrying entries.
func encodeEntries(entries []ledger.Entry) ([]byte, error) {
	in := make([]inEntry, len(entries))
	for i, e := range entries {
		if !json.Valid(e.Body) {
			return nil, fmt.Errorf("cluster: entry %d (%s/%s): the body is not JSON", i, e.Tenant, e.ID)
		}
		in[i] = inEntry{Kind: e.Kind, Tenant: e.Tenant, ID: e.ID, This: e.This, Body: e.Body}
	}
	return json.Marshal(in)
}

// decodeEntries reads a LEDGER_IN message's payload.
func decodeEntries(data []byte) ([]ledger.Entry, error) {
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

// reply is one part of the integrator's answer to a LEDGER_IN message:
// the results of the entries from From on, in order, of Total in all; or
// the error that stopped them all. An answer is split in parts of at most
// MaxReplyBytes (replyBytes), since the receipts of a message's entries can outgrow
// what one NATS message carries (1 MiB by default); the gateway puts them
// back together.
//
//	{"from":0,"total":1700,"results":[{"status":"accepted","receipt":{…}}, …]}
//	{"error":"…"}
type reply struct {
	From    int           `json:"from"`
	Total   int           `json:"total"`
	Results []replyResult `json:"results,omitempty"`
	Error   string        `json:"error,omitempty"`
}

type replyResult struct {
	Status  string            `json:"status"`
	Receipt ledgerfmt.Receipt `json:"receipt"`
}

// MaxReplyBytes bounds one part of an answer: well under NATS's default
// maximum payload (a server configured with less bounds a part to half
// its maximum payload).
const MaxReplyBytes = 256 << 10

// replyBytes is the bound of an answer's part on a server whose maximum
// payload is maxPayload.
func replyBytes(maxPayload int64) int {
	return int(min(MaxReplyBytes, maxPayload/2))
}

// encodeReply returns the parts of the answer to a message whose entries
// had results res, or failed with err, each at most max bytes (or one
// result, if larger).
func encodeReply(res []ledger.Result, err error, max int) [][]byte {
	if err != nil {
		b, _ := json.Marshal(reply{Error: err.Error()}) // plain structs: cannot fail
		return [][]byte{b}
	}
	var parts [][]byte
	var part []json.RawMessage
	from, size := 0, 0
	flush := func(next int) {
		b, _ := json.Marshal(struct {
			From    int               `json:"from"`
			Total   int               `json:"total"`
			Results []json.RawMessage `json:"results"`
		}{from, len(res), part})
		parts = append(parts, b)
		part, from, size = nil, next, 0
	}
	for i, x := range res {
		b, _ := json.Marshal(replyResult{Status: x.Status.String(), Receipt: x.Receipt})
		if len(part) > 0 && size+len(b)+64 > max {
			flush(i)
		}
		part = append(part, b)
		size += len(b) + 1
	}
	if len(part) > 0 || len(parts) == 0 {
		flush(len(res))
	}
	return parts
}

// decodeReply reads one part of an answer to a message of n entries: the
// index of its first result and its results.
func decodeReply(data []byte, n int) (int, []ledger.Result, error) {
	var r reply
	if err := json.Unmarshal(data, &r); err != nil {
		return 0, nil, fmt.Errorf("cluster: the integrator's answer: %w", err)
	}
	if r.Error != "" {
		return 0, nil, fmt.Errorf("%w: %s", ErrIntegrator, r.Error)
	}
	if r.Total != n || r.From < 0 || r.From+len(r.Results) > n || len(r.Results) == 0 && n > 0 {
		return 0, nil, fmt.Errorf("cluster: the integrator answered results [%d,+%d) of %d for %d entries", r.From, len(r.Results), r.Total, n)
	}
	out := make([]ledger.Result, len(r.Results))
	for i, x := range r.Results {
		var s ledger.Status
		switch x.Status {
		case "accepted":
			s = ledger.Accepted
		case "duplicate":
			s = ledger.Duplicate
		case "conflict":
			s = ledger.Conflict
		default:
			return 0, nil, fmt.Errorf("cluster: the integrator answered status %q", x.Status)
		}
		out[i] = ledger.Result{Status: s, Receipt: x.Receipt}
	}
	return r.From, out, nil
}
