package reply

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWriteProblem(t *testing.T) {
	for _, tc := range []struct {
		name       string
		p          *Problem
		wantStatus int
		wantRetry  string
		want       map[string]any
	}{
		{"plain", NewProblem("not-found", "no span %q", "s1"), 404, "", map[string]any{
			"type": "/problems/not-found", "title": "not found", "status": 404.0, "detail": `no span "s1"`,
			"instance": "/spans/t/s1", "request_id": "req_1"}},
		{"detail with a percent and no args", NewProblem("bad-request", "100% wrong"), 400, "", map[string]any{
			"type": "/problems/bad-request", "title": "bad request", "status": 400.0, "detail": "100% wrong",
			"instance": "/spans/t/s1", "request_id": "req_1"}},
		{"retry rounded up", func() *Problem {
			p := NewProblem("quota-exceeded", "")
			p.RetryAfter, p.Rule = 1500*time.Millisecond, "quota"
			return p
		}(), 429, "2", map[string]any{
			"type": "/problems/quota-exceeded", "title": "quota exceeded", "status": 429.0, "rule": "quota",
			"instance": "/spans/t/s1", "request_id": "req_1"}},
		{"instance kept", &Problem{Type: "/problems/internal", Title: "internal error", Status: 500, Instance: "/x", RequestID: "req_2"}, 500, "", map[string]any{
			"type": "/problems/internal", "title": "internal error", "status": 500.0, "instance": "/x", "request_id": "req_2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/spans/t/s1", nil)
			r = r.WithContext(WithRequestID(r.Context(), "req_1"))
			w := httptest.NewRecorder()
			WriteProblem(w, r, tc.p)
			if w.Code != tc.wantStatus {
				t.Errorf("status %d, want %d", w.Code, tc.wantStatus)
			}
			h := w.Header()
			if got := [3]string{h.Get("Content-Type"), h.Get("Cache-Control"), h.Get("Retry-After")}; got != [3]string{"application/problem+json", "no-store", tc.wantRetry} {
				t.Errorf("headers %q", got)
			}
			if !strings.HasSuffix(w.Body.String(), "}\n") {
				t.Errorf("body %q does not end in a newline", w.Body)
			}
			var got map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("body (-want +got):\n%s", d)
			}
		})
	}
}

func TestNewProblemUnknownPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewProblem of an unknown type did not panic")
		}
	}()
	NewProblem("no-such-type", "")
}

// TestProblemTypes: names are unique, statuses are errors, and each has a
// title and a page.
func TestProblemTypes(t *testing.T) {
	seen := map[string]bool{}
	for _, pt := range ProblemTypes() {
		if seen[pt.Name] || pt.Status < 400 || pt.Status > 599 || pt.Title == "" || pt.Doc == "" {
			t.Errorf("problem type %+v: duplicate, bad status or undocumented", pt)
		}
		seen[pt.Name] = true
		if got, ok := LookupProblemType(pt.Name); !ok || got != pt {
			t.Errorf("LookupProblemType(%q) = %+v, %v", pt.Name, got, ok)
		}
	}
	if _, ok := LookupProblemType("nothing"); ok {
		t.Error("LookupProblemType of an unknown name found one")
	}
}

func TestJSON(t *testing.T) {
	w := httptest.NewRecorder()
	if err := JSON(w, http.StatusCreated, map[string]any{"a": "<b>"}); err != nil {
		t.Fatal(err)
	}
	if w.Code != 201 || w.Header().Get("Content-Type") != "application/json" || w.Body.String() != `{"a":"\u003cb\u003e"}`+"\n" {
		t.Errorf("JSON wrote %d %q %q", w.Code, w.Header(), w.Body)
	}
	if err := JSON(httptest.NewRecorder(), 200, func() {}); err == nil {
		t.Error("JSON of a func: no error")
	}
}
