package gateway

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// FuzzIngestNDJSON sends arbitrary bytes as an NDJSON body through the whole
// ingest handler. It must never answer 5xx or panic; every answer is JSON;
// a 200 lists one result per non-blank line, in order; and what it says was
// accepted is stored.
func FuzzIngestNDJSON(f *testing.F) {
	f.Add([]byte(goodSpan("s_1") + "\n" + goodSpan("s_2") + "\n"))
	f.Add([]byte(goodSpan("s_1") + "\r\n\n" + spanWith("s_3", "when", `"2025-13-45"`) + "\n" + goodSpan("s_4")[:30]))
	f.Add([]byte("{}\n[]\n\"x\"\n1\n"))
	f.Add([]byte(spanWith("s_5", "data", `{"a":[1,2,{"b":null}],"c":"\u00e9\ud83d\ude00"}`)))
	f.Add([]byte("\xff\xfe\n{\"id\":\n"))
	g, l := newTestGateway(f, nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/ingest", bytes.NewReader(body))
		r.Header.Set("Content-Type", ndjson)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		var resp struct {
			Type    string
			Results []lineResult
		}
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("answer is not JSON: %v: %s", err, w.Body)
		}
		if w.Code != 200 {
			return
		}
		lines := 0
		for _, ln := range bytes.Split(body, []byte("\n")) {
			if len(bytes.TrimSpace(bytes.TrimSuffix(ln, []byte("\r")))) > 0 {
				lines++
			}
		}
		if len(resp.Results) != lines {
			t.Fatalf("%d results for %d lines", len(resp.Results), lines)
		}
		prev := 0
		for _, res := range resp.Results {
			if res.Line <= prev {
				t.Fatalf("results out of order: line %d after %d", res.Line, prev)
			}
			prev = res.Line
			if res.Status == "accepted" || res.Status == "duplicate" {
				if _, err := l.Get(r.Context(), "t_a", res.ID); err != nil {
					t.Fatalf("line %d said %s but %q is not stored: %v", res.Line, res.Status, res.ID, err)
				}
			}
		}
	})
}
