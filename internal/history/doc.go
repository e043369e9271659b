// Package history checks what the clients of a crash or failure test were
// told against what the ledger holds afterwards, in the manner of Jepsen:
// the test records a history of client operations and their outcomes while
// it runs, and Check judges the history and the final ledger once it is
// over. It is a test-support package: nothing in the server imports it.
//
// # The model
//
// An operation is one client's attempt to append one span (tenant, span id,
// canonical body). It is invoked, then completes exactly once, with one of
// three outcomes:
//
//	client      Invoke ───────────────────────── Ok(receipt)     acknowledged: the span is
//	                                                             in the ledger at receipt.Seq
//	                   ───────────────────────── Fail(reason)    definite refusal (4xx): this
//	                                                             operation appended nothing
//	                   ───────────────────────── Info(reason)    indeterminate (timeout, reset,
//	                                                             5xx, server killed): appended
//	                                                             at most once, or not at all
//	history     tick 7 ─── (the server works) ── tick 12
//
// An operation never completed when Check runs counts as indeterminate.
//
// The history stamps every invocation and completion with a tick of its own
// clock: a counter advanced under the history's lock, so that if one client
// completes operation A before another invokes B (in real time, as their
// calls to the history are ordered), A's completion tick is below B's
// invocation tick. A client records Invoke before it sends and the outcome
// after it has read the answer, so each operation's interval contains the
// moment the server acted on it.
//
// The ledger's side is a list of Records: (seq, tenant, span id, canonical
// body, leaf), as ReadLedger reads them from a data directory. A span is
// identified by its key (tenant, span id); several operations may share a
// key (a retry, or another client sending the same id), and the server
// stores a key once.
//
// # The anomalies
//
//	lost                 an operation was acknowledged and its key is not in the ledger
//	duplicated           a key is in the ledger more than once
//	corrupted            a key is stored with a body other than one acknowledged under
//	                     it, or with a body no operation sent under it
//	failed-but-present   a key is stored with a body that only refused operations sent
//	phantom              a key is stored that no operation ever sent
//	reordered            within a tenant, span A was acknowledged before span B was
//	                     invoked, yet A's seq is above B's
//	wrong-receipt        an acknowledged operation's receipt names another seq, tenant,
//	                     span id or leaf than the record that holds its span
//
// Indeterminate operations are allowed in the ledger or not, but at most
// once (a second copy is duplicated), with a body that was sent (otherwise
// corrupted), and in order.
//
// # Order
//
// The ledger's appends are linearizable per tenant: each stored span took
// effect at one instant inside the interval of an operation that could have
// written it, and seqs follow those instants. A key's write therefore lies
// in the window
//
//	lo = the earliest invocation among its operations that could have written it
//	     (acknowledged or indeterminate, with the stored body)
//	hi = the earliest acknowledgement among them (no bound if none)
//
// and for two stored keys A and B of one tenant, hi(A) < lo(B) requires
// seq(A) < seq(B). A retry acknowledged as a duplicate of an earlier write
// is thus judged by the earliest operation that could have made that write,
// not by itself. Check finds every B with such an A by one sweep over the
// keys sorted by lo and by hi: O(n log n) in the history and the ledger.
package history
