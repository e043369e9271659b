package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/loglineos/loglineos/client"
	"github.com/loglineos/loglineos/client/webhook"
	"github.com/loglineos/loglineos/internal/cli"
	"github.com/loglineos/loglineos/internal/lllc"
	"github.com/loglineos/loglineos/internal/server"
	"github.com/loglineos/loglineos/internal/server/servertest"
)

// webhookSecret is the endpoint's secret in tenant.yaml.
const webhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// TestBakery runs the till against a real server without --dev, set up as
// README.md says: the bundle compiled with loglinec from the standard
// sources and bakery.lll, tenant.yaml naming the till's endpoint, a service
// account created with logline accounts create. Every sale must come back
// with a verified receipt and inclusion proof, the server's candidates
// must reach the till signed, and forged webhooks must be refused.
func TestBakery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")

	// loglinec keygen ops.key; loglinec -o bakery.lllb --key ops.key stdlib/*.lll bakery.lll
	std, _ := filepath.Glob("../../stdlib/*.lll")
	loglinec(t, "keygen", filepath.Join(dir, "ops.key"))
	loglinec(t, append(append([]string{"-o", filepath.Join(dir, "bakery.lllb"), "--key", filepath.Join(dir, "ops.key")}, std...), "bakery.lll")...)

	// The till's endpoint listens first: the tenant file names it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tenantFile, err := os.ReadFile("tenant.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tenantFile = bytes.ReplaceAll(tenantFile, []byte("127.0.0.1:8090"), []byte(ln.Addr().String()))
	if err := os.MkdirAll(filepath.Join(data, "cfg", "tenants"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "cfg", "tenants", "bakery.yaml"), tenantFile, 0o644); err != nil {
		t.Fatal(err)
	}

	base := startServer(t, data, filepath.Join(dir, "bakery.lllb"), filepath.Join(dir, "ops.key.pub"))

	// logline accounts create --tenant bakery --role app --credentials data/identity/operator.json
	var acct struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	operatorFile := filepath.Join(data, "identity", "operator.json")
	json.Unmarshal([]byte(logline(t, ctx, "accounts", "create", "--url", base, "--credentials", operatorFile,
		"--tenant", "bakery", "--role", "app", "--name", "till")), &acct)
	// logline ledger key --data data
	key := strings.TrimSpace(logline(t, ctx, "ledger", "key", "--data", data))

	env := map[string]string{
		"BAKERY_CLIENT_ID": acct.ClientID, "BAKERY_CLIENT_SECRET": acct.ClientSecret,
		"BAKERY_WEBHOOK_SECRET": webhookSecret, "BAKERY_LEDGER_KEY": key,
	}
	cfg, err := parseConfig([]string{"-server", base, "-tenant", "bakery", "-orders", "3"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	out := lineWriter(make(chan line, 100))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- serve(runCtx, cfg, ln, out) }()

	// The till sells three orders, proves them, and receives candidates.
	var spans []sold
	orders, proven, candidates := 0, false, 0
	for orders < 3 || !proven || candidates == 0 {
		select {
		case l := <-out:
			switch l.Event {
			case "sold":
				orders++
				spans = append(spans, l.Spans...)
			case "proven":
				proven = l.Count == 9
			case "candidate":
				if l.Candidate.Tenant != "bakery" || !strings.HasPrefix(l.WebhookID, "msg_") {
					t.Errorf("candidate %+v from webhook %s", *l.Candidate, l.WebhookID)
				}
				candidates++
			case "refused":
				t.Errorf("the till refused a webhook: %s", l.Reason)
			}
		case err := <-done:
			t.Fatalf("the till stopped: %v", err)
		case <-ctx.Done():
			t.Fatalf("after %d orders, proven %v, %d candidates: %v", orders, proven, candidates, ctx.Err())
		}
	}

	// Every sale is in the ledger, where the till says, as the operator
	// reads it: logline token issue --credentials data/identity/operator.json
	op, err := client.New(base, client.WithToken(strings.TrimSpace(logline(t, ctx, "token", "issue", "--url", base, "--credentials", operatorFile))))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spans {
		rec, err := op.Span(ctx, "bakery", s.ID)
		if err != nil || rec.Seq != s.Seq {
			t.Errorf("span %s at %d: the ledger has %+v, %v", s.ID, s.Seq, rec, err)
		}
	}

	// A till holding another key than the ledger's refuses the server's
	// receipts and checkpoints.
	origin, _, _ := strings.Cut(key, "+")
	_, otherKey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	app, err := client.New(base, client.WithServiceAccount(acct.ClientID, acct.ClientSecret))
	if err != nil {
		t.Fatal(err)
	}
	doubtful := newTill(app, otherKey, "bakery", "till-2")
	if _, err := doubtful.sell(ctx, 1); !errors.Is(err, client.ErrBadReceipt) {
		t.Errorf("receipts checked with another key: got %v, want ErrBadReceipt", err)
	}
	if _, err := doubtful.prove(ctx, spans); !errors.Is(err, client.ErrBadProof) {
		t.Errorf("checkpoint checked with another key: got %v, want ErrBadProof", err)
	}

	// Forged webhooks are refused; the same body signed right is taken.
	hook := "http://" + ln.Addr().String() + "/candidates"
	body := []byte(`{"score":99,"seq":1,"tenant":"bakery","threshold":1,"trajectory_id":"t_forged","ts":"2025-10-05T09:00:00Z","type":"diamond_candidate"}`)
	wrong := webhook.NewSecret()
	right, _ := webhook.ParseSecret(webhookSecret)
	now := time.Now()
	for _, tt := range []struct {
		name   string
		secret webhook.Secret
		at     time.Time
		body   []byte
		want   int
	}{
		{"another secret", wrong, now, body, http.StatusUnauthorized},
		{"body changed after signing", right, now, bytes.Replace(body, []byte("99"), []byte("100"), 1), http.StatusUnauthorized},
		{"an hour old", right, now.Add(-time.Hour), body, http.StatusUnauthorized},
		{"unsigned", nil, now, body, http.StatusUnauthorized},
		{"signed right", right, now, body, http.StatusNoContent},
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hook, bytes.NewReader(tt.body))
		if tt.secret != nil {
			id := "msg_test_" + strings.ReplaceAll(tt.name, " ", "_")
			webhook.SetHeaders(req.Header, id, tt.at, webhook.Sign(tt.secret, id, tt.at, body))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s: got HTTP %d, want %d", tt.name, resp.StatusCode, tt.want)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("the till: %v", err)
	}
}

// TestParseConfig: the till starts only with its credentials and a valid
// webhook secret; flags win over the environment.
func TestParseConfig(t *testing.T) {
	full := map[string]string{"BAKERY_CLIENT_ID": "sa_1", "BAKERY_CLIENT_SECRET": "llsa_x", "BAKERY_WEBHOOK_SECRET": webhookSecret, "BAKERY_ORDERS": "5"}
	for _, tt := range []struct {
		name    string
		args    []string
		drop    string // an environment variable left out
		wantErr string
		want    func(config) bool
	}{
		{name: "environment", want: func(c config) bool { return c.orders == 5 && c.tenant == "bakery" && c.listen == "127.0.0.1:8090" }},
		{name: "flags win", args: []string{"-orders", "1", "-tenant", "t2"}, want: func(c config) bool { return c.orders == 1 && c.tenant == "t2" }},
		{name: "no account", drop: "BAKERY_CLIENT_SECRET", wantErr: "service account is required"},
		{name: "no webhook secret", drop: "BAKERY_WEBHOOK_SECRET", wantErr: "webhook secret is required"},
		{name: "bad webhook secret", args: []string{"-webhook-secret", "whsec_short"}, wantErr: "webhook secret: webhook: malformed key"},
		{name: "bad orders", args: []string{"-orders", "-2"}, wantErr: "orders"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, func(k string) string {
				if k == tt.drop {
					return ""
				}
				return full[k]
			}, io.Discard)
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got %v, want an error with %q", err, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Errorf("got %v", err)
			case tt.want != nil && !tt.want(c):
				t.Errorf("got %+v", c)
			}
		})
	}
}

// lineWriter hands each line the till writes (one Write each) to the test.
type lineWriter chan line

func (w lineWriter) Write(b []byte) (int, error) {
	var l line
	if err := json.Unmarshal(b, &l); err != nil {
		return 0, err
	}
	w <- l
	return len(b), nil
}

func loglinec(t *testing.T, args ...string) {
	t.Helper()
	var stderr bytes.Buffer
	if code := lllc.Main(args, nil, io.Discard, &stderr); code != 0 {
		t.Fatalf("loglinec %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
}

func logline(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := cli.Main(ctx, args, cli.Stdio{Out: &stdout, Err: &stderr}); code != 0 {
		t.Fatalf("logline %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	return stdout.String()
}

// startServer opens a server without --dev on data, as
// `LOGLINE_RUNTIME_CAPS=http.request,env.get logline serve --bundle B --trust K`
// would, on 127.0.0.1, and returns its URL.
func startServer(t *testing.T, data, bundle, trust string) string {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Data = data
	cfg.Bundle.Path, cfg.Bundle.Trust = bundle, []string{trust}
	cfg.Runtime.Caps = []string{"http.request", "env.get"}
	cfg.Runtime.Backoff = 50 * time.Millisecond
	cfg.Ledger.CheckpointInterval = 100 * time.Millisecond
	cfg.Derive.TickInterval = 0
	return servertest.Start(t, cfg).URL
}
