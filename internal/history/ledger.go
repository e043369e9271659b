package history

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// ReadLedger returns every span record of the ledger in the data directory
// dir, in seq order, each leaf checked as it is read; records of other
// kinds (the server's own) are skipped. It opens the ledger read-only, so
// that beside a running server it sees what the server's latest signed
// checkpoint covers: a test reads the ledger once its server has stopped.
func ReadLedger(dir string) (recs []Record, err error) {
	l, err := ledger.Open(dir, ledger.Config{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	defer func() {
		if cerr := l.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("history: %w", cerr)
		}
	}()
	rd, err := l.NewReader(0)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	defer rd.Close()
	for {
		r, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("history: read seq %d: %w", rd.Cursor(), err)
		}
		if r.Kind != ledgerfmt.KindSpan {
			continue
		}
		var s struct {
			ID     string `json:"id"`
			Tenant string `json:"tenant"`
		}
		if err := json.Unmarshal(r.Body, &s); err != nil {
			return nil, fmt.Errorf("history: span at seq %d: %w", r.Seq, err)
		}
		recs = append(recs, Record{Seq: r.Seq, Tenant: s.Tenant, SpanID: s.ID, Body: slices.Clone(r.Body), Leaf: r.Leaf})
	}
}
