package runtime

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loglineos/loglineos/client/webhook"
	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/tenant"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// compile compiles a .lll source into its routers and capabilities.
func compile(t testing.TB, src string) ([]*eval.Router, []string) {
	t.Helper()
	p, errs := lll.Compile([]lll.Source{{Name: "app.lll", Text: []byte(src)}})
	if len(errs) > 0 {
		t.Fatalf("compile: %v", errs)
	}
	prog, err := eval.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	return prog.Routers(), p.Caps
}

type tenants map[string]*tenant.Runtime

func (ts tenants) Runtime(name string) *tenant.Runtime { return ts[name] }

// appender records the spans appended; a body containing "refuse" is
// refused as a contract would.
type appender struct {
	mu    sync.Mutex
	spans []string
	seen  map[string]bool
}

func (a *appender) AppendSpan(_ context.Context, _ string, body []byte) (ledgerfmt.Receipt, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if strings.Contains(string(body), "refuse") {
		return ledgerfmt.Receipt{}, false, reply.NewProblem("invalid-span", "refused")
	}
	if a.seen == nil {
		a.seen = map[string]bool{}
	}
	if a.seen[string(body)] {
		return ledgerfmt.Receipt{Seq: 1}, true, nil
	}
	a.seen[string(body)] = true
	a.spans = append(a.spans, string(body))
	return ledgerfmt.Receipt{Seq: uint64(len(a.spans))}, false, nil
}

func (a *appender) got() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.spans...)
}

func spanRecord(seq uint64, body string) ledger.Record {
	return ledger.Record{Seq: seq, Kind: ledgerfmt.KindSpan, Body: []byte(body)}
}

func sale(id string) string {
	return fmt.Sprintf(`{"id":%q,"tenant":"acme","who":"till","did":"sale.post","this":"order:1","when":"2025-10-05T09:00:00Z","status":"confirmed"}`, id)
}

// open opens a runtime over dir with routers from src, every capability
// allowed by the server, and ts as the tenants.
func open(t *testing.T, dir, src string, ts tenants, ap Appender, mod func(*Config)) *Runtime {
	t.Helper()
	rs, caps := compile(t, src)
	cfg := Config{Dir: dir, Routers: rs, BundleCaps: caps, ServerCaps: caps, Tenants: ts, Appender: ap,
		Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		Client: func(bool) *http.Client { return &http.Client{Timeout: 5 * time.Second} }}
	if mod != nil {
		mod(&cfg)
	}
	rt, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// run runs rt until the test ends.
func run(t *testing.T, rt *Runtime) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rt.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		rt.Close()
	})
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func endpointTenant(url string, caps ...string) *tenant.Runtime {
	k, _ := webhook.ParseSecret(testSecret)
	return &tenant.Runtime{Caps: caps, Env: map[string]string{"hook": url},
		Webhooks: []tenant.Endpoint{{URL: url, Secret: testSecret, Key: k, AllowPrivate: true}}}
}

const hookRouter = `router tills {
  uses "http.request"
  route when did == "sale.post" to http.request("%s")
}`

// A span routed to http.request is delivered signed, after failures, and
// once delivered is never queued again, even when the same records are
// offered again (a restart re-derives from the cycle's last snapshot).
func TestDeliveryRetriesAndSurvivesReopen(t *testing.T) {
	var mu sync.Mutex
	var ids []string
	fail := 2
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, r.Header.Get(webhook.HeaderID))
		if fail > 0 {
			fail--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		k, _ := webhook.ParseSecret(testSecret)
		body := make([]byte, r.ContentLength)
		r.Body.Read(body)
		if _, err := (&webhook.Verifier{Secrets: []webhook.Secret{k}}).Verify(r.Header, body, time.Now()); err != nil {
			t.Errorf("delivery does not verify: %v", err)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	dir := t.TempDir()
	src := fmt.Sprintf(hookRouter, srv.URL)
	ts := tenants{"acme": endpointTenant(srv.URL, "http.request")}

	rt := open(t, dir, src, ts, nil, nil)
	if err := rt.Record(spanRecord(7, sale("s_1")), nil); err != nil {
		t.Fatal(err)
	}
	if err := rt.Sync(8); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rt.Run(ctx); close(done) }()
	waitFor(t, "delivery", func() bool { return rt.Pending() == 0 })
	cancel()
	<-done
	rt.Close()
	mu.Lock()
	if len(ids) != 3 || ids[0] != ids[1] || ids[1] != ids[2] || ids[0] != msgID(7, 0) {
		t.Fatalf("requests carried ids %v, want three of %s", ids, msgID(7, 0))
	}
	mu.Unlock()

	// Reopened: the log remembers, and the record is not routed again.
	rt = open(t, dir, src, ts, nil, nil)
	run(t, rt)
	if err := rt.Record(spanRecord(7, sale("s_1")), nil); err != nil {
		t.Fatal(err)
	}
	ds := rt.Deliveries("acme")
	if len(ds) != 1 || ds[0].State != stateDelivered || ds[0].Attempts != 3 || ds[0].LastStatus != 204 {
		t.Fatalf("deliveries after reopen: %+v", ds)
	}
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 3 {
		t.Fatalf("%d requests after reopen, want none more", len(ids)-3)
	}
}

// Actions queued but not synced are lost with a crash, and queued again
// when the records after the last routed mark are offered again; those of
// the last queued record are recognised by id.
func TestOutboxTornTailAndRequeue(t *testing.T) {
	dir := t.TempDir()
	url := "http://127.0.0.1:1/hook"
	src := fmt.Sprintf(hookRouter, url)
	ts := tenants{"acme": endpointTenant(url, "http.request")}
	rt := open(t, dir, src, ts, nil, nil)
	for seq := uint64(1); seq <= 3; seq++ {
		if err := rt.Record(spanRecord(seq, sale(fmt.Sprint("s_", seq))), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.Sync(4); err != nil {
		t.Fatal(err)
	}
	rt.Close()
	// A torn last line: a crash in the middle of a write.
	f, err := os.OpenFile(filepath.Join(dir, "outbox"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`0badc0de {"t":"q","id":"msg_torn"`)
	f.Close()

	rt = open(t, dir, src, ts, nil, nil)
	if got := rt.Pending(); got != 3 {
		t.Fatalf("pending after reopen = %d, want 3", got)
	}
	// Offered again from seq 2 (an older snapshot): nothing doubles.
	for seq := uint64(2); seq <= 4; seq++ {
		if err := rt.Record(spanRecord(seq, sale(fmt.Sprint("s_", seq))), nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := rt.Pending(); got != 4 {
		t.Fatalf("pending = %d, want 4 (seq 4 new, 1-3 once)", got)
	}
	rt.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "outbox"))
	if strings.Contains(string(b), "msg_torn") {
		t.Fatal("the torn line is still in the outbox")
	}
}

// Every host call, allowed or refused by the bundle, the server and the
// tenant: only the three together allow it.
func TestCapabilityMatrix(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	pub, priv, _ := ed25519.GenerateKey(nil)
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte("m")))
	key := base64.StdEncoding.EncodeToString(pub)
	routes := map[string]string{
		"http.request":  fmt.Sprintf(`route to http.request(%q)`, srv.URL),
		"ws.send":       `route to ws.send("ch")`,
		"ledger.append": `route to ledger.append({who: "router", did: "x", this: "t", when: "2025-10-05T09:00:00Z", status: "confirmed"})`,
		"env.get":       `route when env.get("hook") != "" to ws.send("env")`,
		"kv.get":        `route when kv.get("k") == "v" to ws.send("kv")`,
		"kv.set":        `route to kv.set("k", "v")`,
		"crypto.verify": fmt.Sprintf(`route when crypto.verify(%q, "m", %q) to ws.send("crypto")`, key, sig),
	}
	for call, route := range routes {
		for _, deny := range []string{"", "bundle", "server", "tenant"} {
			t.Run(call+"/deny="+deny, func(t *testing.T) {
				uses := []string{call}
				if call == "env.get" || call == "kv.get" || call == "crypto.verify" {
					uses = append(uses, "ws.send")
				}
				var b strings.Builder
				b.WriteString("router r {\n")
				for _, u := range uses {
					if u != "crypto.verify" {
						fmt.Fprintf(&b, "  uses %q\n", u)
					}
				}
				b.WriteString("  " + route + "\n}\n")
				rs, caps := compile(t, b.String())
				tenantCaps := append([]string{}, caps...)
				serverCaps := append([]string{}, caps...)
				bundleCaps := append([]string{}, caps...)
				drop := func(s []string) []string {
					out := s[:0]
					for _, c := range s {
						if c != call {
							out = append(out, c)
						}
					}
					return out
				}
				switch deny {
				case "bundle":
					bundleCaps = drop(bundleCaps)
				case "server":
					serverCaps = drop(serverCaps)
				case "tenant":
					tenantCaps = drop(tenantCaps)
				}
				ten := endpointTenant(srv.URL, tenantCaps...)
				ap := &appender{}
				l := openLedger(t, t.TempDir())
				cfg := Config{Dir: t.TempDir(), Routers: rs, BundleCaps: bundleCaps, ServerCaps: serverCaps,
					Tenants: tenants{"acme": ten}, Appender: ap, Ledger: l}
				rt, err := Open(cfg)
				if deny == "server" && call != "crypto.verify" {
					// A bundle needing what the server does not allow never loads.
					if !errors.Is(err, ErrCapNotAllowed) || !strings.Contains(err.Error(), "runtime.caps") {
						t.Fatalf("Open = %v, want ErrCapNotAllowed naming runtime.caps", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				defer rt.Close()
				if call == "kv.get" {
					// The key kv.get reads was written by an earlier record.
					rt.kv.apply("acme", "k", `"v"`)
				}
				sub := rt.Subscribe("acme", map[string]string{"env.get": "env", "kv.get": "kv", "crypto.verify": "crypto", "ws.send": "ch"}[call])
				if err := rt.Record(spanRecord(1, sale("s_1")), nil); err != nil {
					t.Fatal(err)
				}
				var did bool
				switch call {
				case "http.request", "ledger.append":
					did = rt.Pending() == 1
				case "kv.set":
					if err := rt.Sync(2); err != nil {
						t.Fatal(err)
					}
					did = len(kvRecords(t, l)) == 1
				default:
					select {
					case <-sub.C:
						did = true
					default:
					}
				}
				want := deny == "" || call == "crypto.verify"
				if did != want {
					t.Fatalf("performed = %v, want %v", did, want)
				}
			})
		}
	}
}

// ledger.append: a span appended by a router is routed again only up to
// MaxDepth; the spans get deterministic ids; a refused span is not retried.
func TestLedgerAppendDepthAndIDs(t *testing.T) {
	src := `router echo {
  uses "ledger.append"
  route to ledger.append({who: "router", did: did, this: this, when: when, status: "confirmed"})
}`
	ap := &appender{}
	rt := open(t, t.TempDir(), src, tenants{"acme": {Caps: []string{"ledger.append"}}}, ap, nil)
	run(t, rt)
	body := sale("s_1")
	for seq := uint64(1); seq <= MaxDepth+2; seq++ {
		if err := rt.Record(spanRecord(seq, body), nil); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "append", func() bool { return rt.Pending() == 0 })
		got := ap.got()
		if uint64(len(got)) < seq {
			if seq <= MaxDepth {
				t.Fatalf("depth %d: not appended", seq-1)
			}
			break
		}
		body = got[seq-1]
		if !strings.Contains(body, fmt.Sprintf(`"id":"rt%d_`, seq)) {
			t.Fatalf("appended span %s, want id rt%d_…", body, seq)
		}
	}
	if n := len(ap.got()); n != MaxDepth {
		t.Fatalf("%d spans appended in a loop, want MaxDepth=%d", n, MaxDepth)
	}
}

// The outcome of a refused append is final (dead), not retried forever.
func TestRefusedAppendIsDead(t *testing.T) {
	src := `router echo {
  uses "ledger.append"
  route to ledger.append({who: "refuse", did: did, this: this, when: when, status: "confirmed"})
}`
	rt := open(t, t.TempDir(), src, tenants{"acme": {Caps: []string{"ledger.append"}}}, &appender{}, nil)
	run(t, rt)
	rt.Record(spanRecord(1, sale("s_1")), nil)
	waitFor(t, "give up", func() bool { return rt.Pending() == 0 })
	ds := rt.Deliveries("acme")
	if len(ds) != 1 || ds[0].State != stateDead || ds[0].Attempts != 1 {
		t.Fatalf("deliveries %+v, want one dead after one attempt", ds)
	}
}

// Deliveries to private addresses are refused unless the endpoint allows
// them; the allow-list is the tenant's endpoints.
func TestPrivateAddressesAndAllowList(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++; w.WriteHeader(204) }))
	defer srv.Close()
	src := fmt.Sprintf(hookRouter, srv.URL)
	ten := endpointTenant(srv.URL, "http.request")
	ten.Webhooks[0].AllowPrivate = false
	rt := open(t, t.TempDir(), src, tenants{"acme": ten}, nil, func(c *Config) { c.Client = nil; c.MaxAttempts = 1 })
	run(t, rt)
	rt.Record(spanRecord(1, sale("s_1")), nil)
	waitFor(t, "give up", func() bool { return rt.Pending() == 0 })
	ds := rt.Deliveries("acme")
	if hits != 0 || len(ds) != 1 || ds[0].State != stateDead || !strings.Contains(ds[0].LastError, "private address refused") {
		t.Fatalf("hits %d, deliveries %+v: want refused before connecting", hits, ds)
	}

	// A URL the tenant does not list is never queued.
	other := open(t, t.TempDir(), fmt.Sprintf(hookRouter, "https://elsewhere.example/x"), tenants{"acme": ten}, nil, nil)
	defer other.Close()
	other.Record(spanRecord(1, sale("s_1")), nil)
	if other.Pending() != 0 {
		t.Fatal("a URL outside the allow-list was queued")
	}
}

// Routers over derived events see the event's fields (ts a timestamp).
func TestRouterOverDerivedEvents(t *testing.T) {
	src := `router c {
  input: "diamond_candidate"
  uses "ws.send"
  route when score >= 80 and ts > "2025-01-01T00:00:00Z" as "rfc3339" to ws.send("diamonds")
}`
	rs, caps := compile(t, strings.Replace(src, ` and ts > "2025-01-01T00:00:00Z" as "rfc3339"`, "", 1))
	rt, err := Open(Config{Dir: t.TempDir(), Routers: rs, BundleCaps: caps, ServerCaps: caps,
		Tenants: tenants{"acme": {Caps: []string{"ws.send"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	sub := rt.Subscribe("acme", "diamonds")
	evs := []derive.Event{
		{Type: derive.CandidateEvent, Tenant: "acme", Trajectory: derive.TrajectoryID{1}, Score: 91, Seq: 3, TS: 1e18},
		{Type: derive.CandidateEvent, Tenant: "acme", Trajectory: derive.TrajectoryID{2}, Score: 20, Seq: 3, TS: 1e18},
	}
	if err := rt.Record(ledger.Record{Seq: 3, Kind: ledgerfmt.KindTick}, evs); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-sub.C:
		if want := `"trajectory_id":"` + evs[0].Trajectory.String() + `"`; !strings.Contains(string(b), want) {
			t.Fatalf("payload %s", b)
		}
	default:
		t.Fatal("no payload for the candidate over 80")
	}
	select {
	case b := <-sub.C:
		t.Fatalf("second payload %s for a score of 20", b)
	default:
	}
}

// Webhooks in: a good signature appends spans with receipts; a wrong
// secret, a stale timestamp and a replay are refused and store nothing.
func TestReceive(t *testing.T) {
	src := `router stripe_in {
  input: "webhook"
  uses "ledger.append"
  route when source == "stripe" to ledger.append({who: "stripe", did: payload.type, this: payload.id, when: "2025-10-05T09:00:00Z", status: "confirmed"})
}`
	k, _ := webhook.ParseSecret(testSecret)
	ten := &tenant.Runtime{Caps: []string{"ledger.append"}, Sources: map[string]tenant.Source{
		"stripe": {Secret: testSecret, Verifier: &webhook.Verifier{Secrets: []webhook.Secret{k}}}}}
	ap := &appender{}
	rt := open(t, t.TempDir(), src, tenants{"acme": ten}, ap, nil)
	defer rt.Close()
	body := []byte(`{"type":"charge.succeeded","id":"ch_1"}`)
	signed := func(id string, at time.Time, key webhook.Secret) http.Header {
		h := http.Header{}
		webhook.SetHeaders(h, id, at, webhook.Sign(key, id, at, body))
		return h
	}
	now := time.Now()
	ctx := context.Background()

	out, err := rt.Receive(ctx, "acme", "stripe", signed("msg_1", now, k), body)
	if err != nil || len(out) != 1 || out[0].Status != "accepted" || out[0].Receipt == nil {
		t.Fatalf("good webhook: %+v, %v", out, err)
	}
	tests := []struct {
		name   string
		source string
		h      http.Header
		want   error
	}{
		{"wrong secret", "stripe", signed("msg_2", now, webhook.NewSecret()), ErrBadSignature},
		{"stale", "stripe", signed("msg_3", now.Add(-6*time.Minute), k), ErrStale},
		{"replayed id", "stripe", signed("msg_1", now, k), ErrReplay},
		{"unknown source", "github", signed("msg_4", now, k), ErrUnknownSource},
		{"no headers", "stripe", http.Header{}, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := rt.Receive(ctx, "acme", tt.source, tt.h, body); !errors.Is(err, tt.want) {
				t.Fatalf("Receive = %v, want %v", err, tt.want)
			}
		})
	}
	if got := ap.got(); len(got) != 1 {
		t.Fatalf("%d spans stored, want only the good webhook's", len(got))
	}
	// A tenant without a runtime section has no sources.
	if _, err := rt.Receive(ctx, "nobody", "stripe", signed("msg_5", now, k), body); !errors.Is(err, ErrUnknownSource) {
		t.Fatalf("a tenant without a runtime section: %v, want ErrUnknownSource", err)
	}

	// After a restart the seen ids are gone, yet the replay appends the same
	// span ids, which the ledger answers duplicate: still a replay.
	rt2 := open(t, t.TempDir(), src, tenants{"acme": ten}, ap, nil)
	defer rt2.Close()
	if _, err := rt2.Receive(ctx, "acme", "stripe", signed("msg_1", now, k), body); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay after restart: %v, want ErrReplay", err)
	}
	if got := ap.got(); len(got) != 1 {
		t.Fatalf("%d spans stored after the replay, want 1", len(got))
	}
}

func TestCryptoVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	key := base64.StdEncoding.EncodeToString(pub)
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte("hello")))
	s := ir.StringValue
	tests := []struct {
		args []ir.Value
		want bool
	}{
		{[]ir.Value{s(key), s("hello"), s(sig)}, true},
		{[]ir.Value{s(key), s("hellO"), s(sig)}, false},
		{[]ir.Value{s("not base64!"), s("hello"), s(sig)}, false},
		{[]ir.Value{s(key), s("hello"), s("AAAA")}, false},
	}
	for i, tt := range tests {
		v, err := CryptoVerify(tt.args)
		if err != nil || v.Bool() != tt.want {
			t.Errorf("%d: %v, %v; want %v", i, v, err, tt.want)
		}
	}
	if _, err := CryptoVerify([]ir.Value{s(key)}); err == nil {
		t.Error("one argument: no error")
	}
}

func TestBackoffBounds(t *testing.T) {
	rt := &Runtime{cfg: Config{Backoff: time.Second, MaxBackoff: time.Minute}}
	for n := 1; n <= 12; n++ {
		full := min(time.Second<<(n-1), time.Minute)
		for range 50 {
			if d := rt.backoff(n); d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, d, full/2, full)
			}
		}
	}
}

// Records below the routed mark are not routed again, even when the log no
// longer holds their deliveries (it keeps KeepDone per tenant).
func TestRoutedMarkOutlivesTheLog(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	dir := t.TempDir()
	src := fmt.Sprintf(hookRouter, srv.URL)
	ts := tenants{"acme": endpointTenant(srv.URL, "http.request")}
	keep1 := func(c *Config) { c.KeepDone = 1 }
	rt := open(t, dir, src, ts, nil, keep1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rt.Run(ctx); close(done) }()
	for seq := uint64(1); seq <= 3; seq++ {
		rt.Record(spanRecord(seq, sale(fmt.Sprint("s_", seq))), nil)
	}
	rt.Sync(4)
	waitFor(t, "deliveries", func() bool { return rt.Pending() == 0 })
	cancel()
	<-done
	rt.Close()

	rt = open(t, dir, src, ts, nil, keep1)
	defer rt.Close()
	if n := len(rt.Deliveries("acme")); n != 1 {
		t.Fatalf("log holds %d deliveries, want KeepDone=1", n)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		rt.Record(spanRecord(seq, sale(fmt.Sprint("s_", seq))), nil)
	}
	if n := rt.Pending(); n != 0 {
		t.Fatalf("%d deliveries queued again for records already routed", n)
	}
}

// The outbox's own encoder writes what encoding/json would, and its lines
// read back as written.
func TestEncodeEntryMatchesEncodingJSON(t *testing.T) {
	es := []*entry{
		{T: "q", ID: "msg_1", Seq: 12, Tenant: "acme", Router: "r", Call: "http.request", URL: "https://x.example/a?b=<c>&d",
			Body: "{\"a\":\"é\\u2028\\n\"}", Depth: 2, At: time.Date(2025, 10, 5, 9, 0, 0, 123456789, time.UTC)},
		{T: "a", ID: "msg_1", N: 3, Status: 503, Error: "answered 503 Service Unavailable"},
		{T: "r", Seq: 99},
		{T: "x", ID: "msg_\xff", At: time.Date(2025, 10, 5, 9, 0, 0, 0, time.FixedZone("x", 3600))},
	}
	for _, e := range es {
		line := encodeEntry(nil, e)
		want, _ := json.Marshal(e)
		if got := line[9 : len(line)-1]; string(got) != string(want) {
			t.Errorf("encodeEntry =\n%s\nencoding/json:\n%s", got, want)
		}
		back, ok := decodeEntry(line)
		if !ok {
			t.Fatalf("decodeEntry refuses %s", line)
		}
		if back.ID != e.ID && e.ID != "msg_\xff" || back.Seq != e.Seq || back.Body != e.Body || !back.At.Equal(e.At) {
			t.Errorf("round trip: %+v, want %+v", back, e)
		}
		line[12] ^= 1
		if _, ok := decodeEntry(line); ok {
			t.Errorf("a flipped byte is not caught: %s", line)
		}
	}
}

// A router whose evaluation exceeds the sandbox's limits fails for that
// input alone: counted, logged, and the next input is routed as usual.
func TestRouterOverItsLimitsFailsAlone(t *testing.T) {
	terms := strings.TrimSuffix(strings.Repeat("lower(data.s) + ", 80), " + ")
	src := `router greedy {
  uses "ws.send"
  route when did == "big" and len(` + terms + `) > 0 to ws.send("c")
  route when did == "sale.post" to ws.send("c")
}`
	rs, caps := compile(t, src)
	rt, err := Open(Config{Dir: t.TempDir(), Routers: rs, BundleCaps: caps, ServerCaps: caps,
		Tenants: tenants{"acme": {Caps: []string{"ws.send"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	sub := rt.Subscribe("acme", "c")
	big := fmt.Sprintf(`{"id":"s_big","tenant":"acme","who":"w","did":"big","this":"o","when":"2025-10-05T09:00:00Z","status":"confirmed","data":{"s":%q}}`, strings.Repeat("x", 60<<10))
	if err := rt.Record(spanRecord(1, big), nil); err != nil {
		t.Fatalf("Record of the greedy input: %v", err)
	}
	if err := rt.Record(spanRecord(2, sale("s_2")), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-sub.C:
		if !strings.Contains(string(b), `"id":"s_2"`) {
			t.Fatalf("payload %s, want the second span's", b)
		}
	default:
		t.Fatal("the span after the greedy one was not routed")
	}
	select {
	case b := <-sub.C:
		t.Fatalf("unexpected payload %.80s", b)
	default:
	}
}

// Deliveries reuse their connections: the default clients live as long as
// the runtime (a client per request opened a connection per delivery).
func TestDeliveriesReuseConnections(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	rt := open(t, t.TempDir(), fmt.Sprintf(hookRouter, srv.URL), tenants{"acme": endpointTenant(srv.URL, "http.request")}, nil,
		func(c *Config) { c.Client = nil; c.Workers = 2 })
	run(t, rt)
	const n = 60
	for seq := uint64(1); seq <= n; seq++ {
		rt.Record(spanRecord(seq, sale(fmt.Sprint("s_", seq))), nil)
	}
	waitFor(t, "deliveries", func() bool { return rt.Pending() == 0 })
	mu.Lock()
	defer mu.Unlock()
	if conns > 4 {
		t.Fatalf("%d connections for %d deliveries from 2 workers", conns, n)
	}
}
