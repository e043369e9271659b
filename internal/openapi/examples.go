package openapi

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/gateway/reply"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/span"
)

// The examples tell one story, a bakery's order 12345 (docs/apps.md):
// s_1 was stored as record 12; later a client posts s_2, s_1 again and a
// span with a bad "when", and gets an accepted line (record 41), a duplicate
// (record 12's receipt) and a rejected line. Records 40 to 42 were one group
// commit. The records, receipts, checkpoint and proofs are real: built here
// by the ledger's own functions with a fixed example key, so every hash and
// signature in them verifies (`logline ledger verify-receipt` and
// `verify-proof` accept them with the example of GET /ledger/key).

const (
	exampleOrigin  = "logline.example/ledger"
	exampleTenant  = "t_bakery"
	exampleRequest = "req_01K6TQ4Z8N3D5W7XB2C9E1F0GH"
)

// Example spans, as a client sends them.
const (
	exampleSpan1   = `{"id":"s_1","tenant":"t_bakery","who":"dan","did":"sale.post","this":"order:12345","when":"2025-10-05T22:18:07Z","status":"confirmed","confirmed_by":["pos://register-7"],"data":{"gross":19.9,"items":3}}`
	exampleSpan2   = `{"id":"s_2","tenant":"t_bakery","who":"dan","did":"sale.paid","this":"order:12345","when":"2025-10-05T22:19:30Z","status":"confirmed"}`
	exampleSpan3   = `{"id":"s_3","tenant":"t_bakery","who":"eve","did":"sale.close","this":"order:12345","when":"2025-10-05T22:19:31Z","status":"confirmed","confirmed_by":["pos://register-7","bank://settlement/881"]}`
	exampleSpanBad = `{"id":"s_bad","tenant":"t_bakery","who":"dan","did":"sale.post","this":"order:12345","when":"2025-13-45T00:00:00Z","status":"confirmed"}`
	// Another tenant's span, committed with s_2 and s_3.
	exampleSpanCafe = `{"id":"s_77","tenant":"t_cafe","who":"ana","did":"coffee.sold","this":"cup:9","when":"2025-10-05T22:19:29Z","status":"confirmed"}`
)

// The bodies of the examples' records of the other kinds, which the server
// appends itself (records 9 to 11, just before s_1): an audit record, a
// config record and a clock tick, as internal/server and internal/cycle
// write them.
const (
	exampleAudit  = `{"fields":{"at":"2025-10-05T21:09:00Z","by":"sa:01K6TPZ3M0Q4R5S6T7V8W9X0YA","id":"01K6TQ4Z8N3D5W7XB2C9E1F0GK","name":"till 7","role":"app","tenant":"t_bakery"},"op":"account.create","ts":"2025-10-05T21:09:00Z"}`
	exampleConfig = `{"config":{"features":{"diamond":true,"trajectory":true},"policies":{"trajectory_linker":{"close_timeout":"2h"}}},"tenant":"t_bakery"}`
	exampleTick   = `{"clock":"2025-10-05T21:11:00Z"}`
	exampleKV     = `{"bundle":"sha256:5f0c6b1d2e3a4f5061728394a5b6c7d8e9f00112233445566778899aabbccddee","cause":7,"id":"msg_4q2cxm7h3ojvbsrd6wztk5ae2i","key":"order:12344","router":"firsts","tenant":"t_cafe","value":"s_0007"}`
)

// kindKV is the record kind of a router's kv.set (internal/runtime's
// KindKV).
const kindKV = "kv"

// kindAudit is the record kind of audit records (internal/server's
// KindAudit, which this package cannot import).
const kindAudit = "audit"

// auditOps are the operations of audit records: the receipts the identity
// service records (internal/identity: receiptCreate and the like) and the
// server's own (internal/server: auditRedactKey).
func auditOps() arr {
	return arr{"keys.create", "keys.rotate", "keys.retire", "account.create", "account.revoke", "redact.key.create"}
}

// exampleNDJSON is the body of the NDJSON ingest example: one new span, one
// already stored, one the contract rejects.
func exampleNDJSON() string {
	return exampleSpan2 + "\n" + exampleSpan1 + "\n" + exampleSpanBad + "\n"
}

// exampleLedger is the ledger of the examples.
type exampleLedger struct {
	vkey       string
	records    map[uint64][]byte // framed lines, without the newline
	receipts   map[uint64]ledgerfmt.Receipt
	checkpoint []byte
	size       uint64
	root       ledgerfmt.Hash
	inclusion  []ledgerfmt.Hash // of record 41 in the tree of size
	consFrom   uint64
	consRoot   ledgerfmt.Hash
	consistent []ledgerfmt.Hash // from consFrom to size
}

func exampleTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// newExampleLedger builds the example ledger: 43 records, 12 and 40 to 42
// the story's, 8 to 11 the server's own (kv, audit, config, tick), the others
// fillers of tenant t_cafe.
func newExampleLedger() (*exampleLedger, error) {
	seed := sha256.Sum256([]byte("loglineos openapi example key; never use it for anything else"))
	priv := ed25519.NewKeyFromSeed(seed[:])
	vkey, err := note.NewEd25519VerifierKey(exampleOrigin, priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	parts := strings.SplitN(vkey, "+", 3)
	skey := "PRIVATE+KEY+" + parts[0] + "+" + parts[1] + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, seed[:]...))
	signer, err := ledgerfmt.NewSigner(skey)
	if err != nil {
		return nil, err
	}

	const size = 43
	ts12 := exampleTime("2025-10-05T22:18:07.214Z")
	ts40 := exampleTime("2025-10-05T22:19:30.530Z")
	bodies := map[uint64]string{12: exampleSpan1, 40: exampleSpanCafe, 41: exampleSpan2, 42: exampleSpan3}
	others := map[uint64]struct{ kind, body string }{
		8: {kindKV, exampleKV}, 9: {kindAudit, exampleAudit}, 10: {ledgerfmt.KindConfig, exampleConfig}, 11: {ledgerfmt.KindTick, exampleTick}}
	l := &exampleLedger{vkey: signer.VerifierKey(), records: map[uint64][]byte{}, receipts: map[uint64]ledgerfmt.Receipt{}, size: size}
	leaves := make([]ledgerfmt.Hash, size)
	for seq := range uint64(size) {
		ts := ts40
		switch {
		case seq < 12:
			ts = exampleTime("2025-10-05T21:00:00Z").Add(time.Duration(seq) * time.Minute)
		case seq == 12:
			ts = ts12
		case seq < 40:
			ts = ts12.Add(time.Duration(seq-12) * time.Second)
		}
		kind := ledgerfmt.KindSpan
		body, ok := bodies[seq]
		if o, other := others[seq]; other {
			kind, body, ok = o.kind, o.body, true
		}
		if !ok {
			body = fmt.Sprintf(`{"id":"s_f%d","tenant":"t_cafe","who":"ana","did":"coffee.sold","this":"cup:%d","when":"2025-10-05T21:00:00Z","status":"confirmed"}`, seq, seq)
		}
		canon, err := span.Canonicalize([]byte(body))
		if err != nil {
			return nil, err
		}
		leaves[seq] = ledgerfmt.LeafHash(seq, ts, kind, canon)
		if ok {
			l.records[seq] = frameRecord(seq, ts, leaves[seq], kind, canon)
		}
	}
	// The two commits of the story: record 12 alone, records 40 to 42.
	for _, c := range []struct {
		first, n uint64
		ts       time.Time
	}{{12, 1, ts12}, {40, 3, ts40}} {
		batch := leaves[c.first : c.first+c.n]
		root := mth(batch)
		sig := ed25519.Sign(priv, ledgerfmt.BatchStatement(exampleOrigin, c.first, c.n, root, c.ts))
		for seq := c.first; seq < c.first+c.n; seq++ {
			var ids struct{ ID, Tenant string }
			if err := json.Unmarshal([]byte(bodies[seq]), &ids); err != nil {
				return nil, err
			}
			l.receipts[seq] = ledgerfmt.Receipt{
				Op: ledgerfmt.OpAppend, SpanID: ids.ID, Tenant: ids.Tenant, Seq: seq, Leaf: leaves[seq],
				Batch: ledgerfmt.BatchRef{First: c.first, Size: c.n, Root: root, Path: inclusion(int(seq-c.first), batch)},
				JTI:   ledgerfmt.ReceiptID(seq, c.ts), KID: signer.KeyID(), Sig: sig, TS: ledgerfmt.Timestamp{Time: c.ts},
			}
		}
	}
	l.root = mth(leaves)
	cp, err := signer.SignCheckpoint(size, l.root)
	if err != nil {
		return nil, err
	}
	l.checkpoint = cp.Note
	l.inclusion = inclusion(41, leaves)
	l.consFrom = 40
	l.consRoot = mth(leaves[:40])
	l.consistent = consistency(40, leaves)
	return l, nil
}

// frameRecord writes a record line as a segment holds it (see internal/ledger's
// record framing): the CRC-32C covers every byte but its own eight digits.
func frameRecord(seq uint64, ts time.Time, leaf ledgerfmt.Hash, kind string, body []byte) []byte {
	tsb, _ := ledgerfmt.Timestamp{Time: ts}.MarshalJSON()
	head := fmt.Sprintf(`{"seq":%d,"ts":%s,"leaf":"%s","crc":"`, seq, tsb, leaf)
	tail := fmt.Sprintf(`","%s":%s}`, kind, body)
	c := crc32.Checksum([]byte(head+tail), crc32.MakeTable(crc32.Castagnoli))
	return []byte(head + fmt.Sprintf("%08x", c) + tail)
}

// The RFC 6962 Merkle tree hash, inclusion path and consistency proof
// (RFC 6962 §2.1), over leaf hashes.

func hashChildren(l, r ledgerfmt.Hash) ledgerfmt.Hash {
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

// split is the largest power of two smaller than n (n > 1).
func split(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

func mth(d []ledgerfmt.Hash) ledgerfmt.Hash {
	if len(d) == 1 {
		return d[0]
	}
	k := split(len(d))
	return hashChildren(mth(d[:k]), mth(d[k:]))
}

func inclusion(m int, d []ledgerfmt.Hash) []ledgerfmt.Hash {
	if len(d) <= 1 {
		return nil
	}
	k := split(len(d))
	if m < k {
		return append(inclusion(m, d[:k]), mth(d[k:]))
	}
	return append(inclusion(m-k, d[k:]), mth(d[:k]))
}

func consistency(m int, d []ledgerfmt.Hash) []ledgerfmt.Hash {
	var sub func(m int, d []ledgerfmt.Hash, whole bool) []ledgerfmt.Hash
	sub = func(m int, d []ledgerfmt.Hash, whole bool) []ledgerfmt.Hash {
		if m == len(d) {
			if whole {
				return nil
			}
			return []ledgerfmt.Hash{mth(d)}
		}
		k := split(len(d))
		if m <= k {
			return append(sub(m, d[:k], whole), mth(d[k:]))
		}
		return append(sub(m-k, d[k:], false), mth(d[:k]))
	}
	return sub(m, d, true)
}

// record returns the API's record object (GET /spans, /things): the line's
// members but the CRC.
func (l *exampleLedger) record(seq uint64, withCRC bool) obj {
	var r obj
	dec := json.NewDecoder(bytes.NewReader(l.records[seq]))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		panic(err) // the lines are built above
	}
	if !withCRC {
		delete(r, "crc")
	}
	return r
}

func (l *exampleLedger) receipt(seq uint64) any {
	return jsonValue(l.receipts[seq])
}

// jsonValue is v as the API's JSON encoder writes it, decoded.
func jsonValue(v any) any {
	n, err := normalize(v)
	if err != nil {
		panic(err)
	}
	return n
}

func rawValue(s string) any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		panic(fmt.Sprintf("openapi: example %s: %v", s, err))
	}
	return v
}

// contractProblem is the problem the server's span contract gives the span,
// as a line of an ingest answer: the bundle's first violation when it has
// ingest validators, else the gateway's built-in contract (which rejects a
// bad "when" the same way).
func contractProblem(b *bundle.Bundle, spanJSON string) (obj, error) {
	s, err := span.Parse([]byte(spanJSON), span.Limits{})
	if err != nil {
		return nil, err
	}
	for _, v := range b.IngestValidators() {
		if vi := v.Validate(s); vi != nil {
			p := problem("invalid-span", vi.Detail)
			p["field"], p["validator"], p["at"] = vi.Field, vi.Validator, vi.Pos
			p["rule"] = vi.Validator + ": " + vi.Rule
			if vi.Validator == "" {
				p["rule"] = vi.Rule
			}
			return p, nil
		}
	}
	if len(b.IngestValidators()) > 0 {
		return nil, fmt.Errorf("openapi: the bundle's contract accepts the example of a bad span %s", spanJSON)
	}
	p := problem("invalid-span", `field "when" is not RFC 3339: `+strconv.Quote(s.WhenRaw))
	p["field"], p["rule"] = "when", `require field "when" as "rfc3339"`
	return p, nil
}

// problem returns a problem object of a registered type.
func problem(name, detail string) obj {
	for _, t := range reply.ProblemTypes() {
		if t.Name == name {
			p := obj{"type": "/problems/" + t.Name, "title": t.Title, "status": t.Status}
			if detail != "" {
				p["detail"] = detail
			}
			return p
		}
	}
	panic("openapi: unknown problem type " + name)
}

// derivation is the example of the neutral cycle: the events the engine
// derives from the story's records (12, 40, 41, 42, then a clock tick that
// closes the trajectories), as the derived streams send them.
type derivation struct {
	events [][]byte // t_bakery's, in order
	// dryRun is the summary of a dry run of the NDJSON example's spans.
	dryRun derive.Summary
}

func parseSpan(s string) (*span.Span, error) { return span.Parse([]byte(s), span.Limits{}) }

func newDerivation() (*derivation, error) {
	var inputs []derive.Input
	for _, in := range []struct {
		seq  uint64
		body string
	}{{12, exampleSpan1}, {40, exampleSpanCafe}, {41, exampleSpan2}, {42, exampleSpan3}} {
		s, err := parseSpan(in.body)
		if err != nil {
			return nil, err
		}
		inputs = append(inputs, derive.Input{Seq: in.seq, Kind: derive.KindSpan, Span: s})
	}
	sum, err := derive.Simulate(slices.Values(inputs), derive.Config{}, derive.SimConfig{CloseAtEnd: true, KeepEvents: true})
	if err != nil {
		return nil, err
	}
	d := &derivation{}
	for _, ev := range sum.Events {
		if ev.Tenant == exampleTenant {
			d.events = append(d.events, ev.AppendJSON(nil))
		}
	}
	// POST /quality/dryrun numbers the body's spans from 0, skips repeats
	// and leaves out the rejected line (s_bad).
	var dry []derive.Input
	for i, body := range []string{exampleSpan2, exampleSpan1} {
		s, err := parseSpan(body)
		if err != nil {
			return nil, err
		}
		dry = append(dry, derive.Input{Seq: uint64(i), Kind: derive.KindSpan, Span: s})
	}
	if d.dryRun, err = derive.Simulate(slices.Values(dry), derive.Config{}, derive.SimConfig{CloseAtEnd: true}); err != nil {
		return nil, err
	}
	return d, nil
}

// trajectory assembles GET /trajectories' answer from the events, as the
// gateway does.
func (d *derivation) trajectory(l *exampleLedger) (id string, out obj) {
	out = obj{"tenant": exampleTenant, "status": "open", "edges": arr{}, "spans": arr{}}
	for _, ev := range d.events {
		v := rawValue(string(ev)).(map[string]any)
		id, _ = v["trajectory_id"].(string)
		switch v["type"] {
		case "trajectory_edge":
			out["edges"] = append(out["edges"].(arr), v)
			out["this"] = v["this"]
			seq, _ := strconv.ParseUint(string(v["seq"].(json.Number)), 10, 64)
			out["spans"] = append(out["spans"].(arr), l.record(seq, false))
		case "trajectory_closed":
			out["closed"], out["status"] = v, "closed"
		case "trajectory_quality":
			out["quality"] = v
		case "diamond_candidate":
			out["candidate"] = v
		}
	}
	out["trajectory_id"] = id
	return id, out
}
