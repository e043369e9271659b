package openapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"hash/crc32"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
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
	v, err := ledgerfmt.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	receipt := func(x any) *ledgerfmt.Receipt {
		b, _ := json.Marshal(x)
		var r ledgerfmt.Receipt
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
		if err := v.VerifyReceipt(receipt(c.receipt), ledgerfmt.KindSpan, canonical(t, c.span)); err != nil {
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

	// The streams' lines are framed as the segments frame them, whatever
	// their kind.
	streams := ex["stream-ndjson"].(string) + ex["stream-every-kind"].(string)
	for _, line := range strings.Split(strings.TrimSuffix(streams, "\n"), "\n") {
		var r struct {
			Seq  uint64
			TS   ledgerfmt.Timestamp
			Leaf ledgerfmt.Hash
			CRC  string
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		var members map[string]json.RawMessage
		json.Unmarshal([]byte(line), &members)
		var kind string
		var body json.RawMessage
		for k, v := range members {
			if k != "seq" && k != "ts" && k != "leaf" && k != "crc" {
				kind, body = k, v
			}
		}
		if got := ledgerfmt.LeafHash(r.Seq, r.TS.Time, kind, body); got != r.Leaf {
			t.Errorf("record %d (%s): leaf %s, want %s", r.Seq, kind, r.Leaf, got)
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
	for _, name := range []string{"stream-ndjson", "stream-every-kind"} {
		for i, r := range lines(name) {
			if err := visit(schema(t, doc, "Record"), r); err != nil {
				t.Errorf("%s line %d: %v", name, i+1, err)
			}
		}
	}
	// One record of each kind, each its kind's only member.
	var kinds []string
	for _, r := range lines("stream-every-kind") {
		for k := range r {
			if k != "seq" && k != "ts" && k != "leaf" && k != "crc" {
				kinds = append(kinds, k)
			}
		}
	}
	if want := []string{kindKV, kindAudit, ledgerfmt.KindConfig, ledgerfmt.KindTick, ledgerfmt.KindSpan}; !slices.Equal(kinds, want) {
		t.Errorf("stream-every-kind holds records of kinds %v, want %v", kinds, want)
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

// A record holding two kinds, or a kind the ledger does not store, or a
// body that is not its kind's, is not a Record.
func TestRecordSchemaRefusesOtherShapes(t *testing.T) {
	rec := schema(t, kinLoad(t, yamlOf(t, document(t, standardBundle(t), Options{}))), "Record")
	head := `"seq":9,"ts":"2025-10-05T21:09:00.000000Z","leaf":"` + strings.Repeat("A", 43) + `="`
	for _, tc := range []struct {
		name, line string
		ok         bool
	}{
		{"tick", `{` + head + `,"tick":` + exampleTick + `}`, true},
		{"config", `{` + head + `,"config":` + exampleConfig + `}`, true},
		{"config back to the defaults", `{` + head + `,"config":{"config":null,"tenant":"t_cafe"}}`, true},
		{"audit", `{` + head + `,"audit":` + exampleAudit + `}`, true},
		{"span", `{` + head + `,"span":` + exampleSpan1 + `}`, true},
		{"no body", `{` + head + `}`, false},
		{"two kinds", `{` + head + `,"tick":` + exampleTick + `,"audit":` + exampleAudit + `}`, false},
		{"unknown kind", `{` + head + `,"note":{"text":"hi"}}`, false},
		{"tick without clock", `{` + head + `,"tick":{}}`, false},
		{"config without tenant", `{` + head + `,"config":{"config":null}}`, false},
		{"audit of an unknown op", `{` + head + `,"audit":{"fields":{},"op":"keys.steal","ts":"2025-10-05T21:09:00Z"}}`, false},
		{"audit without fields", `{` + head + `,"audit":{"op":"keys.create","ts":"2025-10-05T21:09:00Z"}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v any
			if err := json.Unmarshal([]byte(tc.line), &v); err != nil {
				t.Fatal(err)
			}
			if err := visit(rec, v); (err == nil) != tc.ok {
				t.Errorf("valid = %v, want %v (%v)", err == nil, tc.ok, err)
			}
		})
	}
}

// The audit operations the document lists are the identity service's
// receipts (its receipt* constants) and the server's own (its audit*
// constants), no more, no fewer.
func TestAuditOpsAreIdentitysReceipts(t *testing.T) {
	var theirs []string
	for dir, prefix := range map[string]string{"internal/identity": "receipt", "internal/server": "audit"} {
		files, _ := filepath.Glob(filepath.Join(repoRoot(t), dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(af, func(n ast.Node) bool {
				vs, ok := n.(*ast.ValueSpec)
				if !ok {
					return true
				}
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, prefix) || i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						theirs = append(theirs, v)
					}
				}
				return true
			})
		}
	}
	var ours []string
	for _, op := range auditOps() {
		ours = append(ours, op.(string))
	}
	slices.Sort(theirs)
	slices.Sort(ours)
	if len(theirs) == 0 || !slices.Equal(theirs, ours) {
		t.Errorf("identity records %v, the document lists %v", theirs, ours)
	}
}
