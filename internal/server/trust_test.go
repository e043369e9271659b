package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/loglineos/loglineos/internal/identity"
)

// prodServer is a server in production mode (login required, TLS said to
// end at a proxy) served over a real listener on 127.0.0.1 by the
// http.Server that logline serve builds.
type prodServer struct {
	s    *Server
	base string
}

func startProdServer(t *testing.T, mutate func(*Config)) *prodServer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Data = t.TempDir()
	cfg.Production, cfg.TrustedProxyTLS = true, true
	cfg.Derive.TickInterval = 0
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := cfg.HTTPServer(s.Handler(), nil)
	go srv.Serve(ln)
	t.Cleanup(func() {
		s.BeginShutdown()
		srv.Close()
		s.Close()
	})
	return &prodServer{s: s, base: "http://" + ln.Addr().String()}
}

// account creates a service account of tenant with role and returns its
// id and a token got from POST /auth/token.
func (ps *prodServer) account(t *testing.T, tenant, role string) (id, token string) {
	t.Helper()
	return serviceToken(t, ps.s, ps.base, tenant, role)
}

// serviceToken creates a service account of tenant with role on s and
// exchanges its secret for a token at base's POST /auth/token.
func serviceToken(tb testing.TB, s *Server, base, tenant, role string) (id, token string) {
	tb.Helper()
	acct, secret, err := s.identity.CreateServiceAccount(context.Background(), identity.NewServiceAccount{Tenant: tenant, Role: role})
	if err != nil {
		tb.Fatal(err)
	}
	return acct.ID, exchange(tb, base, acct.ID, secret)
}

// exchange swaps a service account's secret for a token.
func exchange(tb testing.TB, base, id, secret string) string {
	tb.Helper()
	resp, err := http.PostForm(base+"/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}})
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	if tok.AccessToken == "" {
		tb.Fatalf("no token for %s (HTTP %d)", id, resp.StatusCode)
	}
	return tok.AccessToken
}

// operatorToken exchanges the bootstrap operator's credentials.
func (ps *prodServer) operatorToken(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ps.s.cfg.Data, "identity", "operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	var op map[string]string
	if err := json.Unmarshal(b, &op); err != nil {
		t.Fatal(err)
	}
	return exchange(t, ps.base, op["client_id"], op["client_secret"])
}

// do sends a request with a bearer token and returns the status and body.
func (ps *prodServer) do(t *testing.T, client *http.Client, method, path, token, ctype, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, ps.base+path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// ingestWithin posts one span as tenant and fails the test unless it is
// answered 200 within a second.
func (ps *prodServer) ingestWithin(t *testing.T, client *http.Client, token, tenant string, i int) {
	t.Helper()
	start := time.Now()
	line := string(appendSpanLine(nil, tenant, int64(i)))
	code, _, body := ps.do(t, client, "POST", "/ingest", token, "application/x-ndjson", line)
	if el := time.Since(start); code != 200 || el > time.Second {
		t.Fatalf("tenant %s's single-span ingest %d: HTTP %d after %s: %s", tenant, i, code, el.Round(time.Millisecond), body)
	}
}

// rawRequest opens a connection and writes head (a request line and
// headers, without the blank line) and the blank line.
func rawRequest(t *testing.T, base, head string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestUnauthenticatedHugeDeclaredBody: connections that declare a 256 MiB
// body and send none, to the token endpoint and to /ingest without a token,
// are refused at once (413 problem+json, 401) and do not stop another
// tenant's ingest.
func TestUnauthenticatedHugeDeclaredBody(t *testing.T) {
	ps := startProdServer(t, nil)
	_, tokB := ps.account(t, "t_b", identity.RoleApp)
	client := &http.Client{Timeout: 5 * time.Second}
	var conns []net.Conn
	for range 8 {
		conns = append(conns, rawRequest(t, ps.base, "POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 268435456"))
		conns = append(conns, rawRequest(t, ps.base, "POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: 268435456"))
	}
	for round := range 5 {
		ps.ingestWithin(t, client, tokB, "t_b", round)
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection %d: no answer within a second: %v", i, err)
		}
		want := 413
		if i%2 == 1 {
			want = 401
		}
		if resp.StatusCode != want || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("connection %d: HTTP %d %s, want %d problem+json", i, resp.StatusCode, resp.Header.Get("Content-Type"), want)
		}
	}
}

// trickle sends a chunked request's head and then one small chunk every
// few milliseconds until stop is closed.
func trickle(t *testing.T, base, head string, stop <-chan struct{}, wg *sync.WaitGroup) {
	c := rawRequest(t, base, head+"\r\nTransfer-Encoding: chunked")
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := io.WriteString(c, "1\r\n \r\n"); err != nil {
					return
				}
			}
		}
	}()
}

// TestNeverEndingChunkedBodies: twenty connections of one tenant trickle
// chunked bodies into /ingest forever, and twenty more into the token
// endpoint without a token, while another tenant's single-span ingest is
// answered 200 within a second, again and again.
func TestNeverEndingChunkedBodies(t *testing.T) {
	ps := startProdServer(t, nil)
	_, tokA := ps.account(t, "t_a", identity.RoleApp)
	_, tokB := ps.account(t, "t_b", identity.RoleApp)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	for range 20 {
		trickle(t, ps.base, "POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nAuthorization: Bearer "+tokA, stop, &wg)
		trickle(t, ps.base, "POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded", stop, &wg)
	}
	time.Sleep(100 * time.Millisecond) // the trickles are under way
	client := &http.Client{Timeout: 5 * time.Second}
	for round := range 10 {
		ps.ingestWithin(t, client, tokB, "t_b", round)
		time.Sleep(50 * time.Millisecond)
	}
}

// streamEnd is how an open stream ended.
type streamEnd struct {
	what   string
	detail string // the final problem line, or the close code and reason
	all    string // everything received
	err    error
}

// followNDJSON reads an NDJSON stream until it ends and reports its last line.
func followNDJSON(t *testing.T, ps *prodServer, path, token string, ended chan<- streamEnd) {
	t.Helper()
	req, _ := http.NewRequest("GET", ps.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s: HTTP %d %s", path, resp.StatusCode, b)
	}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var all strings.Builder
		last := ""
		for sc.Scan() {
			last = sc.Text()
			all.WriteString(last + "\n")
		}
		ended <- streamEnd{what: path, detail: last, all: all.String(), err: sc.Err()}
	}()
}

// followWS reads a WebSocket until it is closed and reports the close.
func followWS(t *testing.T, ps *prodServer, path, token string, ended chan<- streamEnd) {
	t.Helper()
	c, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(ps.base, "http")+path,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	go func() {
		defer c.CloseNow()
		var all strings.Builder
		for {
			_, msg, err := c.Read(context.Background())
			if err != nil {
				ended <- streamEnd{what: path, detail: fmt.Sprintf("%d %s", websocket.CloseStatus(err), closeReason(err)), all: all.String(), err: err}
				return
			}
			all.Write(append(msg, '\n'))
		}
	}()
}

func closeReason(err error) string {
	var ce websocket.CloseError
	errors.As(err, &ce)
	return ce.Reason
}

// TestStreamsEndAtRevocation: revoking a service account (the admin route
// logline accounts revoke calls) ends its open NDJSON streams with a final
// token-revoked problem line and its WebSockets with close code 4401,
// within a second, and what is ingested afterwards never reaches them.
func TestStreamsEndAtRevocation(t *testing.T) {
	ps := startProdServer(t, nil)
	idA, tokA := ps.account(t, "t_a", identity.RoleWriter)
	_, tokA2 := ps.account(t, "t_a", identity.RoleApp)
	op := ps.operatorToken(t)
	client := &http.Client{Timeout: 5 * time.Second}
	ps.ingestWithin(t, client, tokA2, "t_a", 0)

	ended := make(chan streamEnd, 4)
	followNDJSON(t, ps, "/ledger/stream?tenant=t_a&follow=true", tokA, ended)
	followNDJSON(t, ps, "/derived/stream?tenant=t_a&follow=true", tokA, ended)
	followWS(t, ps, "/ledger/ws?tenant=t_a", tokA, ended)
	followWS(t, ps, "/derived/ws?tenant=t_a", tokA, ended)

	code, _, body := ps.do(t, client, "DELETE", "/admin/tenants/t_a/service-accounts/"+idA, op, "", "")
	if code != 204 {
		t.Fatalf("revoke: HTTP %d %s", code, body)
	}
	revoked := time.Now()
	ps.ingestWithin(t, client, tokA2, "t_a", 1)
	deadline := time.After(time.Second)
	for range 4 {
		select {
		case e := <-ended:
			t.Logf("%s ended after %s: %s", e.what, time.Since(revoked).Round(time.Millisecond), e.detail)
			if strings.Contains(e.all, `"s_1"`) {
				t.Errorf("%s received a span ingested after the revocation: %s", e.what, e.all)
			}
			if strings.Contains(e.what, "/ws") {
				if !strings.HasPrefix(e.detail, "4401 ") || !strings.Contains(e.detail, "cursor=") {
					t.Errorf("%s: closed %q, want 4401 with a cursor to resume from", e.what, e.detail)
				}
				continue
			}
			var p struct {
				Type   string  `json:"type"`
				Cursor *uint64 `json:"cursor"`
			}
			if err := json.Unmarshal([]byte(e.detail), &p); err != nil || p.Type != "/problems/token-revoked" || p.Cursor == nil {
				t.Errorf("%s: last line %q, want a token-revoked problem with a cursor", e.what, e.detail)
			}
		case <-deadline:
			t.Fatalf("a stream outlived its revoked token by over a second")
		}
	}
}

// TestStreamCapPerTenant: one tenant opening streams (from several
// accounts) is refused with a problem before it holds the server's every
// stream slot, and another tenant can still open one.
func TestStreamCapPerTenant(t *testing.T) {
	ps := startProdServer(t, nil)
	var toks []string
	for range 8 {
		_, tok := ps.account(t, "t_a", identity.RoleReader)
		toks = append(toks, tok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(token, tenant string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", ps.base+"/ledger/stream?follow=true&tenant="+tenant, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		return http.DefaultClient.Do(req)
	}
	opened := 0
	for i := 0; ; i++ {
		if i == ps.s.cfg.Overload.MaxStreams {
			t.Fatalf("tenant t_a opened all %d stream slots", i)
		}
		resp, err := open(toks[i%len(toks)], "t_a")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 200 {
			opened++
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if (resp.StatusCode != 429 && resp.StatusCode != 503) || resp.Header.Get("Content-Type") != "application/problem+json" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("refusal of stream %d: HTTP %d %s %s", i, resp.StatusCode, resp.Header, b)
		}
		t.Logf("t_a refused after %d streams: %s", opened, b)
		break
	}
	_, tokB := ps.account(t, "t_b", identity.RoleReader)
	resp, err := open(tokB, "t_b")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("tenant t_b could not open a stream: HTTP %d %s", resp.StatusCode, b)
	}
}

// TestMetricsNeedCapability: GET /metrics answers only a caller with
// metrics.read (an operator), and /metrics/public names no tenant.
func TestMetricsNeedCapability(t *testing.T) {
	ps := startProdServer(t, nil)
	_, tok := ps.account(t, "t_secretive", identity.RoleWriter)
	client := &http.Client{Timeout: 5 * time.Second}
	ps.ingestWithin(t, client, tok, "t_secretive", 0)
	if code, h, body := ps.do(t, client, "GET", "/metrics", "", "", ""); code != 401 || h.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("without a token: HTTP %d %s", code, body)
	}
	if code, _, body := ps.do(t, client, "GET", "/metrics", tok, "", ""); code != 403 || !strings.Contains(body, "metrics.read") {
		t.Fatalf("a tenant's writer: HTTP %d %s", code, body)
	}
	code, _, body := ps.do(t, client, "GET", "/metrics", ps.operatorToken(t), "", "")
	if code != 200 || !strings.Contains(body, "t_secretive") {
		t.Fatalf("the operator: HTTP %d %.200s", code, body)
	}
	code, _, body = ps.do(t, client, "GET", "/metrics/public", "", "", "")
	if code != 200 || strings.Contains(body, "t_secretive") {
		t.Fatalf("/metrics/public: HTTP %d, names a tenant: %s", code, body)
	}
}

// TestHeaderTooLargeIsAProblem: request headers over limits.header_bytes,
// sent over a real connection, are answered 431 as problem+json.
func TestHeaderTooLargeIsAProblem(t *testing.T) {
	ps := startProdServer(t, nil)
	c := rawRequest(t, ps.base, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 100<<10))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 431 || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(b), "/problems/header-too-large") {
		t.Fatalf("HTTP %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
}

// TestDryRunUnknownPolicy: a dry run naming a policy the cycle does not
// know is refused with 400, naming it and the known ones.
func TestDryRunUnknownPolicy(t *testing.T) {
	ps := startProdServer(t, nil)
	_, tok := ps.account(t, "t_a", identity.RoleWriter)
	client := &http.Client{Timeout: 5 * time.Second}
	span := string(appendSpanLine(nil, "t_a", 1))
	body := `{"policies":{"no_such_policy":{"x":1}},"spans":[` + strings.TrimSpace(span) + `]}`
	code, _, resp := ps.do(t, client, "POST", "/quality/dryrun", tok, "application/json", body)
	if code != 400 || !strings.Contains(resp, "no_such_policy") || !strings.Contains(resp, "trajectory_linker") {
		t.Fatalf("HTTP %d %s", code, resp)
	}
}
