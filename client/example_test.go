package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"time"

	"github.com/loglineos/loglineos/client"
	"github.com/loglineos/loglineos/internal/server"
)

// Ingest a span, then check its receipt offline.
func Example() {
	url, stop := exampleServer() // a development server on 127.0.0.1
	defer stop()
	ctx := context.Background()

	c, err := client.New(url, client.WithUserAgent("bakery-till/1"))
	if err != nil {
		log.Fatal(err)
	}
	sale := client.Span{
		ID: "s_1", Tenant: "t_bakery", Who: "dan", Did: "sale.post", This: "order:12345",
		When: time.Date(2025, 10, 5, 22, 18, 7, 0, time.UTC), Status: "confirmed",
		ConfirmedBy: []string{"pos://register-7"}, Data: json.RawMessage(`{"gross":19.90,"items":3}`),
	}
	res, err := c.Ingest(ctx, sale)
	if err != nil {
		log.Fatal(err)
	}
	r := res.Results[0]
	fmt.Println(r.ID, r.Status, "at seq", r.Seq)

	// The verifier key should come from the ledger's operator; here we ask
	// the server.
	key, err := c.Key(ctx)
	if err != nil {
		log.Fatal(err)
	}
	sent, _ := json.Marshal(sale)
	fmt.Println("receipt:", client.VerifyReceipt(key, *r.Receipt, sent))

	sale.Data = json.RawMessage(`{"gross":1.99,"items":3}`)
	forged, _ := json.Marshal(sale)
	fmt.Println("forged:", errors.Is(client.VerifyReceipt(key, *r.Receipt, forged), client.ErrBadReceipt))
	// Output:
	// s_1 accepted at seq 0
	// receipt: <nil>
	// forged: true
}

func ExampleBatcher() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, err := client.New(url)
	if err != nil {
		log.Fatal(err)
	}

	b := client.NewBatcher(c, client.BatchOptions{MaxSpans: 500, MaxDelay: 20 * time.Millisecond})
	var pending []*client.Pending
	for i := range 3 {
		p, err := b.Add(ctx, client.Span{
			ID: fmt.Sprintf("s_%d", i), Tenant: "t_bakery", Who: "dan", Did: "sale.post",
			This: "order:1", When: time.Date(2025, 10, 5, 22, 18, i, 0, time.UTC), Status: "confirmed",
		})
		if err != nil {
			log.Fatal(err)
		}
		pending = append(pending, p)
	}
	if err := b.Close(ctx); err != nil { // sends what is queued
		log.Fatal(err)
	}
	for _, p := range pending {
		r, err := p.Wait(ctx)
		fmt.Println(r.ID, r.Status, err)
	}
	// Output:
	// s_0 accepted <nil>
	// s_1 accepted <nil>
	// s_2 accepted <nil>
}

func ExampleClient_Stream() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, err := client.New(url)
	if err != nil {
		log.Fatal(err)
	}
	for i, who := range []string{"dan", "ana"} {
		_, err := c.Ingest(ctx, client.Span{ID: fmt.Sprintf("s_%d", i), Tenant: "t_bakery", Who: who,
			Did: "sale.post", This: "order:1", When: time.Date(2025, 10, 5, 22, 18, 7, 0, time.UTC), Status: "confirmed"})
		if err != nil {
			log.Fatal(err)
		}
	}

	// Without Follow the stream ends at the end of the ledger; with it, it
	// waits for more. Either way it reconnects after a dropped connection,
	// from the last record seen.
	for rec, err := range c.Stream(ctx, client.StreamOptions{Tenant: "t_bakery"}) {
		if err != nil {
			log.Fatal(err)
		}
		s, err := rec.Span()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.Seq, s.ID, s.Who)
	}
	// Output:
	// 0 s_0 dan
	// 1 s_1 ana
}

// exampleServer starts a development server on a temporary directory.
func exampleServer() (url string, stop func()) {
	dir, err := os.MkdirTemp("", "loglineos-example")
	if err != nil {
		log.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.Data = dir
	cfg.Dev = true
	cfg.Ledger.DedupFilterBytes = 1 << 20 // enough for an example, quick to set up
	s, err := server.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	return hs.URL, func() {
		s.BeginShutdown()
		hs.Close()
		s.Close()
		os.RemoveAll(dir)
	}
}
