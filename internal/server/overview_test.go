package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The tenant overview lists the latest diamond candidates, newest first,
// as the derived stream has them, and follows the stream as it grows (the
// list is kept between polls only while the stream has not changed).
func TestOverviewCandidates(t *testing.T) {
	data := t.TempDir()
	os.MkdirAll(filepath.Join(data, "cfg", "tenants"), 0o755)
	os.WriteFile(filepath.Join(data, "cfg", "tenants", "t_ov.yaml"), []byte(
		"policies:\n  trajectory_linker: {close_on_did: [\"sale.close\"]}\n"+
			"  quality_meter: {warmup: 1, min_score: 0, percentile_target: \"p50\", credit_budget: false}\n"), 0o644)
	s, ts := testServer(t, data, nil)
	batch := func(from, to int) []byte {
		var b strings.Builder
		for n := from; n < to; n++ {
			for k := range 1 + n%4 {
				did := "sale.post"
				if k == n%4 {
					did = "sale.close"
				}
				fmt.Fprintf(&b, `{"id":"s_%d_%d","tenant":"t_ov","who":"dan","did":%q,"this":"order:%d","when":"2026-11-01T%02d:%02d:00Z","status":"confirmed"}`+"\n", n, k, did, n, n/6, (n%6)*10+k)
			}
		}
		return []byte(b.String())
	}
	overview := func() TenantOverview {
		t.Helper()
		resp, err := http.Get(ts.URL + "/v1/overview/t_ov")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ov TenantOverview
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&ov) != nil {
			t.Fatalf("overview: HTTP %d", resp.StatusCode)
		}
		return ov
	}
	// The candidates of the derived stream, newest first.
	fromStream := func() []string {
		var ids []string
		s.runner.Events("t_ov", 0, func(_ uint64, ev []byte) bool {
			if strings.Contains(string(ev), `"type":"diamond_candidate"`) {
				ids = append([]string{string(ev)}, ids...)
			}
			return true
		})
		return ids
	}
	check := func(when string) {
		t.Helper()
		ov, want := overview(), fromStream()
		if len(want) == 0 {
			t.Fatalf("%s: no candidates derived", when)
		}
		if len(want) > maxRecentCandidates {
			want = want[:maxRecentCandidates]
		}
		if len(ov.Candidates) != len(want) {
			t.Fatalf("%s: %d candidates listed, the stream's latest are %d", when, len(ov.Candidates), len(want))
		}
		for i := range want {
			if string(ov.Candidates[i]) != want[i] {
				t.Fatalf("%s: candidate %d is %s, want %s", when, i, ov.Candidates[i], want[i])
			}
		}
		if ov.Meter.N != s.runner.Stats("t_ov").Scored {
			t.Errorf("%s: meter window %d, %d scored", when, ov.Meter.N, s.runner.Stats("t_ov").Scored)
		}
	}
	post(t, ts.URL, batch(0, 8))
	waitDerived(t, s)
	check("after 8 things")
	check("asked again")
	post(t, ts.URL, batch(8, 60))
	waitDerived(t, s)
	check("after 60 things")
}
