package gateway

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/span"
)

// keyAuth authenticates "Bearer NAME" as the principal of that name.
type keyAuth map[string]*identity.Principal

func (a keyAuth) Authenticate(r *http.Request) (*identity.Principal, error) {
	name, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if p, ok := a[name]; ok {
		c := *p
		return &c, nil
	}
	return nil, &identity.Error{Kind: identity.KindUnauthenticated, Reason: identity.ReasonBadSignature}
}

func writerOf(tenant, subject string) *identity.Principal {
	return &identity.Principal{Subject: subject, Tenant: tenant, Roles: []string{"writer"},
		Caps: []identity.Capability{identity.CapIngest, identity.CapStreamRead, identity.CapReceiptsRead, identity.CapQualityDryrun}}
}

// send serves one request with a bearer name and returns the recorder.
func send(h http.Handler, method, path, bearer, ctype string, body io.Reader, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, body)
	if bearer != "" {
		r.Header.Set("Authorization", "Bearer "+bearer)
	}
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func problemOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("HTTP %d %s, not a problem: %s", w.Code, ct, w.Body)
	}
	var p reply.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p.Type
}

// tripwire is a body that remembers whether it was read.
type tripwire struct {
	read bool
}

func (b *tripwire) Read(p []byte) (int, error) {
	b.read = true
	return 0, io.EOF
}

// TestCapabilityCheckedBeforeBody: a principal whose roles lack the
// route's capability is refused 403 forbidden naming it, before a byte of
// its body is read.
func TestCapabilityCheckedBeforeBody(t *testing.T) {
	reader := &identity.Principal{Subject: "sa:reader", Tenant: "t_a", Roles: []string{"reader"},
		Caps: []identity.Capability{identity.CapStreamRead, identity.CapReceiptsRead}}
	g, _ := newTestGateway(t, func(c *Config) {
		c.Auth = keyAuth{"reader": reader}
		c.DryRun = func(string, []*span.Span, map[string]any, derive.SimConfig) (derive.Summary, DryRunPolicy, error) {
			return derive.Summary{}, DryRunPolicy{}, nil
		}
	})
	for _, tt := range []struct{ path, capability string }{{"/ingest", "ingest"}, {"/quality/dryrun", "quality.dryrun"}} {
		body := &tripwire{}
		w := send(g, "POST", tt.path, "reader", ndjson, body)
		if w.Code != 403 || problemOf(t, w) != "/problems/forbidden" || !strings.Contains(w.Body.String(), tt.capability) {
			t.Fatalf("%s: HTTP %d %s", tt.path, w.Code, w.Body)
		}
		if body.read {
			t.Fatalf("%s: the body was read before the capability was checked", tt.path)
		}
	}
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// TestContentEncoding: gzip is decoded on /ingest; any other encoding, or
// a body that is not gzip, is refused; nothing is ignored.
func TestContentEncoding(t *testing.T) {
	g, _ := newTestGateway(t, func(c *Config) { c.Auth = keyAuth{"a": writerOf("t_a", "sa:a")} })
	tests := []struct {
		name, encoding string
		body           []byte
		status         int
		problem        string
	}{
		{"gzip", "gzip", gzipped(t, []byte(goodSpan("gz_1"))), 200, ""},
		{"identity", "identity", []byte(goodSpan("gz_2")), 200, ""},
		{"plain body said to be gzip", "gzip", []byte(goodSpan("gz_3")), 400, "/problems/bad-request"},
		{"brotli", "br", []byte(goodSpan("gz_4")), 415, "/problems/unsupported-encoding"},
		{"two encodings", "gzip, gzip", gzipped(t, gzipped(t, []byte(goodSpan("gz_5")))), 415, "/problems/unsupported-encoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := send(g, "POST", "/ingest", "a", ndjson, bytes.NewReader(tt.body), "Content-Encoding", tt.encoding)
			if w.Code != tt.status {
				t.Fatalf("HTTP %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if tt.problem != "" && problemOf(t, w) != tt.problem {
				t.Fatalf("problem %s, want %s", problemOf(t, w), tt.problem)
			}
		})
	}
}

// TestGzipBomb: a small gzip body that expands past limits.body_bytes is
// refused 413, and the server allocates about the limit, not the expanded
// size.
func TestGzipBomb(t *testing.T) {
	g, _ := newTestGateway(t, func(c *Config) { c.Auth = keyAuth{"a": writerOf("t_a", "sa:a")} })
	const expanded = 128 << 20 // the limit is 1 MiB
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zero := make([]byte, 1<<20)
	for range expanded / len(zero) {
		zw.Write(zero)
	}
	zw.Close()
	bomb := buf.Bytes()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	w := send(g, "POST", "/ingest", "a", ndjson, bytes.NewReader(bomb), "Content-Encoding", "gzip")
	runtime.ReadMemStats(&after)
	if w.Code != 413 || problemOf(t, w) != "/problems/body-too-large" {
		t.Fatalf("a %d-byte bomb of %d: HTTP %d %s", len(bomb), expanded, w.Code, w.Body)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Fatalf("the server allocated %d bytes for a bomb of %d bytes expanding to %d", alloc, len(bomb), expanded)
	}
}

// TestDryRunBounds: dry runs count their spans against the tenant's quota
// and run at most overload.max_tenant_dry_runs per tenant (429) and
// max_dry_runs in all (503), each refusal with Retry-After.
func TestDryRunBounds(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	q := &countingQuota{}
	g, _ := newTestGateway(t, func(c *Config) {
		c.Auth = keyAuth{"a": writerOf("t_a", "sa:a"), "a2": writerOf("t_a", "sa:a2"), "b": writerOf("t_b", "sa:b"), "c": writerOf("t_c", "sa:c")}
		c.Quota = q
		c.Overload = OverloadConfig{MaxDryRuns: 2, MaxTenantDryRuns: 1}
		c.DryRun = func(string, []*span.Span, map[string]any, derive.SimConfig) (derive.Summary, DryRunPolicy, error) {
			started <- struct{}{}
			<-release
			return derive.Summary{}, DryRunPolicy{}, nil
		}
	})
	body := goodSpan("d_1") + "\n" + goodSpan("d_2") + "\n" + goodSpan("d_3") + "\n"
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for _, who := range []string{"a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- send(g, "POST", "/quality/dryrun", who, ndjson, strings.NewReader(body)).Code
		}()
		<-started
	}
	w := send(g, "POST", "/quality/dryrun", "a2", ndjson, strings.NewReader(body))
	if w.Code != 429 || problemOf(t, w) != "/problems/too-many-in-flight" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("a second dry run of tenant t_a: HTTP %d %s", w.Code, w.Body)
	}
	w = send(g, "POST", "/quality/dryrun", "c", ndjson, strings.NewReader(body))
	if w.Code != 503 || problemOf(t, w) != "/problems/overloaded" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("a third dry run on the server: HTTP %d %s", w.Code, w.Body)
	}
	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("a dry run within the bounds: HTTP %d", c)
		}
	}
	if got := q.spans("t_a"); got != 3 {
		t.Fatalf("tenant t_a's dry run counted %d spans against its quota, want 3", got)
	}
}

// countingQuota counts the spans each tenant is charged.
type countingQuota struct {
	mu sync.Mutex
	n  map[string]int
}

// AllowCost counts route costs apart (cost:<tenant>), so that span counts
// stay what the dry run charged.
func (q *countingQuota) AllowCost(p *identity.Principal, n int) error {
	return q.AllowPrincipal(&identity.Principal{Tenant: "cost:" + p.Tenant}, n)
}

func (q *countingQuota) AllowPrincipal(p *identity.Principal, n int) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == nil {
		q.n = map[string]int{}
	}
	q.n[p.Tenant] += n
	return nil
}

func (q *countingQuota) spans(tenant string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n[tenant]
}

// TestClientShareOfBodyBytes: one client cannot hold more body bytes than
// its share (429), while another client is served.
func TestClientShareOfBodyBytes(t *testing.T) {
	g, _ := newTestGateway(t, func(c *Config) {
		c.Auth = keyAuth{"a": writerOf("t_a", "sa:a"), "a2": writerOf("t_a", "sa:a2")}
		c.Overload = OverloadConfig{MaxInflightBytes: 1 << 20, MaxClientBytes: 4 << 10}
	})
	// Client a holds most of its share in another request.
	u := g.clients.acquire(clientKey{tenant: "t_a", subject: "sa:a"}, nil)
	u.bytes.Add(4<<10 - 64)
	w := send(g, "POST", "/ingest", "a", ndjson, strings.NewReader(goodSpan("c_1")))
	if w.Code != 429 || problemOf(t, w) != "/problems/too-many-in-flight" || !strings.Contains(w.Body.String(), "max_client_bytes") {
		t.Fatalf("over the client's share: HTTP %d %s", w.Code, w.Body)
	}
	if w := send(g, "POST", "/ingest", "a2", ndjson, strings.NewReader(goodSpan("c_2"))); w.Code != 200 {
		t.Fatalf("another client: HTTP %d %s", w.Code, w.Body)
	}
	u.bytes.Add(-(4<<10 - 64))
	g.clients.release(clientKey{tenant: "t_a", subject: "sa:a"}, u, nil)
	if w := send(g, "POST", "/ingest", "a", ndjson, strings.NewReader(goodSpan("c_3"))); w.Code != 200 {
		t.Fatalf("after: HTTP %d %s", w.Code, w.Body)
	}
	if n := g.inflightBytes.Load(); n != 0 {
		t.Fatalf("%d body bytes still charged after every request ended", n)
	}
}

// TestUnauthenticatedBody: a route that needs no token refuses a declared
// body over limits.unauth_body_bytes at once, without reading it, and
// takes a small one.
func TestUnauthenticatedBody(t *testing.T) {
	var got []byte
	g, _ := newTestGateway(t, func(c *Config) {
		c.Mount = func(mux *http.ServeMux, wrap Wrap) {
			mux.Handle("POST /form", wrap("POST /form", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, _ = io.ReadAll(r.Body)
			}), false))
		}
	})
	r := httptest.NewRequest("POST", "/form", &tripwire{})
	r.ContentLength = 256 << 20
	w := httptest.NewRecorder()
	g.ServeHTTP(w, r)
	if w.Code != 413 || problemOf(t, w) != "/problems/body-too-large" || !strings.Contains(w.Body.String(), "unauth_body_bytes") {
		t.Fatalf("declared 256 MiB: HTTP %d %s", w.Code, w.Body)
	}
	w = send(g, "POST", "/form", "", "application/x-www-form-urlencoded", strings.NewReader(strings.Repeat("a", 9<<10)))
	if w.Code != 413 {
		t.Fatalf("9 KiB chunked: HTTP %d %s", w.Code, w.Body)
	}
	if w := send(g, "POST", "/form", "", "application/x-www-form-urlencoded", strings.NewReader("grant_type=x")); w.Code != 200 || string(got) != "grant_type=x" {
		t.Fatalf("a small form: HTTP %d, handler read %q", w.Code, got)
	}
}

// TestHeaderTooLarge: headers over limits.header_bytes are answered 431
// problem+json.
func TestHeaderTooLarge(t *testing.T) {
	g, _ := newTestGateway(t, func(c *Config) { c.Limits.HeaderBytes = 8 << 10 })
	w := send(g, "GET", "/healthz", "", "", nil, "X-Big", strings.Repeat("a", 9<<10))
	if w.Code != 431 || problemOf(t, w) != "/problems/header-too-large" {
		t.Fatalf("HTTP %d %s", w.Code, w.Body)
	}
	if w := send(g, "GET", "/healthz", "", "", nil, "X-Small", "a"); w.Code != 200 {
		t.Fatalf("small headers: HTTP %d", w.Code)
	}
}

// TestSlowBodyTimesOut: a body that stops arriving is answered 408 once
// limits.body_grace has passed at less than limits.body_min_rate, and its
// request leaves the server's bounds.
func TestSlowBodyTimesOut(t *testing.T) {
	g, _ := newTestGateway(t, func(c *Config) {
		c.Auth = keyAuth{"a": writerOf("t_a", "sa:a")}
		c.Limits.BodyGrace = 200 * time.Millisecond
		c.Limits.BodyMinRate = 1 << 20
	})
	ts := httptest.NewServer(g)
	defer ts.Close()
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	io.WriteString(c, "POST /ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nContent-Type: application/x-ndjson\r\nContent-Length: 1000\r\n\r\n{\"id\":")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 408 || !strings.Contains(string(b), "/problems/request-timeout") {
		t.Fatalf("HTTP %d %s", resp.StatusCode, b)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("answered after %s", el)
	}
	if n, b := g.inflight.Load(), g.inflightBytes.Load(); n != 0 || b != 0 {
		t.Fatalf("%d requests and %d bytes still in flight", n, b)
	}
}

// fakeRevalidator refuses the subjects it is told to.
type fakeRevalidator struct {
	mu      sync.Mutex
	revoked map[string]bool
}

func (f *fakeRevalidator) Revalidate(p *identity.Principal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.revoked[p.Subject] {
		return &identity.Error{Kind: identity.KindUnauthenticated, Reason: identity.ReasonRevoked}
	}
	return nil
}

// TestStreamsEndWithTheirToken: a stream ends at its token's expiry (NDJSON:
// a final token-expired line with the cursor; WebSocket: close 4401), and
// at a revocation of its subject, and not at another subject's.
func TestStreamsEndWithTheirToken(t *testing.T) {
	rv := &fakeRevalidator{revoked: map[string]bool{}}
	short := writerOf("t_a", "sa:short")
	short.Expires = time.Now().Add(300 * time.Millisecond)
	streams, endStreams := context.WithCancel(context.Background())
	g, _ := newTestGateway(t, func(c *Config) {
		c.Auth = keyAuth{"short": short, "long": writerOf("t_a", "sa:long"), "other": writerOf("t_a", "sa:other")}
		c.Revalidator = rv
		c.StreamContext = streams
	})
	ts := httptest.NewServer(g)
	defer ts.Close()
	defer endStreams() // before the server closes
	if w := send(g, "POST", "/ingest", "long", ndjson, strings.NewReader(goodSpan("x_1"))); w.Code != 200 {
		t.Fatalf("ingest: %d %s", w.Code, w.Body)
	}
	lastLine := func(bearer string) <-chan string {
		out := make(chan string, 1)
		req, _ := http.NewRequest("GET", ts.URL+"/ledger/stream?tenant=t_a&follow=true", nil)
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream: %v %v", err, resp)
		}
		go func() {
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			var lines []string
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			// The records received, then the last line.
			out <- fmt.Sprintf("%d\n%s", max(len(lines)-1, 0), lines[len(lines)-1])
		}()
		return out
	}
	wsClose := func(bearer string) <-chan string {
		out := make(chan string, 1)
		c, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(ts.URL, "http")+"/ledger/ws?tenant=t_a",
			&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + bearer}}})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer c.CloseNow()
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					var ce websocket.CloseError
					errors.As(err, &ce)
					out <- fmt.Sprintf("%d %s (%v)", ce.Code, ce.Reason, err)
					return
				}
			}
		}()
		return out
	}
	expiredLine, expiredWS := lastLine("short"), wsClose("short")
	revokedLine, otherLine := lastLine("long"), lastLine("other")

	within := func(what string, ch <-chan string, d time.Duration) string {
		t.Helper()
		select {
		case s := <-ch:
			return s
		case <-time.After(d):
			t.Fatalf("%s did not end within %s", what, d)
			return ""
		}
	}
	// The cursor to resume from follows the records received: the one
	// record of t_a is seq 0.
	var p reply.Problem
	n, last, _ := strings.Cut(within("the expiring stream", expiredLine, 2*time.Second), "\n")
	if err := json.Unmarshal([]byte(last), &p); err != nil || p.Type != "/problems/token-expired" || p.Cursor == nil || fmt.Sprint(*p.Cursor) != n {
		t.Fatalf("expired stream's last line after %s records: %s %v", n, last, err)
	}
	if got := within("the expiring WebSocket", expiredWS, 2*time.Second); !strings.HasPrefix(got, "4401 token expired: reconnect with a new token and cursor=") {
		t.Fatalf("expired WebSocket closed %q", got)
	}
	rv.mu.Lock()
	rv.revoked["sa:long"] = true
	rv.mu.Unlock()
	g.Revoked("sa:long")
	p = reply.Problem{}
	_, last, _ = strings.Cut(within("the revoked stream", revokedLine, time.Second), "\n")
	if err := json.Unmarshal([]byte(last), &p); err != nil || p.Type != "/problems/token-revoked" {
		t.Fatalf("revoked stream's last line: %s %v", last, err)
	}
	select {
	case s := <-otherLine:
		t.Fatalf("another subject's stream ended: %q", s)
	case <-time.After(50 * time.Millisecond):
	}
}
