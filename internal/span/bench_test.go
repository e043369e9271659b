package span

import (
	"encoding/json"
	"testing"
)

// specSpan is the reference example span, as an app would send it: members in the
// app's order, not sorted. 232 bytes.
var specSpan = []byte(`{"id":"s_01JD8X3K2M4N5P6Q7R8S9T0V1W","tenant":"t_voulezvous","who":"dan","did":"sale.post","this":"order:12345","when":"2025-10-05T22:18:07Z","confirmed_by":["pos://register-7"],"status":"confirmed","data":{"gross":19.90,"items":3}}`)

// benchSpans are the inputs of the benchmarks: the reference example and a
// 299-byte span with a few more data members.
//
// Besides ns/op (wall clock), each benchmark reports cpu-ns/op: the CPU
// time of the whole process (GC included) per operation, which stays
// meaningful on a machine shared with other work.
var benchSpans = []struct {
	name string
	in   []byte
}{
	{"spec232B", specSpan},
	{"span299B", []byte(`{"id":"s_01JD8X3K2M4N5P6Q7R8S9T0V1W","tenant":"t_voulezvous","who":"dan","did":"sale.post","this":"order:12345","when":"2025-10-05T22:18:07.214Z","confirmed_by":["pos://register-7","staff://ana"],"status":"confirmed","data":{"gross":19.90,"items":3,"currency":"EUR","table":12,"tip":1.5,"vat":0.23}}`)},
}

func BenchmarkParse(b *testing.B) {
	for _, bs := range benchSpans {
		b.Run(bs.name, func(b *testing.B) {
			b.SetBytes(int64(len(bs.in)))
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				if _, err := Parse(bs.in, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
	}
}

func BenchmarkCanonicalize(b *testing.B) {
	for _, bs := range benchSpans {
		b.Run(bs.name, func(b *testing.B) {
			b.SetBytes(int64(len(bs.in)))
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				if _, err := Canonicalize(bs.in); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
	}
}

// BenchmarkAppendCanonical reuses one output buffer: the allocation-free
// use.
func BenchmarkAppendCanonical(b *testing.B) {
	for _, bs := range benchSpans {
		b.Run(bs.name, func(b *testing.B) {
			b.SetBytes(int64(len(bs.in)))
			b.ReportAllocs()
			buf := make([]byte, 0, 1024)
			cpu := startCPU()
			for b.Loop() {
				var err error
				if buf, err = AppendCanonical(buf[:0], bs.in); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
	}
}

// BenchmarkEncodingJSON is the naive alternative, for comparison: decode to
// map[string]any and encode again. (It is not even RFC 8785: encoding/json
// sorts keys by UTF-8 bytes, writes numbers its own way, escapes <>&, lets
// duplicates and invalid UTF-8 through.)
func BenchmarkEncodingJSON(b *testing.B) {
	for _, bs := range benchSpans {
		b.Run(bs.name, func(b *testing.B) {
			b.SetBytes(int64(len(bs.in)))
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				var v map[string]any
				if err := json.Unmarshal(bs.in, &v); err != nil {
					b.Fatal(err)
				}
				if _, err := json.Marshal(v); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
	}
}
