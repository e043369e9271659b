// Command minimal is the smallest useful LogLineOS app: it authenticates as
// a service account, posts one span and checks the receipt offline. Its
// size and the packages it links are what the Go SDK weighs in an app
// (docs/BENCHMARKS.md, "The SDK's weight"); client's TestMinimalWeight keeps
// them in bounds.
//
//	LOGLINE_URL=http://127.0.0.1:8080 LOGLINE_CLIENT_ID=sa_… LOGLINE_CLIENT_SECRET=llsa_… \
//	LOGLINE_VERIFIER_KEY=… go run ./examples/minimal
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/loglineos/loglineos/client"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "minimal:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	c, err := client.New(os.Getenv("LOGLINE_URL"),
		client.WithServiceAccount(os.Getenv("LOGLINE_CLIENT_ID"), os.Getenv("LOGLINE_CLIENT_SECRET")))
	if err != nil {
		return err
	}
	sale := client.Span{ID: "s_minimal_1", Tenant: os.Getenv("LOGLINE_TENANT"), Who: "dan", Did: "sale.post",
		This: "order:1", When: time.Now().UTC(), Status: "confirmed"}
	res, err := c.Ingest(ctx, sale)
	if err != nil {
		return err
	}
	r := res.Results[0]
	if err := r.Err(); err != nil {
		return err
	}
	sent, err := json.Marshal(sale)
	if err != nil {
		return err
	}
	if err := client.VerifyReceipt(os.Getenv("LOGLINE_VERIFIER_KEY"), *r.Receipt, sent); err != nil {
		return err
	}
	fmt.Println(r.ID, r.Status, "at seq", r.Seq, "receipt verified")
	return nil
}
