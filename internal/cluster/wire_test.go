package cluster

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// TestReplyParts: an answer is split in parts no larger than
// a bound that put back together give every result in order; an
// error is one part; a part that does not fit the message, or is cut
// short, is refused.
func TestReplyParts(t *testing.T) {
	res := make([]ledger.Result, 1500)
	for i := range res {
		st := ledger.Accepted
		if i%7 == 0 {
			st = ledger.Duplicate
		}
		// Commits of 1 to 50 records, their receipts sharing the batch's
		// fields; paths as long as a commit's batch tree is deep.
		first := uint64(i - i%50)
		size := uint64(min(50, len(res)-int(first)))
		var path []ledgerfmt.Hash
		for j := range i % 7 {
			path = append(path, ledgerfmt.Hash{byte(i), byte(j), 9})
		}
		res[i] = ledger.Result{Status: st, Receipt: ledgerfmt.Receipt{Op: ledgerfmt.OpAppend, SpanID: fmt.Sprintf("s_%d", i), Tenant: "t", Seq: uint64(i),
			Leaf: ledgerfmt.Hash{byte(i), byte(i >> 8), 1}, JTI: fmt.Sprintf("r_%d", i), KID: "k", Sig: []byte(fmt.Sprintf("sig of %d%64s", first, "")),
			TS:    ledgerfmt.Timestamp{Time: time.Date(2026, 12, 6, 5, 0, 0, int(first)*1000, time.UTC)},
			Batch: ledgerfmt.BatchRef{First: first, Size: size, Root: ledgerfmt.Hash{byte(first), 2}, Path: path}}}
	}
	parts := encodeReply(res, nil, 32<<10)
	if len(parts) < 2 {
		t.Fatalf("%d parts for %d results", len(parts), len(res))
	}
	var got []ledger.Result
	for i, p := range parts {
		if len(p) > 32<<10 {
			t.Errorf("part %d: %d bytes, over %d", i, len(p), 32<<10)
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
	sameTime := cmp.Comparer(func(a, b ledgerfmt.Timestamp) bool { return a.Equal(b.Time) })
	if diff := cmp.Diff(res, got, sameTime); diff != "" {
		t.Errorf("results (-sent +received):\n%s", diff)
	}

	if _, _, err := decodeReply(parts[0], len(res)+1); err == nil {
		t.Error("a part of an answer to 1,500 entries was taken for 1,501")
	}
	small := encodeReply(res[:300], nil, 4<<10)
	for cut := range len(small[1]) {
		if _, _, err := decodeReply(small[1][:cut], 300); err == nil {
			t.Fatalf("a part cut to %d of its %d bytes was taken", cut, len(small[1]))
		}
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

// TestEntries: a LEDGER_IN message gives back its entries byte for byte
// (bodies as the gateway made them); a body that is not JSON, a message
// cut short or with bytes after its entries is refused; the first form, a
// JSON array, is still read.
func TestEntries(t *testing.T) {
	es := []ledger.Entry{
		{Kind: "", Tenant: "t_a", ID: "s_1", This: "order:1", Body: []byte(`{"id":"s_1","tenant":"t_a","this":"order:1"}`)},
		{Kind: "config", Tenant: "t_a", Body: []byte(`{"policies":{}}`)},
		{Tenant: "t_é", ID: "s_\u2028", Body: []byte(`{"a":"\u00e9 \\u2028"}`)},
	}
	data, err := encodeEntries(es)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeEntries(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(es, got); diff != "" {
		t.Errorf("entries (-sent +received):\n%s", diff)
	}
	for cut := range len(data) {
		if _, err := decodeEntries(data[:cut]); err == nil {
			t.Fatalf("a message cut to %d of its %d bytes was taken", cut, len(data))
		}
	}
	if _, err := decodeEntries(append(data[:len(data):len(data)], 0)); err == nil {
		t.Error("a message with a byte after its entries was taken")
	}
	bad, _ := encodeEntries([]ledger.Entry{{Tenant: "t", ID: "s", Body: []byte(`{"id":`)}})
	if _, err := decodeEntries(bad); err == nil {
		t.Error("a body that is not JSON was taken")
	}
	old := []byte(`[{"tenant":"t_a","id":"s_1","this":"order:1","body":{"id":"s_1","tenant":"t_a","this":"order:1"}}]`)
	if got, err := decodeEntries(old); err != nil || len(got) != 1 || string(got[0].Body) != string(es[0].Body) {
		t.Errorf("the JSON form: %v, %v", got, err)
	}
}
