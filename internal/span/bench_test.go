package span

import (
	"encoding/json"
	"testing"
)

// specSpan is the SPEC §2 example, as an app would send it: members in the
// app's order, not sorted. 292 bytes.
var specSpan = []byte(`{"id":"s_01JD8X3K2M4N5P6Q7R8S9T0V1W","tenant":"t_voulezvous","who":"dan","did":"sale.post","this":"order:12345","when":"2025-10-05T22:18:07Z","confirmed_by":["pos://register-7"],"status":"confirmed","data":{"gross":19.90,"items":3}}`)

func BenchmarkParse(b *testing.B) {
	b.SetBytes(int64(len(specSpan)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(specSpan, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonicalize(b *testing.B) {
	b.SetBytes(int64(len(specSpan)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Canonicalize(specSpan); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendCanonical(b *testing.B) {
	b.SetBytes(int64(len(specSpan)))
	b.ReportAllocs()
	buf := make([]byte, 0, 1024)
	for b.Loop() {
		var err error
		if buf, err = AppendCanonical(buf[:0], specSpan); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodingJSON is the naive alternative, for comparison: decode to
// map[string]any and encode again (encoding/json sorts map keys, but by
// UTF-8 bytes, writes numbers its own way, escapes <>&, and lets duplicates
// and invalid UTF-8 through: not RFC 8785).
func BenchmarkEncodingJSON(b *testing.B) {
	b.SetBytes(int64(len(specSpan)))
	b.ReportAllocs()
	for b.Loop() {
		var v map[string]any
		if err := json.Unmarshal(specSpan, &v); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
}
