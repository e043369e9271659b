package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/client"
	"github.com/loglineos/loglineos/internal/server"
)

// lineSummary is what a test checks of a LineResult.
type lineSummary struct {
	Line    int
	ID      string
	Status  client.LineStatus
	Seq     uint64
	Receipt bool
	Problem string // type
	Field   string
}

func summarize(res []client.LineResult) []lineSummary {
	var out []lineSummary
	for _, r := range res {
		s := lineSummary{Line: r.Line, ID: r.ID, Status: r.Status, Seq: r.Seq, Receipt: r.Receipt != nil}
		if r.Problem != nil {
			s.Problem, s.Field = r.Problem.Type, r.Problem.Field
		}
		out = append(out, s)
	}
	return out
}

// line is a span's JSON.
func line(s client.Span) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestIngestLines(t *testing.T) {
	badWhen := `{"id":"s_bad","tenant":"t_a","who":"dan","did":"sale.post","this":"order:1","when":"2025-13-45","status":"confirmed"}`
	noWho := `{"id":"s_nowho","tenant":"t_a","did":"sale.post","this":"order:1","when":"2025-10-05T22:18:07Z","status":"confirmed"}`
	tests := []struct {
		name   string
		before []client.Span // stored first
		lines  []string
		want   []lineSummary
		counts [3]int // accepted, duplicates, rejected
	}{{
		name:   "mixed good, duplicate and bad lines",
		before: []client.Span{sale("t_a", "s_1", "order:1")},
		lines: []string{
			line(sale("t_a", "s_2", "order:1")),
			line(sale("t_a", "s_1", "order:1")),
			`{"id":"s_x","tenant":`,
			badWhen,
			noWho,
			line(sale("t_a", "s_3", "order:2")),
		},
		want: []lineSummary{
			{Line: 1, ID: "s_2", Status: client.Accepted, Seq: 1, Receipt: true},
			{Line: 2, ID: "s_1", Status: client.Duplicate, Seq: 0, Receipt: true},
			{Line: 3, Status: client.Rejected, Problem: "/problems/invalid-json"},
			{Line: 4, ID: "s_bad", Status: client.Rejected, Problem: "/problems/invalid-span", Field: "when"},
			{Line: 5, ID: "s_nowho", Status: client.Rejected, Problem: "/problems/invalid-span", Field: "who"},
			{Line: 6, ID: "s_3", Status: client.Accepted, Seq: 2, Receipt: true},
		},
		counts: [3]int{2, 1, 3},
	}, {
		name:  "every line rejected is a result, not an error",
		lines: []string{badWhen, noWho},
		want: []lineSummary{
			{Line: 1, ID: "s_bad", Status: client.Rejected, Problem: "/problems/invalid-span", Field: "when"},
			{Line: 2, ID: "s_nowho", Status: client.Rejected, Problem: "/problems/invalid-span", Field: "who"},
		},
		counts: [3]int{0, 0, 2},
	}, {
		name:   "one line, rejected",
		lines:  []string{badWhen},
		want:   []lineSummary{{Line: 1, ID: "s_bad", Status: client.Rejected, Problem: "/problems/invalid-span", Field: "when"}},
		counts: [3]int{0, 0, 1},
	}, {
		name:   "a span spread over lines is compacted",
		lines:  []string{"{\n  \"id\": \"s_9\", \"tenant\": \"t_a\", \"who\": \"dan\", \"did\": \"sale.post\",\n  \"this\": \"order:1\", \"when\": \"2025-10-05T22:18:07Z\", \"status\": \"confirmed\"\n}"},
		want:   []lineSummary{{Line: 1, ID: "s_9", Status: client.Accepted, Seq: 0, Receipt: true}},
		counts: [3]int{1, 0, 0},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, serverOpts{})
			c := newClient(t, ts.URL)
			if len(tt.before) > 0 {
				ingest(t, c, tt.before...)
			}
			raw := make([][]byte, len(tt.lines))
			for i, l := range tt.lines {
				raw[i] = []byte(l)
			}
			res, err := c.IngestRaw(testCtx(t), raw...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, summarize(res.Results)); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			if got := [3]int{res.Accepted, res.Duplicates, res.Rejected}; got != tt.counts {
				t.Errorf("counts = %v, want %v", got, tt.counts)
			}
			for _, r := range res.Results {
				err := r.Err()
				if r.Stored() != (err == nil) {
					t.Errorf("line %d: Stored %v but Err %v", r.Line, r.Stored(), err)
				}
				var ae *client.Error
				if err != nil && (!errors.As(err, &ae) || ae.Problem != *r.Problem) {
					t.Errorf("line %d: Err() = %v, want an *Error with the line's problem", r.Line, err)
				}
			}
		})
	}
}

func TestIngestRawRefusesUnframeable(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1") // never reached
	for _, in := range []string{"", "  ", "{\"id\":\n"} {
		if _, err := c.IngestRaw(testCtx(t), []byte(in)); err == nil {
			t.Errorf("IngestRaw(%q): no error", in)
		}
	}
	if _, err := c.Ingest(testCtx(t)); err == nil {
		t.Error("Ingest(): no error")
	}
}

// TestIngestRequestErrors covers answers that refuse a request as a whole:
// the problem reaches the caller as an *Error, and only passing failures
// are retried.
func TestIngestRequestErrors(t *testing.T) {
	tests := []struct {
		name     string
		cfg      func(*server.Config)
		inject   http.Handler // answers every POST /ingest
		spans    []client.Span
		status   int
		typ      string
		is       error
		requests int // POST /ingest requests seen
	}{{
		name:     "body too large",
		cfg:      func(c *server.Config) { c.Limits.BodyBytes, c.Limits.LineBytes = 1024, 1024 },
		spans:    sales("t_a", 0, 20),
		status:   413,
		typ:      "/problems/body-too-large",
		requests: 1,
	}, {
		name:     "too many lines",
		cfg:      func(c *server.Config) { c.Limits.LinesPerRequest = 2 },
		spans:    sales("t_a", 0, 3),
		status:   413,
		typ:      "/problems/too-many-lines",
		requests: 1,
	}, {
		name:     "unauthenticated",
		inject:   problemHandler(401, "/problems/unauthenticated", "authentication required"),
		spans:    sales("t_a", 0, 1),
		status:   401,
		typ:      "/problems/unauthenticated",
		is:       client.ErrUnauthenticated,
		requests: 1,
	}, {
		name:     "forbidden",
		inject:   problemHandler(403, "/problems/forbidden", "not allowed"),
		spans:    sales("t_a", 0, 1),
		status:   403,
		typ:      "/problems/forbidden",
		is:       client.ErrForbidden,
		requests: 1,
	}, {
		name:     "rate limited, retried until the attempts run out",
		inject:   problemHandler(429, "/problems/quota-exceeded", "quota exceeded"),
		spans:    sales("t_a", 0, 1),
		status:   429,
		typ:      "/problems/quota-exceeded",
		is:       client.ErrRateLimited,
		requests: 4,
	}, {
		name:     "a Retry-After beyond MaxDelay is not waited for",
		inject:   problemHandler(503, "/problems/overloaded", "server overloaded", "Retry-After", "60"),
		spans:    sales("t_a", 0, 1),
		status:   503,
		typ:      "/problems/overloaded",
		requests: 1,
	}, {
		name:     "a span without an id is not retried",
		inject:   problemHandler(503, "/problems/overloaded", "server overloaded"),
		spans:    []client.Span{sale("t_a", "", "order:1")},
		status:   503,
		typ:      "/problems/overloaded",
		requests: 1,
	}, {
		name: "an answer that is not a problem",
		inject: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusTeapot)
			w.Write([]byte("<h1>teapot</h1>"))
		}),
		spans:    sales("t_a", 0, 1),
		status:   418,
		requests: 1,
	}}
	// The cases without a configuration of their own share a server.
	var shared switchable
	sharedURL := startServer(t, serverOpts{wrap: shared.wrap}).URL
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rc routeCounter
			wrap := func(h http.Handler) http.Handler {
				if tt.inject != nil {
					inner := h
					h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if r.URL.Path == "/ingest" {
							tt.inject.ServeHTTP(w, r)
							return
						}
						inner.ServeHTTP(w, r)
					})
				}
				return rc.wrap(h)
			}
			url := sharedURL
			if tt.cfg != nil {
				url = startServer(t, serverOpts{cfg: tt.cfg, wrap: wrap}).URL
			} else {
				shared.use(wrap)
			}
			c := newClient(t, url)
			res, err := c.Ingest(testCtx(t), tt.spans...)
			var ae *client.Error
			if !errors.As(err, &ae) {
				t.Fatalf("Ingest = %+v, %v; want an *Error", res, err)
			}
			if ae.Status != tt.status || ae.Problem.Type != tt.typ {
				t.Errorf("error %d %q, want %d %q (%v)", ae.Status, ae.Problem.Type, tt.status, tt.typ, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			for _, s := range []error{client.ErrNotFound, client.ErrUnauthenticated, client.ErrForbidden, client.ErrRateLimited} {
				if s != tt.is && errors.Is(err, s) {
					t.Errorf("errors.Is(%v, %v) = true", err, s)
				}
			}
			if got := rc.count("POST /ingest"); got != tt.requests {
				t.Errorf("%d requests, want %d", got, tt.requests)
			}
		})
	}
}

func TestNew(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://x", "http://", "http://x/?a=b", "http://x/#f", "http://[::1"} {
		if _, err := client.New(u); err == nil {
			t.Errorf("New(%q): no error", u)
		}
	}
	if _, err := client.New("http://x", client.WithHTTPClient(nil)); err == nil {
		t.Error("New with a nil *http.Client: no error")
	}
	if _, err := client.New("http://x", client.WithTokenSource(nil)); err == nil {
		t.Error("New with a nil token source: no error")
	}
}

// TestHeaders checks the token source is asked for every request and its
// token sent, with the user agent.
func TestHeaders(t *testing.T) {
	type seen struct{ Auth, UA string }
	var got []seen
	ts := startServer(t, serverOpts{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = append(got, seen{r.Header.Get("Authorization"), r.Header.Get("User-Agent")})
			h.ServeHTTP(w, r)
		})
	}})
	n := 0
	c := newClient(t, ts.URL, client.WithUserAgent("bakery-till/2"), client.WithTokenSource(func(ctx context.Context) (string, error) {
		n++
		return fmt.Sprintf("tok%d", n), nil
	}))
	ingest(t, c, sale("t_a", "s_1", "order:1"))
	if _, err := c.Key(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	want := []seen{{"Bearer tok1", "bakery-till/2"}, {"Bearer tok2", "bakery-till/2"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	bad := newClient(t, ts.URL, client.WithTokenSource(func(ctx context.Context) (string, error) { return "", errors.New("no refresh token") }))
	if _, err := bad.Key(testCtx(t)); err == nil || !strings.Contains(err.Error(), "no refresh token") {
		t.Errorf("Key with a failing token source: %v", err)
	}
	if len(got) != 2 {
		t.Errorf("a failing token source sent a request anyway")
	}
}
