package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loglineos/loglineos/client"
	"github.com/loglineos/loglineos/internal/cli"
	"github.com/loglineos/loglineos/internal/server"
)

// exampleEnv is what the examples talk to: a development server and a
// server that asks for tokens, each started by the first example that
// needs it, shared by the examples after it, and stopped by TestMain.
// Examples cannot take a *testing.T, hence the package variable.
type exampleEnv struct {
	devOnce, authOnce sync.Once
	dev, auth         *exampleServer
	tillJSON          string // on auth: an app account of t_bakery, as `logline accounts create` printed it
}

var examples exampleEnv

func TestMain(m *testing.M) {
	m.Run()
	examples.dev.stop()
	examples.auth.stop()
}

// exampleServer is a server on 127.0.0.1 over a temporary directory.
type exampleServer struct {
	url  string
	srv  *server.Server
	data string
	hs   *httptest.Server
}

// startExampleServer starts a server; tenants are tenant files to write
// first (name -> YAML).
func startExampleServer(dev bool, tenants map[string]string) *exampleServer {
	dir, err := os.MkdirTemp("", "loglineos-example")
	if err != nil {
		log.Fatal(err)
	}
	for name, yaml := range tenants {
		p := filepath.Join(dir, "cfg", "tenants", name+".yaml")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	cfg := server.DefaultConfig()
	cfg.Data = dir
	cfg.Dev = dev
	small(&cfg)
	s, err := server.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	return &exampleServer{url: hs.URL, srv: s, data: dir, hs: hs}
}

func (s *exampleServer) stop() {
	if s == nil {
		return
	}
	s.srv.BeginShutdown()
	s.hs.Close()
	s.srv.Close()
	os.RemoveAll(s.data)
}

// devServer returns the URL of the development server. Its tenant t_pii
// redacts who.
func devServer() string {
	examples.devOnce.Do(func() {
		examples.dev = startExampleServer(true, map[string]string{"t_pii": "redact: [who]\n"})
	})
	return examples.dev.url
}

// devClient returns a client of the development server.
func devClient() *client.Client {
	c, err := client.New(devServer())
	if err != nil {
		log.Fatal(err)
	}
	return c
}

// authServer returns the URL of the server that asks for tokens, and the
// credentials file of an app account of t_bakery on it.
func authServer() (url, tillJSON string) {
	examples.authOnce.Do(func() {
		s := startExampleServer(false, nil)
		examples.auth = s
		out := logline("accounts", "create", "--url", s.url, "--credentials", filepath.Join(s.data, "identity", "operator.json"),
			"--tenant", "t_bakery", "--role", "app", "--name", "till")
		examples.tillJSON = filepath.Join(s.data, "till.json")
		if err := os.WriteFile(examples.tillJSON, out, 0o600); err != nil {
			log.Fatal(err)
		}
	})
	return examples.auth.url, examples.tillJSON
}

// exampleAccount returns the id and secret of the app account of
// authServer.
func exampleAccount() (id, secret string) {
	_, tillJSON := authServer()
	a, err := client.ReadAccountFile(tillJSON)
	if err != nil {
		log.Fatal(err)
	}
	return a.ClientID, a.ClientSecret
}

// exampleToken returns a token of the app account of authServer, as
// `logline token issue --credentials till.json` prints it.
func exampleToken() string {
	url, tillJSON := authServer()
	return strings.TrimSpace(string(logline("token", "issue", "--url", url, "--credentials", tillJSON)))
}

// logline runs the command line in process and returns what it printed.
func logline(args ...string) []byte {
	var stdout, stderr bytes.Buffer
	if code := cli.Main(context.Background(), args, cli.Stdio{Out: &stdout, Err: &stderr}); code != 0 {
		log.Fatalf("logline %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	return stdout.Bytes()
}

// bakerySale returns a valid span of t_bakery with this id.
func bakerySale(id string) client.Span {
	return client.Span{ID: id, Tenant: "t_bakery", Who: "dan", Did: "sale.post", This: "order:1",
		When: time.Date(2025, 10, 5, 22, 18, 7, 0, time.UTC), Status: "confirmed",
		ConfirmedBy: []string{"pos://register-7"}, Data: json.RawMessage(`{"gross":19.9,"items":3}`)}
}

// sendsASpan sends one span of t_bakery with this id, and reports whether
// it was stored: what the examples of the options print to show that the
// client works.
func sendsASpan(c *client.Client, id string) bool {
	res, err := c.Ingest(context.Background(), bakerySale(id))
	if err != nil {
		log.Fatal(err)
	}
	return res.Results[0].Stored()
}

// mustIngest ingests spans and exits unless every one is stored.
func mustIngest(c *client.Client, spans ...client.Span) {
	res, err := c.Ingest(context.Background(), spans...)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res.Results {
		if err := r.Err(); err != nil {
			log.Fatal(err)
		}
	}
}

// mustStore ingests a span and returns the record stored.
func mustStore(c *client.Client, s client.Span) *client.Record {
	mustIngest(c, s)
	rec, err := c.Span(context.Background(), s.Tenant, s.ID)
	if err != nil {
		log.Fatal(err)
	}
	return rec
}

// signCheckpoint makes the development server sign a checkpoint now.
func signCheckpoint() {
	if _, err := examples.dev.srv.Ledger().WriteCheckpoint(context.Background()); err != nil {
		log.Fatal(err)
	}
}

// proofOf returns the ledger's key, its latest checkpoint and the proof of
// rec at that checkpoint's size.
func proofOf(c *client.Client, rec *client.Record) (key string, note []byte, p *client.Proof) {
	ctx := context.Background()
	key, err := c.Key(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if note, err = c.Checkpoint(ctx); err != nil {
		log.Fatal(err)
	}
	cp, err := client.OpenCheckpoint(key, note)
	if err != nil {
		log.Fatal(err)
	}
	if p, err = c.Proof(ctx, rec.Seq, cp.Size); err != nil {
		log.Fatal(fmt.Errorf("proof of %d at %d: %w", rec.Seq, cp.Size, err))
	}
	return key, note, p
}
