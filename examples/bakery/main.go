// Command bakery is a bakery till, an example app of LogLineOS written
// against the public Go SDK alone (packages client and client/webhook). It
// authenticates as a service account, sells a few orders (each the spans
// sale.open, sale.pack and sale.close of one trajectory), verifies the
// receipts the server signs and the inclusion of every span in a signed
// checkpoint, and serves POST /candidates, where the server's candidates
// router delivers each diamond_candidate as a signed webhook.
//
// It prints what happens as JSON lines on standard output:
//
//	{"event":"listening","addr":"127.0.0.1:8090"}
//	{"event":"sold","order":1,"spans":[{"id":"s_…_1_open","did":"sale.open","seq":4},…],"receipts":"verified"}
//	{"event":"proven","spans_proven":9,"checkpoint":13}
//	{"event":"candidate","webhook_id":"msg_…","candidate":{"score":41,"trajectory_id":"t_…",…}}
//	{"event":"refused","webhook_id":"msg_…","reason":"webhook: no signature verifies"}
//
// See README.md for running it against a local server.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/loglineos/loglineos/client"
)

// shutdownGrace bounds how long the endpoint finishes its requests at exit.
const shutdownGrace = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err == nil {
		var ln net.Listener
		if ln, err = net.Listen("tcp", cfg.listen); err == nil {
			err = serve(ctx, cfg, ln, os.Stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bakery:", err)
		os.Exit(1)
	}
}

// serve runs the till: the webhook endpoint on ln, the sales, their proofs,
// then the endpoint alone until ctx ends. It reports on stdout.
func serve(ctx context.Context, cfg config, ln net.Listener, stdout io.Writer) error {
	out := &report{enc: json.NewEncoder(stdout)}
	mux := http.NewServeMux()
	mux.Handle("POST /candidates", newHooks(cfg.webhook, out))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	out.print(line{Event: "listening", Addr: ln.Addr().String()})

	c, err := client.New(cfg.server, client.WithServiceAccount(cfg.clientID, cfg.clientSecret), client.WithUserAgent("bakery-till/1"))
	if err != nil {
		return err
	}
	key := cfg.ledgerKey
	if key == "" {
		if key, err = c.Key(ctx); err != nil {
			return fmt.Errorf("ledger key: %w", err)
		}
		out.print(line{Event: "warning", Reason: "no -ledger-key: trusting the key the server sent, " + key})
	}
	t := newTill(c, key, cfg.tenant, cfg.till)
	var all []sold
	for n := 1; n <= cfg.orders; n++ {
		s, err := t.sell(ctx, n)
		if err != nil {
			return err
		}
		out.print(line{Event: "sold", Order: n, Spans: s, Receipts: "verified"})
		all = append(all, s...)
	}
	if len(all) > 0 {
		cp, err := t.prove(ctx, all)
		if err != nil {
			return err
		}
		out.print(line{Event: "proven", Count: len(all), Checkpoint: cp.Size})
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-served:
		return fmt.Errorf("webhook endpoint: %w", err)
	}
}

// line is one line of the till's report.
type line struct {
	Event      string     `json:"event"`
	Addr       string     `json:"addr,omitempty"`
	Order      int        `json:"order,omitempty"`
	Spans      []sold     `json:"spans,omitempty"`
	Receipts   string     `json:"receipts,omitempty"`
	Count      int        `json:"spans_proven,omitempty"`
	Checkpoint uint64     `json:"checkpoint,omitempty"`
	WebhookID  string     `json:"webhook_id,omitempty"`
	Candidate  *candidate `json:"candidate,omitempty"`
	Reason     string     `json:"reason,omitempty"`
}

// report writes lines, one Write each, from any goroutine.
type report struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (r *report) print(l line) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enc.Encode(l)
}
