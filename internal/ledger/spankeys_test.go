package ledger

import (
	"encoding/json"
	"strings"
	"testing"
)

var spanKeysSeeds = []string{
	`{"data":{"card":{"last4":"4242"},"gross":19.9,"items":[{"sku":"b1","qty":2}]},"did":"sale.post","id":"s_1","status":"confirmed","tenant":"t_bakery","this":"order:1","when":"2025-10-05T22:18:07Z","who":"dan"}`,
	`{}`,
	` { "id" : "a" , "tenant":"t", "this" :"x" } `,
	`{"ID":"a","tenant":"t"}`,
	`{"thiſ":"a"}`,
	`{"id":"a\"b","tenant":"t"}`,
	`{"id":"\u00e9"}`,
	`{"id":null,"tenant":"t"}`,
	`{"id":7}`,
	`{"id":"a","id":"b"}`,
	`{"x":{"id":"nested"},"id":"top"}`,
	`{"x":["}",",","{"],"id":"a"}`,
	`{"x":true,"y":null,"z":-1.5e3,"id":"a"}`,
	`{"id":"a"`,
	`[1,2]`,
	`null`,
	"{\"id\":\"\xff\"}",
	`{"i\u0064":"a"}`,
	`{"x":"\u00e9\n","y":[1,-0.5,2e+3,0],"id":"a"} `,
	`{"x":01,"id":"a"}`,
	`{"x":1.,"id":"a"}`,
	`{"x":"\q","id":"a"}`,
	`{"x":tru,"id":"a"}`,
	`{"x":[1,],"id":"a"}`,
	`{"id":"a",}`,
	`{"id":"a"} x`,
}

// TestScanKeys: where scanKeys answers, it answers what encoding/json
// decodes; a canonical span body is answered.
func TestScanKeys(t *testing.T) {
	for _, body := range spanKeysSeeds {
		checkScanKeys(t, []byte(body))
	}
	// encoding/json's bound on nesting, 10,000 levels, the object's own
	// included.
	for _, levels := range []int{9999, 10000, 10001} {
		n := levels - 1
		checkScanKeys(t, []byte(`{"x":`+strings.Repeat("[", n)+strings.Repeat("]", n)+`,"id":"a"}`))
	}
	if _, ok := scanKeys([]byte(spanKeysSeeds[0])); !ok {
		t.Error("a canonical span body is not read by the scanner")
	}
}

func checkScanKeys(t *testing.T, body []byte) {
	t.Helper()
	got, ok := scanKeys(body)
	if !ok {
		return
	}
	if !json.Valid(body) {
		t.Fatalf("scanKeys(%q) = %+v of a body that is not valid JSON", body, got)
	}
	var want spanKeys
	if err := json.Unmarshal(body, &want); err != nil {
		t.Fatalf("scanKeys(%q) = %+v, encoding/json fails: %v", body, got, err)
	}
	if got != want {
		t.Fatalf("scanKeys(%q) = %+v, encoding/json gives %+v", body, got, want)
	}
}

func FuzzScanKeys(f *testing.F) {
	for _, s := range spanKeysSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkScanKeys)
}

// BenchmarkKeysOf reads a span record's keys as the follower's check of a
// commit and the index's lookups do: the scanner against encoding/json.
func BenchmarkKeysOf(b *testing.B) {
	body := []byte(spanKeysSeeds[0])
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			if _, ok := scanKeys(body); !ok {
				b.Fatal("not scanned")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var k spanKeys
			if json.Unmarshal(body, &k) != nil {
				b.Fatal("not decoded")
			}
		}
	})
}
