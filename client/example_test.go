package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/loglineos/loglineos/client"
)

// The examples talk to servers on 127.0.0.1 that example_env_test.go
// starts: devServer, a development server that asks for no token, and
// authServer, one that does. They print LineResult.Stored rather than the
// status, as apps should check it (and as a span sent twice is a duplicate
// the second time).

// Ingest a span, then check its receipt offline.
func Example() {
	url := devServer()
	ctx := context.Background()

	c, err := client.New(url, client.WithUserAgent("bakery-till/1"))
	if err != nil {
		log.Fatal(err)
	}
	sale := client.Span{
		ID: "s_example_1", Tenant: "t_bakery", Who: "dan", Did: "sale.post", This: "order:12345",
		When: time.Date(2025, 10, 5, 22, 18, 7, 0, time.UTC), Status: "confirmed",
		ConfirmedBy: []string{"pos://register-7"}, Data: json.RawMessage(`{"gross":19.90,"items":3}`),
	}
	res, err := c.Ingest(ctx, sale)
	if err != nil {
		log.Fatal(err)
	}
	r := res.Results[0]
	fmt.Println(r.ID, "stored:", r.Stored())

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
	// s_example_1 stored: true
	// receipt: <nil>
	// forged: true
}

func ExampleNew() {
	url := devServer() // "https://logline.example", say
	c, err := client.New(url, client.WithUserAgent("bakery-till/1"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sendsASpan(c, "s_new_1"))

	_, err = client.New("logline.example")
	fmt.Println(err)
	// Output:
	// true
	// loglineos: base URL "logline.example": want http:// or https:// and a host
}

func ExampleWithHTTPClient() {
	url := devServer()
	hc := &http.Client{Timeout: 30 * time.Second} // or TLS settings, a proxy, instrumentation
	c, err := client.New(url, client.WithHTTPClient(hc))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sendsASpan(c, "s_httpclient_1"))
	// Output: true
}

func ExampleWithToken() {
	url, _ := authServer()
	token := exampleToken() // as `logline token issue --credentials till.json` prints it
	c, err := client.New(url, client.WithToken(token))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sendsASpan(c, "s_token_1"))
	// Output: true
}

// Any source of tokens will do; here golang.org/x/oauth2's client
// credentials flow against the server's token endpoint (WithAccountFile
// does the same without the dependency).
func ExampleWithTokenSource() {
	url, tillJSON := authServer()
	ctx := context.Background()
	acct, err := client.ReadAccountFile(tillJSON)
	if err != nil {
		log.Fatal(err)
	}
	cc := clientcredentials.Config{ClientID: acct.ClientID, ClientSecret: acct.ClientSecret, TokenURL: url + "/v1/auth/token"}
	ts := cc.TokenSource(ctx) // caches the token and renews it when it expires

	c, err := client.New(url, client.WithTokenSource(func(context.Context) (string, error) {
		t, err := ts.Token()
		if err != nil {
			return "", err
		}
		return t.AccessToken, nil
	}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sendsASpan(c, "s_tokensource_1"))
	// Output: true
}

func ExampleWithUserAgent() {
	url := devServer()
	c, err := client.New(url, client.WithUserAgent("bakery-till/1.4 (register-7)"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sendsASpan(c, "s_useragent_1"))
	// Output: true
}

func ExampleWithRetry() {
	url := devServer()
	c, err := client.New(url, client.WithRetry(client.RetryPolicy{
		Attempts: 8,                      // tries in all
		MinDelay: 200 * time.Millisecond, // then 400ms, 800ms ...
		MaxDelay: 5 * time.Second,        // and a Retry-After beyond it fails at once
	}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sendsASpan(c, "s_retry_1"))
	// Output: true
}

func ExampleWithServiceAccount() {
	url, _ := authServer()
	id, secret := exampleAccount() // from the app's secret store, never from its source
	c, err := client.New(url, client.WithServiceAccount(id, secret))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sendsASpan(c, "s_serviceaccount_1"))
	// Output: true
}

func ExampleWithAccountFile() {
	// till.json is what `logline accounts create --tenant t_bakery --role app`
	// printed, kept with mode 0600.
	url, tillJSON := authServer()
	c, err := client.New(url, client.WithAccountFile(tillJSON))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sendsASpan(c, "s_accountfile_1"))

	_, err = client.New(url, client.WithAccountFile("/nonexistent/till.json"))
	fmt.Println(err)
	// Output:
	// true
	// loglineos: bad account file /nonexistent/till.json: no such file or directory
}

func ExampleReadAccountFile() {
	_, tillJSON := authServer()
	acct, err := client.ReadAccountFile(tillJSON)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(acct.Tenant, acct.Role)
	// Output: t_bakery app
}

func ExampleAccount_String() {
	acct := client.Account{ClientID: "sa_01JD8X3K2M", ClientSecret: "llsa_s3cr3t", Tenant: "t_bakery", Role: "app"}
	fmt.Println(acct)
	logger := log.New(os.Stdout, "", 0)
	logger.Printf("authenticating as %v", acct) // the secret stays out of the log
	// Output:
	// service account sa_01JD8X3K2M (tenant t_bakery, role app)
	// authenticating as service account sa_01JD8X3K2M (tenant t_bakery, role app)
}

func ExampleClient_Ingest() {
	c := devClient()
	res, err := c.Ingest(context.Background(),
		bakerySale("s_ingest_1"),
		client.Span{ID: "s_ingest_2", Tenant: "t_bakery", Who: "dan", Did: "sale.post", This: "order:1"}, // no when
	)
	if err != nil { // the request as a whole failed
		log.Fatal(err)
	}
	for _, r := range res.Results {
		if err := r.Err(); err != nil {
			fmt.Printf("line %d, %s: %s\n", r.Line, r.ID, r.Problem.Detail)
			continue
		}
		fmt.Printf("line %d, %s: stored\n", r.Line, r.ID)
	}
	// Output:
	// line 1, s_ingest_1: stored
	// line 2, s_ingest_2: field "when" is required
}

func ExampleClient_IngestRaw() {
	c := devClient()
	res, err := c.IngestRaw(context.Background(),
		[]byte(`{"id":"s_raw_1","tenant":"t_bakery","who":"dan","did":"sale.post","this":"order:1","when":"2025-10-05T22:18:07Z","status":"confirmed"}`),
		[]byte(`{
		  "id": "s_raw_2", "tenant": "t_bakery", "who": "ana", "did": "sale.post",
		  "this": "order:1", "when": "2025-10-05T22:19:07Z", "status": "confirmed"
		}`), // compacted to one line
	)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res.Results {
		fmt.Println(r.ID, r.Stored())
	}
	// Output:
	// s_raw_1 true
	// s_raw_2 true
}

func ExampleClient_Span() {
	c := devClient()
	ctx := context.Background()
	mustIngest(c, bakerySale("s_span_1"))

	rec, err := c.Span(ctx, "t_bakery", "s_span_1")
	if err != nil {
		log.Fatal(err)
	}
	s, err := rec.Span()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rec.Kind, s.ID, s.Who, s.Did)

	_, err = c.Span(ctx, "t_bakery", "s_never_sent")
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output:
	// span s_span_1 dan sale.post
	// true
}

func ExampleClient_Thing() {
	c := devClient()
	for i, did := range []string{"sale.post", "sale.pay", "sale.close"} {
		s := bakerySale(fmt.Sprintf("s_thing_%d", i))
		s.This, s.Did = "order:777", did
		mustIngest(c, s)
	}
	recs, err := c.Thing(context.Background(), "t_bakery", "order:777")
	if err != nil {
		log.Fatal(err)
	}
	for _, rec := range recs {
		s, _ := rec.Span()
		fmt.Println(s.ID, s.Did)
	}
	// Output:
	// s_thing_0 sale.post
	// s_thing_1 sale.pay
	// s_thing_2 sale.close
}

func ExampleClient_Receipt() {
	c := devClient()
	ctx := context.Background()
	sale := bakerySale("s_receipt_1")
	mustIngest(c, sale)

	// Later, or elsewhere: the receipt of a stored span.
	r, err := c.Receipt(ctx, "t_bakery", "s_receipt_1")
	if err != nil {
		log.Fatal(err)
	}
	key, err := c.Key(ctx)
	if err != nil {
		log.Fatal(err)
	}
	rec, err := c.Span(ctx, "t_bakery", "s_receipt_1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Tenant, r.SpanID, client.VerifyReceipt(key, *r, rec.Body))
	// Output: t_bakery s_receipt_1 <nil>
}

func ExampleClient_Key() {
	c := devClient()
	key, err := c.Key(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	origin, _, _ := strings.Cut(key, "+") // origin+keyhash+base64 key
	fmt.Println(origin)
	// Output: logline.local/ledger
}

func ExampleClient_Checkpoint() {
	c := devClient()
	ctx := context.Background()
	rec := mustStore(c, bakerySale("s_checkpoint_1"))
	signCheckpoint() // the server signs one every checkpoint_interval (10s); here, at once

	note, err := c.Checkpoint(ctx)
	if err != nil {
		log.Fatal(err)
	}
	key, err := c.Key(ctx)
	if err != nil {
		log.Fatal(err)
	}
	cp, err := client.OpenCheckpoint(key, note)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cp.Origin, "covers the span:", cp.Size > rec.Seq)
	// Output: logline.local/ledger covers the span: true
}

func ExampleClient_Proof() {
	c := devClient()
	ctx := context.Background()
	rec := mustStore(c, bakerySale("s_proof_1"))
	signCheckpoint()

	key, err := c.Key(ctx)
	if err != nil {
		log.Fatal(err)
	}
	note, err := c.Checkpoint(ctx)
	if err != nil {
		log.Fatal(err)
	}
	cp, err := client.OpenCheckpoint(key, note)
	if err != nil {
		log.Fatal(err)
	}
	p, err := c.Proof(ctx, rec.Seq, cp.Size) // at the checkpoint's size
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Index == rec.Seq, p.TreeSize == cp.Size)
	fmt.Println(client.VerifyInclusion(key, *rec, *p, note))
	// Output:
	// true true
	// <nil>
}

func ExampleClient_Stream() {
	c := devClient()
	ctx := context.Background()
	for i, who := range []string{"dan", "ana"} {
		s := bakerySale(fmt.Sprintf("s_%d", i))
		s.Tenant, s.Who = "t_cafe", who
		mustIngest(c, s)
	}

	// Without Follow the stream ends at the end of the ledger; with it, it
	// waits for more. Either way it reconnects after a dropped connection,
	// from the last record seen.
	for rec, err := range c.Stream(ctx, client.StreamOptions{Tenant: "t_cafe"}) {
		if err != nil {
			log.Fatal(err)
		}
		s, err := rec.Span()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(s.ID, s.Who)
	}
	// Output:
	// s_0 dan
	// s_1 ana
}

// A tenant that redacts fields stores the span with their values replaced
// by keyed hashes: the receipt is for the span as stored.
func ExampleVerifyReceipt() {
	c := devClient()
	ctx := context.Background()
	key, err := c.Key(ctx)
	if err != nil {
		log.Fatal(err)
	}
	sale := bakerySale("s_verify_1")
	sale.Tenant = "t_pii" // its tenant file says: redact: [who]
	res, err := c.Ingest(ctx, sale)
	if err != nil {
		log.Fatal(err)
	}
	r := res.Results[0].Receipt

	sent, _ := json.Marshal(sale)
	err = client.VerifyReceipt(key, *r, sent)
	fmt.Println("as sent:", errors.Is(err, client.ErrSpanMismatch))

	stored, err := c.Span(ctx, "t_pii", "s_verify_1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("as stored:", client.VerifyReceipt(key, *r, stored.Body))
	// Output:
	// as sent: true
	// as stored: <nil>
}

func ExampleOpenCheckpoint() {
	c := devClient()
	ctx := context.Background()
	mustIngest(c, bakerySale("s_opencheckpoint_1"))
	signCheckpoint()

	key, err := c.Key(ctx) // better: from the ledger's operator
	if err != nil {
		log.Fatal(err)
	}
	note, err := c.Checkpoint(ctx)
	if err != nil {
		log.Fatal(err)
	}
	cp, err := client.OpenCheckpoint(key, note)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cp.Origin, cp.Size > 0)

	forged := bytes.Replace(note, []byte(cp.Root.String()), []byte(client.Hash{}.String()), 1)
	_, err = client.OpenCheckpoint(key, forged)
	fmt.Println(errors.Is(err, client.ErrBadProof))
	// Output:
	// logline.local/ledger true
	// true
}

func ExampleVerifyProof() {
	c := devClient()
	rec := mustStore(c, bakerySale("s_verifyproof_1"))
	signCheckpoint()

	key, note, p := proofOf(c, rec)
	fmt.Println(client.VerifyProof(key, *p, note))

	p.Index++ // a proof for another record
	fmt.Println(errors.Is(client.VerifyProof(key, *p, note), client.ErrBadProof))
	// Output:
	// <nil>
	// true
}

func ExampleVerifyInclusion() {
	c := devClient()
	rec := mustStore(c, bakerySale("s_verifyinclusion_1"))
	signCheckpoint()

	key, note, p := proofOf(c, rec)
	fmt.Println(client.VerifyInclusion(key, *rec, *p, note))

	// The record as someone would like it to be.
	rec.Body = bytes.Replace(rec.Body, []byte(`"dan"`), []byte(`"eve"`), 1)
	fmt.Println(errors.Is(client.VerifyInclusion(key, *rec, *p, note), client.ErrBadProof))
	// Output:
	// <nil>
	// true
}

func ExampleRecord_Span() {
	c := devClient()
	rec := mustStore(c, bakerySale("s_recordspan_1"))
	s, err := rec.Span()
	if err != nil {
		log.Fatal(err)
	}
	var data struct {
		Gross float64 `json:"gross"`
	}
	if err := json.Unmarshal(s.Data, &data); err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.ID, s.Who, data.Gross)
	// Output: s_recordspan_1 dan 19.9
}

func ExampleRecord_VerifyLeaf() {
	c := devClient()
	rec := mustStore(c, bakerySale("s_verifyleaf_1"))
	fmt.Println(rec.VerifyLeaf())

	rec.Body = bytes.Replace(rec.Body, []byte(`"dan"`), []byte(`"eve"`), 1)
	fmt.Println(rec.VerifyLeaf() != nil)
	// Output:
	// <nil>
	// true
}

func ExampleLineResult_Stored() {
	c := devClient()
	ctx := context.Background()
	sale := bakerySale("s_stored_1")
	first, err := c.Ingest(ctx, sale)
	if err != nil {
		log.Fatal(err)
	}
	// A retry, or the same span sent again: stored once, with its
	// original receipt.
	again, err := c.Ingest(ctx, sale)
	if err != nil {
		log.Fatal(err)
	}
	r := again.Results[0]
	fmt.Println(r.Status, r.Stored(), r.Receipt.JTI == first.Results[0].Receipt.JTI)
	// Output: duplicate true true
}

func ExampleLineResult_Err() {
	c := devClient()
	res, err := c.Ingest(context.Background(), client.Span{ID: "s_err_1", Tenant: "t_bakery", Who: "dan", Did: "sale.post", This: "order:1"})
	if err != nil {
		log.Fatal(err)
	}
	var e *client.Error
	if errors.As(res.Results[0].Err(), &e) {
		fmt.Println(e.Status, e.Problem.Type, e.Problem.Field)
	}
	// Output: 422 /problems/invalid-span when
}

func ExampleError_Error() {
	err := &client.Error{Status: 404, Problem: client.Problem{
		Type: "/problems/not-found", Title: "not found", Status: 404,
		Detail:   `no span "s_9" in tenant "t_bakery"`,
		Instance: "/spans/t_bakery/s_9", RequestID: "req_01JD8X3K2M4N5P6Q7R8S9T0V1W",
	}}
	fmt.Println(err)
	// Output: loglineos: 404 not found: no span "s_9" in tenant "t_bakery" (/problems/not-found at /spans/t_bakery/s_9, request req_01JD8X3K2M4N5P6Q7R8S9T0V1W)
}

func ExampleError_Is() {
	c := devClient()
	_, err := c.Span(context.Background(), "t_bakery", "s_never_sent")
	fmt.Println(errors.Is(err, client.ErrNotFound), errors.Is(err, client.ErrForbidden))

	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status, e.Problem.Type, e.Problem.RequestID != "")
	}
	// Output:
	// true false
	// 404 /problems/not-found true
}

func ExampleNewBatcher() {
	c := devClient()
	ctx := context.Background()

	b := client.NewBatcher(c, client.BatchOptions{MaxSpans: 500, MaxDelay: 20 * time.Millisecond})
	var pending []*client.Pending
	for i := range 3 {
		p, err := b.Add(ctx, bakerySale(fmt.Sprintf("s_batcher_%d", i)))
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
		fmt.Println(r.ID, r.Stored(), err)
	}
	// Output:
	// s_batcher_0 true <nil>
	// s_batcher_1 true <nil>
	// s_batcher_2 true <nil>
}

func ExampleBatcher_Add() {
	c := devClient()
	ctx := context.Background()
	b := client.NewBatcher(c, client.BatchOptions{})
	defer b.Close(ctx)

	// Add returns at once (unless the queue is full); the span goes with
	// the next request, and Wait gives its own result.
	p, err := b.Add(ctx, bakerySale("s_add_1"))
	if err != nil {
		log.Fatal(err)
	}
	r, err := p.Wait(ctx)
	fmt.Println(r.ID, r.Stored(), err)
	// Output: s_add_1 true <nil>
}

func ExampleBatcher_AddRaw() {
	c := devClient()
	ctx := context.Background()
	b := client.NewBatcher(c, client.BatchOptions{})
	defer b.Close(ctx)

	p, err := b.AddRaw(ctx, []byte(`{"id":"s_addraw_1","tenant":"t_bakery","who":"dan","did":"sale.post","this":"order:1","when":"2025-10-05T22:18:07Z","status":"confirmed"}`))
	if err != nil {
		log.Fatal(err)
	}
	r, err := p.Wait(ctx)
	fmt.Println(r.ID, r.Stored(), err)
	// Output: s_addraw_1 true <nil>
}

func ExampleBatcher_Close() {
	c := devClient()
	ctx := context.Background()
	b := client.NewBatcher(c, client.BatchOptions{MaxDelay: time.Hour})
	p, err := b.Add(ctx, bakerySale("s_close_1"))
	if err != nil {
		log.Fatal(err)
	}
	// Close sends what is queued without waiting for MaxDelay, and waits
	// for the answers (or ctx).
	if err := b.Close(ctx); err != nil {
		log.Fatal(err)
	}
	r, err := p.Wait(ctx)
	fmt.Println(r.Stored(), err)

	_, err = b.Add(ctx, bakerySale("s_close_2"))
	fmt.Println(err)
	// Output:
	// true <nil>
	// loglineos: batcher closed
}

func ExamplePending_Done() {
	c := devClient()
	ctx := context.Background()
	b := client.NewBatcher(c, client.BatchOptions{})
	defer b.Close(ctx)

	p, err := b.Add(ctx, bakerySale("s_done_1"))
	if err != nil {
		log.Fatal(err)
	}
	select {
	case <-p.Done():
		r, err := p.Wait(ctx) // returns at once now
		fmt.Println(r.ID, r.Stored(), err)
	case <-time.After(time.Minute):
		fmt.Println("no answer in a minute")
	}
	// Output: s_done_1 true <nil>
}

func ExamplePending_Wait() {
	c := devClient()
	b := client.NewBatcher(c, client.BatchOptions{})
	defer b.Close(context.Background())

	p, err := b.Add(context.Background(), bakerySale("s_wait_1"))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // bounds the wait, not the span
	defer cancel()
	r, err := p.Wait(ctx)
	fmt.Println(r.ID, r.Stored(), err)
	// Output: s_wait_1 true <nil>
}
