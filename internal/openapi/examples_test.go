package openapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/span"
)

// examples returns the document's components.examples values by name.
func exampleValues(t *testing.T) map[string]any {
	t.Helper()
	d := document(t, standardBundle(t), Options{})
	out := map[string]any{}
	for name, ex := range d["components"].(map[string]any)["examples"].(map[string]any) {
		out[name] = ex.(map[string]any)["value"]
	}
	return out
}

func hashOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(v.(string))
	if err != nil || len(b) != 32 {
		t.Fatalf("bad hash %v", v)
	}
	return b
}

func hashesOf(t *testing.T, v any) [][]byte {
	var out [][]byte
	for _, h := range v.([]any) {
		out = append(out, hashOf(t, h))
	}
	return out
}

func canonical(t *testing.T, s string) []byte {
	t.Helper()
	c, err := span.Canonicalize([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The examples' receipts, checkpoint and proofs verify with the example
// key, as the CLI checks them.
func TestExamplesVerify(t *testing.T) {
	ex := exampleValues(t)
	vkey := strings.TrimSpace(ex["verifier-key"].(string))
	v, err := ledger.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	receipt := func(x any) *ledger.Receipt {
		b, _ := json.Marshal(x)
		var r ledger.Receipt
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		return &r
	}
	answer := ex["ingest-answer"].(map[string]any)["results"].([]any)
	for _, c := range []struct {
		name    string
		receipt any
		span    string
	}{
		{"receipt", ex["receipt"], exampleSpan2},
		{"accepted line", answer[0].(map[string]any)["receipt"], exampleSpan2},
		{"duplicate line", answer[1].(map[string]any)["receipt"], exampleSpan1},
	} {
		if err := v.VerifyReceipt(receipt(c.receipt), ledger.KindSpan, canonical(t, c.span)); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}

	cp, err := v.OpenCheckpoint([]byte(ex["checkpoint"].(string)))
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	inc := ex["inclusion-proof"].(map[string]any)
	if got := inc["root"].(string); got != cp.Root.String() {
		t.Errorf("the inclusion proof's root %s is not the checkpoint's %s", got, cp.Root)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 41, cp.Size, hashOf(t, inc["leaf_hash"]), hashesOf(t, inc["path"]), cp.Root[:]); err != nil {
		t.Errorf("inclusion proof: %v", err)
	}
	cons := ex["consistency-proof"].(map[string]any)
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 40, cp.Size, hashesOf(t, cons["path"]), hashOf(t, cons["from_root"]), cp.Root[:]); err != nil {
		t.Errorf("consistency proof: %v", err)
	}

	// The stream's lines are framed as the segments frame them.
	for _, line := range strings.Split(strings.TrimSuffix(ex["stream-ndjson"].(string), "\n"), "\n") {
		var r struct {
			Seq  uint64
			TS   ledger.Timestamp
			Leaf ledger.Hash
			CRC  string
			Span json.RawMessage
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if got := ledger.LeafHash(r.Seq, r.TS.Time, ledger.KindSpan, r.Span); got != r.Leaf {
			t.Errorf("record %d: leaf %s, want %s", r.Seq, r.Leaf, got)
		}
		i := strings.Index(line, `"crc":"`) + len(`"crc":"`)
		crc := crc32.Checksum([]byte(line[:i]+line[i+8:]), crc32.MakeTable(crc32.Castagnoli))
		if got, want := line[i:i+8], fmt.Sprintf("%08x", crc); got != want {
			t.Errorf("record %d: crc %s, want %s", r.Seq, got, want)
		}
	}
}

// The NDJSON example's lines are spans (but the bad one); the derived
// events, minus the seq the streams add, are events of the bundle's
// schemas.
func TestNDJSONExamplesHoldTheirItems(t *testing.T) {
	doc := kinLoad(t, yamlOf(t, document(t, standardBundle(t), Options{})))
	ex := exampleValues(t)
	lines := func(name string) []map[string]any {
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSuffix(ex[name].(string), "\n"), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			out = append(out, m)
		}
		return out
	}
	for i, s := range lines("ndjson-body") {
		err := visit(schema(t, doc, "span"), s)
		if bad := s["id"] == "s_bad"; (err != nil) != bad {
			t.Errorf("ndjson-body line %d: %v", i+1, err)
		}
	}
	for i, r := range lines("stream-ndjson") {
		if err := visit(schema(t, doc, "Record"), r); err != nil {
			t.Errorf("stream-ndjson line %d: %v", i+1, err)
		}
	}
	events := lines("derived-ndjson")
	if len(events) < 4 {
		t.Errorf("only %d derived events", len(events))
	}
	for i, e := range events {
		if err := visit(schema(t, doc, "DerivedEvent"), e); err != nil {
			t.Errorf("derived-ndjson line %d: %v", i+1, err)
		}
		typ := schema(t, doc, e["type"].(string))
		if _, ok := typ.Properties["seq"]; !ok {
			delete(e, "seq")
		}
		if err := visit(typ, e); err != nil {
			t.Errorf("derived-ndjson line %d is not a %s: %v", i+1, e["type"], err)
		}
	}
}

// The rejected line of the examples is the bundle's verdict, as a real
// gateway gives it (TestDocumentDescribesTheGateway posts the same body).
func TestRejectedExampleIsTheContracts(t *testing.T) {
	ex := exampleValues(t)
	line := ex["ingest-answer"].(map[string]any)["results"].([]any)[2].(map[string]any)
	p := line["problem"].(map[string]any)
	if p["at"] != "stdlib/canonical.lll:6:3" || p["field"] != "when" || p["validator"] != "canonical_contract_v1" {
		t.Errorf("the rejected line's problem: %v", p)
	}
	if !strings.Contains(p["rule"].(string), `require field "when" as "rfc3339"`) {
		t.Errorf("rule %q", p["rule"])
	}
}
