package client_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loglineos/loglineos/client"
	"github.com/loglineos/loglineos/internal/server"
)

// testServer is a real LogLineOS server in dev mode, in-process, on
// 127.0.0.1.
type testServer struct {
	srv *server.Server
	URL string
}

// serverOpts adjust a test server.
type serverOpts struct {
	cfg  func(*server.Config)            // adjusts the configuration
	wrap func(http.Handler) http.Handler // wraps the handler, to inject faults
}

func startServer(t testing.TB, o serverOpts) *testServer {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Data = t.TempDir()
	cfg.Dev = true
	small(&cfg)
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	s, err := server.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = s.Handler()
	if o.wrap != nil {
		// The wraps look at the route's path, as the server's mux does:
		// without the API version the client puts first.
		h = unversioned(o.wrap(h))
	}
	hs := httptest.NewServer(h)
	t.Cleanup(func() {
		s.BeginShutdown()
		hs.Close()
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return &testServer{srv: s, URL: hs.URL}
}

// small sizes a test server's ledger for a few spans: the default dedup
// filter (64 MiB, every page touched at open) takes most of a second to
// set up under the race detector.
func small(cfg *server.Config) {
	cfg.Ledger.DedupFilterBytes = 1 << 20
}

// fastRetry retries quickly, so that tests of retries stay short.
var fastRetry = client.WithRetry(client.RetryPolicy{Attempts: 4, MinDelay: 5 * time.Millisecond, MaxDelay: 2 * time.Second})

func newClient(t testing.TB, url string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(url, append([]client.Option{fastRetry}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testCtx is a context bounded in time, so that a hung test fails rather
// than waits.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// when is a valid span time, a little in the past.
var when = time.Date(2025, 10, 5, 22, 18, 7, 0, time.UTC)

// sale returns a valid span.
func sale(tenant, id, this string) client.Span {
	return client.Span{ID: id, Tenant: tenant, Who: "dan", Did: "sale.post", This: this, When: when,
		Status: "confirmed", ConfirmedBy: []string{"pos://register-7"}, Data: []byte(`{"gross":19.9,"items":3}`)}
}

// sales returns n valid spans s_<from>... of one thing.
func sales(tenant string, from, n int) []client.Span {
	out := make([]client.Span, n)
	for i := range out {
		out[i] = sale(tenant, fmt.Sprintf("s_%d", from+i), "order:1")
	}
	return out
}

// ingest posts spans and fails the test unless every one is accepted.
func ingest(t testing.TB, c *client.Client, spans ...client.Span) *client.IngestResult {
	t.Helper()
	res, err := c.Ingest(testCtx(t), spans...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != len(spans) {
		t.Fatalf("accepted %d of %d: %+v", res.Accepted, len(spans), res.Results)
	}
	return res
}

// routeCounter counts the requests of each route and the most in flight at
// once.
type routeCounter struct {
	mu       sync.Mutex
	n        map[string]int
	inflight int
	peak     int
	lines    []int // lines per ingest request, in arrival order
}

func (rc *routeCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var lines int
		if r.Method == http.MethodPost && r.URL.Path == "/ingest" {
			b, _ := io.ReadAll(r.Body)
			lines = bytes.Count(b, []byte{'\n'})
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		rc.mu.Lock()
		if lines > 0 {
			rc.lines = append(rc.lines, lines)
		}
		if rc.n == nil {
			rc.n = map[string]int{}
		}
		rc.n[r.Method+" "+r.URL.Path]++
		rc.inflight++
		rc.peak = max(rc.peak, rc.inflight)
		rc.mu.Unlock()
		defer func() {
			rc.mu.Lock()
			rc.inflight--
			rc.mu.Unlock()
		}()
		h.ServeHTTP(w, r)
	})
}

func (rc *routeCounter) ingestLines() []int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]int(nil), rc.lines...)
}

func (rc *routeCounter) count(route string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.n[route]
}

// switchable lets the cases of a table share one server, each with its
// own wrap: give its wrap to startServer, then use before each case.
type switchable struct {
	inner   http.Handler // the server's handler
	current atomic.Pointer[http.Handler]
}

func (s *switchable) wrap(h http.Handler) http.Handler {
	s.inner = h
	s.current.Store(&h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*s.current.Load()).ServeHTTP(w, r) })
}

// use serves the next requests through wrap(the server's handler).
func (s *switchable) use(wrap func(http.Handler) http.Handler) {
	h := wrap(s.inner)
	s.current.Store(&h)
}

// problemHandler answers with a problem.
func problemHandler(status int, typ, title string, header ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"type":%q,"title":%q,"status":%d,"detail":"injected by the test"}`+"\n", typ, title, status)
	})
}

// unversioned serves h with the API version taken off the front of the
// path, when it is there (the server takes it off as well).
func unversioned(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := strings.CutPrefix(r.URL.Path, "/v1/"); ok {
			r2 := r.Clone(r.Context())
			r2.URL.Path, r2.URL.RawPath = "/"+p, ""
			if rp, ok := strings.CutPrefix(r.URL.RawPath, "/v1/"); ok {
				r2.URL.RawPath = "/" + rp
			}
			r = r2
		}
		h.ServeHTTP(w, r)
	})
}
