package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loglineos/loglineos/client"
	"github.com/loglineos/loglineos/internal/server"
)

// saysOnce checks that err's message says each thing once: no segment
// (between ": ") repeated, the SDK's prefix once and at the start, no
// internal package's prefix; and, for an *Error, its status, problem type
// and request id each exactly once.
func saysOnce(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("%s: %q: more than one line", what, msg)
	}
	seen := map[string]bool{}
	for _, seg := range strings.Split(msg, ": ") {
		if seen[seg] {
			t.Errorf("%s: %q says %q twice", what, msg, seg)
		}
		seen[seg] = true
	}
	if !strings.HasPrefix(msg, "loglineos: ") || strings.Count(msg, "loglineos:") != 1 {
		t.Errorf("%s: %q: want one loglineos: prefix, at the start", what, msg)
	}
	for _, internal := range []string{"ledgerfmt", "span", "reply", "ledger"} {
		if seen[internal] {
			t.Errorf("%s: %q names an internal package (%s)", what, msg, internal)
		}
	}
	var ce *client.Error
	if !errors.As(err, &ce) {
		return
	}
	if ce.Problem.RequestID == "" {
		t.Errorf("%s: %q: no request id", what, msg)
	}
	for _, s := range []string{strconv.Itoa(ce.Status), ce.Problem.Type, ce.Problem.RequestID, ce.Problem.Detail} {
		if s != "" && strings.Count(msg, s) != 1 {
			t.Errorf("%s: %q says %q %d times, want once", what, msg, s, strings.Count(msg, s))
		}
	}
}

// TestErrorsSayEachOnce walks the error paths of the public functions
// against a real server (bad keys, receipts, signatures, checkpoints,
// problem answers) and checks that every message says each thing once.
func TestErrorsSayEachOnce(t *testing.T) {
	var data string
	ts := startServer(t, serverOpts{
		cfg: func(c *server.Config) { c.Dev = false; data = c.Data },
		wrap: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.URL.Path == "/ledger/stream" && r.URL.Query().Get("tenant") == "t_away": // a stream that never connects
					problemHandler(http.StatusServiceUnavailable, "/problems/overloaded", "server overloaded", "X-Request-Id", "req_injected").ServeHTTP(w, r)
					return
				case r.UserAgent() == "hang": // a request that is never answered
					io.Copy(io.Discard, r.Body) // then the server sees the client go
					<-r.Context().Done()
					return
				}
				if r.URL.Path == "/spans/proxy/s_1" { // a proxy's page, no problem
					w.Header().Set("X-Request-Id", "req_from_the_proxy")
					w.Header().Set("Content-Type", "text/html")
					w.WriteHeader(http.StatusTeapot)
					w.Write([]byte("<h1>I'm a teapot</h1>"))
					return
				}
				h.ServeHTTP(w, r)
			})
		},
	})
	id, secret := operator(t, data)
	ctx := testCtx(t)
	c := newClient(t, ts.URL, client.WithServiceAccount(id, secret))
	tenant := server.OperatorTenant

	_, err := client.New("ftp://example.org")
	saysOnce(t, "New with another scheme", err)
	_, err = client.New(ts.URL, client.WithServiceAccount(id, ""))
	saysOnce(t, "WithServiceAccount without a secret", err)

	_, err = c.Span(ctx, tenant, "s_nope")
	saysOnce(t, "Span not found", err)
	_, err = c.Span(ctx, "proxy", "s_1")
	saysOnce(t, "an answer that is not a problem", err)
	_, err = newClient(t, ts.URL).Span(ctx, tenant, "s_nope")
	saysOnce(t, "no token", err)
	_, err = newClient(t, ts.URL, client.WithServiceAccount(id, secret+"x")).Span(ctx, tenant, "s_nope")
	saysOnce(t, "wrong secret", err)
	_, err = newClient(t, ts.URL, client.WithTokenSource(func(context.Context) (string, error) {
		return "", errors.New("vault sealed")
	})).Span(ctx, tenant, "s_nope")
	saysOnce(t, "a token source that fails", err)

	spans := []client.Span{sale(tenant, "s_1", "order:1"), {ID: "s_2", Tenant: tenant, Who: "dan"}}
	res, err := c.Ingest(ctx, spans...)
	if err != nil {
		t.Fatal(err)
	}
	saysOnce(t, "a rejected span", res.Results[1].Err())
	_, err = c.Ingest(ctx)
	saysOnce(t, "Ingest of nothing", err)

	key, err := c.Key(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, sent := *res.Results[0].Receipt, mustMarshal(t, spans[0])
	forgedSig := r
	forgedSig.Sig = bytes.Clone(r.Sig)
	forgedSig.Sig[0] ^= 1
	other := spans[0]
	other.Who = "mallory"
	for _, tt := range []struct {
		what string
		err  error
	}{
		{"VerifyReceipt with a malformed key", client.VerifyReceipt("not a key", r, sent)},
		{"VerifyReceipt with another ledger's key", client.VerifyReceipt(otherKey(t), r, sent)},
		{"VerifyReceipt of a forged signature", client.VerifyReceipt(key, forgedSig, sent)},
		{"VerifyReceipt of another span's content", client.VerifyReceipt(key, r, mustMarshal(t, other))},
		{"VerifyReceipt of another span", client.VerifyReceipt(key, r, mustMarshal(t, spans[1]))},
		{"VerifyReceipt of a span that is not JSON", client.VerifyReceipt(key, r, []byte(`{"id":`))},
	} {
		saysOnce(t, tt.what, tt.err)
	}

	if _, err := ts.srv.Ledger().WriteCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	note, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.OpenCheckpoint("not a key", note)
	saysOnce(t, "OpenCheckpoint with a malformed key", err)
	_, err = client.OpenCheckpoint(otherKey(t), note)
	saysOnce(t, "OpenCheckpoint with another ledger's key", err)
	_, err = client.OpenCheckpoint(key, []byte("not a note\n"))
	saysOnce(t, "OpenCheckpoint of a malformed note", err)

	rec, err := c.Span(ctx, tenant, "s_1")
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Proof(ctx, rec.Seq, 0)
	if err != nil {
		t.Fatal(err)
	}
	forgedPath := *p
	forgedPath.Leaf[0] ^= 1
	forgedRec := *rec
	forgedRec.Body = bytes.Replace(rec.Body, []byte("dan"), []byte("eve"), 1)
	saysOnce(t, "VerifyProof of a forged leaf", client.VerifyProof(key, forgedPath, note))
	saysOnce(t, "VerifyProof against a checkpoint of another size", client.VerifyProof(key, client.Proof{Index: 0, TreeSize: p.TreeSize + 1}, note))
	saysOnce(t, "VerifyInclusion of a forged record", client.VerifyInclusion(key, forgedRec, *p, note))
	saysOnce(t, "VerifyLeaf of a forged record", forgedRec.VerifyLeaf())
	_, err = client.Record{Seq: 3, Kind: "tick", Body: []byte(`{}`)}.Span()
	saysOnce(t, "Span of a tick record", err)

	b := client.NewBatcher(c, client.BatchOptions{})
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = b.Add(ctx, sale(tenant, "s_3", "order:1"))
	saysOnce(t, "Add after Close", err)

	hung := client.NewBatcher(newClient(t, ts.URL, client.WithServiceAccount(id, secret), client.WithUserAgent("hang")), client.BatchOptions{MaxDelay: time.Millisecond})
	pending, err := hung.Add(ctx, sale(tenant, "s_4", "order:1"))
	if err != nil {
		t.Fatal(err)
	}
	closeCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := hung.Close(closeCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want the deadline", err)
	}
	_, err = pending.Wait(ctx)
	saysOnce(t, "a span whose batcher closed before the answer", err)

	for _, err := range c.Stream(ctx, client.StreamOptions{Tenant: "t_away", Retries: 2}) {
		saysOnce(t, "a stream that gives up", err)
	}
}
