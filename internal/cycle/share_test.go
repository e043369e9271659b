package cycle

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/ledger"
)

// A runner that held back its share while ingest was busy does not count
// the time it sat idle, waiting for records, as work: records appended
// after a quiet spell are derived at once, not after a pause three times
// as long as the quiet spell.
func TestShareDoesNotCountIdleTime(t *testing.T) {
	l, err := ledger.Open(t.TempDir(), ledger.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r, err := Open(l, Config{Dir: t.TempDir(), Default: derive.DefaultTenantConfig(), Fingerprint: "test",
		Share: 0.25, LowWater: 1 << 30, BatchRecords: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(1500 * time.Millisecond) // idle: nothing to derive
	start := time.Now()
	for i := range 4 { // ingest "busy": the ledger grows between batches
		es := make([]ledger.Entry, 64)
		for j := range es {
			id := fmt.Sprintf("s_%d_%d", i, j)
			es[j] = ledger.Entry{Tenant: "t", ID: id, This: "order:1",
				Body: fmt.Appendf(nil, `{"did":"sale.post","id":%q,"status":"confirmed","tenant":"t","this":"order:1","when":"2025-10-05T09:00:00Z","who":"u"}`, id)}
		}
		if _, err := l.Append(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	for r.Cursor() < l.Next() {
		if time.Since(start) > time.Second {
			t.Fatalf("derivation at %d of %d a second after the records arrived: the idle spell was counted as work", r.Cursor(), l.Next())
		}
		select {
		case <-r.Changed():
		case <-time.After(10 * time.Millisecond):
		}
	}
}
