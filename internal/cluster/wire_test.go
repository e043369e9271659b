package cluster

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// TestReplyParts: an answer is split in parts no larger than
// MaxReplyBytes that put back together give every result in order; an
// error is one part; a part that does not fit the message is refused.
func TestReplyParts(t *testing.T) {
	res := make([]ledger.Result, 5000)
	for i := range res {
		st := ledger.Accepted
		if i%7 == 0 {
			st = ledger.Duplicate
		}
		res[i] = ledger.Result{Status: st, Receipt: ledgerfmt.Receipt{Op: "append", SpanID: fmt.Sprintf("s_%d", i), Tenant: "t", Seq: uint64(i),
			JTI: fmt.Sprintf("r_%d", i), KID: "k", Sig: make([]byte, 64), Batch: ledgerfmt.BatchRef{First: uint64(i), Size: 1}}}
	}
	parts := encodeReply(res, nil, MaxReplyBytes)
	if len(parts) < 2 {
		t.Fatalf("%d parts for %d results", len(parts), len(res))
	}
	var got []ledger.Result
	for i, p := range parts {
		if len(p) > MaxReplyBytes {
			t.Errorf("part %d: %d bytes, over %d", i, len(p), MaxReplyBytes)
		}
		from, rs, err := decodeReply(p, len(res))
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if from != len(got) {
			t.Fatalf("part %d starts at %d after %d results", i, from, len(got))
		}
		got = append(got, rs...)
	}
	if diff := cmp.Diff(res, got); diff != "" {
		t.Errorf("results (-sent +received):\n%s", diff)
	}

	if _, _, err := decodeReply(parts[0], len(res)+1); err == nil {
		t.Error("a part of an answer to 5,000 entries was taken for 5,001")
	}
	for _, n := range []int{0, 1} {
		parts := encodeReply(res[:n], nil, MaxReplyBytes)
		if len(parts) != 1 {
			t.Fatalf("%d results: %d parts", n, len(parts))
		}
		if _, rs, err := decodeReply(parts[0], n); err != nil || len(rs) != n {
			t.Errorf("%d results: %d back, %v", n, len(rs), err)
		}
	}
	parts = encodeReply(nil, errors.New("disk full"), MaxReplyBytes)
	if _, _, err := decodeReply(parts[0], 3); len(parts) != 1 || !errors.Is(err, ErrIntegrator) {
		t.Errorf("an error's answer: %d parts, %v", len(parts), err)
	}
}
