package history

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// TestReadLedger appends spans and a record of another kind to a real
// ledger, acknowledging the spans in a history, and checks the history
// against what ReadLedger reads back.
func TestReadLedger(t *testing.T) {
	dir := t.TempDir()
	l, err := ledger.Open(dir, ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := &History{}
	entries := []ledger.Entry{
		{Tenant: "t", ID: "a", Body: body("t", "a")},
		{Kind: ledgerfmt.KindTick, Body: []byte(`{"tick":1}`)},
		{Tenant: "u", ID: "b", Body: body("u", "b")},
	}
	var ops []*Op
	for _, e := range entries {
		if e.Kind == "" {
			ops = append(ops, h.Invoke("c1", e.Tenant, e.ID, e.Body))
		}
	}
	res, err := l.Append(context.Background(), entries)
	if err != nil {
		t.Fatal(err)
	}
	ops[0].Ok(res[0].Receipt)
	ops[1].Ok(res[2].Receipt)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	recs, err := ReadLedger(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Record{
		{Seq: 0, Tenant: "t", SpanID: "a", Body: body("t", "a"), Leaf: res[0].Receipt.Leaf},
		{Seq: 2, Tenant: "u", SpanID: "b", Body: body("u", "b"), Leaf: res[2].Receipt.Leaf},
	}
	if diff := cmp.Diff(want, recs); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if rep := Check(h, recs); !rep.Clean() || rep.Ok != 2 {
		t.Errorf("report:\n%s", rep)
	}
}

func TestReadLedgerMissing(t *testing.T) {
	if _, err := ReadLedger(t.TempDir() + "/none"); err == nil {
		t.Error("no error for a directory without a ledger")
	}
}
