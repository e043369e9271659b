// Package client is the Go SDK for apps that talk to a LogLineOS server:
// it posts spans, reads the ledger back (lookups and resumable record
// streams), and checks the server's receipts and proofs offline.
//
//	c, err := client.New("https://logline.example", client.WithAccountFile("till.json"))
//	res, err := c.Ingest(ctx, client.Span{ID: "s_1", Tenant: "t_bakery", Who: "dan",
//		Did: "sale.post", This: "order:12345", When: time.Now(), Status: "confirmed"})
//
// Every call takes a context. A request the server refuses is an *Error
// carrying the server's RFC 9457 problem (type, detail, status) and the
// request's id, to quote to the operator; errors.Is matches it against
// ErrNotFound, ErrUnauthenticated, ErrForbidden and ErrRateLimited.
//
// # Authentication
//
// An app authenticates as a service account of its tenant:
// WithServiceAccount exchanges the account's id and secret at
// POST /auth/token for a short-lived token (an LLST) and renews it before it
// expires; WithAccountFile reads them from the credentials file that
// `logline accounts create` prints. WithToken and WithTokenSource send a
// token got some other way.
//
// # Ingest
//
// Client.Ingest sends spans in one request (NDJSON) and returns one
// LineResult per span, in order: Accepted with its receipt, Duplicate with
// the original receipt (the server stores a span once per tenant and id), or
// Rejected with a problem naming the field and the rule. A Batcher gathers
// spans from many goroutines into requests by count, size and delay, with
// bounded memory and concurrency, and hands each span its own result.
//
// # Retries
//
// Requests that fail in transport or are answered 429, 502, 503 or 504 are
// retried with exponential backoff and jitter, honouring Retry-After (see
// RetryPolicy); any other problem is final. Retrying an ingest request is
// safe because ingest is idempotent by (tenant, id): a span that an earlier
// try stored comes back as a Duplicate with its original receipt, so treat
// LineResult.Stored, not Status == Accepted, as success. Requests holding a
// span without an id are not retried.
//
// # Streams
//
// Client.Stream reads the ledger from a cursor over NDJSON or WebSocket and
// reconnects after a dropped connection from the last sequence number it
// delivered plus one, so the loop sees every record exactly once, in
// order, even across disconnections.
//
// # Verification
//
// VerifyReceipt checks a receipt against the span's bytes (the span as
// stored: a tenant that redacts fields stores other bytes than those sent,
// and VerifyReceipt of the span as sent says so with ErrSpanMismatch);
// VerifyProof and VerifyInclusion check an RFC 6962 inclusion proof against
// a signed checkpoint (a C2SP signed note); OpenCheckpoint verifies and
// reads a checkpoint. They need only the ledger's verifier key (`logline ledger
// key`), which should come from the ledger's operator, not from the server
// being checked.
package client
