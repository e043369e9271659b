package cycle

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/span"
)

// Time enters derivation only as data. Besides spans, the server appends two
// kinds of records to the ledger itself:
//
//	{"seq":..,"ts":..,"leaf":..,"crc":..,"tick":{"clock":"2025-10-05T22:19:00Z"}}
//	{"seq":..,"ts":..,"leaf":..,"crc":..,"config":{"config":{...},"tenant":"t_x"}}
//
// A tick moves every tenant's derivation clock forward to its clock (so idle
// trajectories close, and replay agrees). A config record puts a tenant's
// configuration (features and policies, as in cfg/tenants/<tenant>.yaml) in
// force from that point of the ledger on; "config":null returns the tenant
// to the defaults. Package tenant writes and reads config records
// (tenant.ConfigEntry, tenant.DecodeConfig).

// TickEntry returns the ledger entry of a clock tick at t.
func TickEntry(t time.Time) ledger.Entry {
	body := fmt.Sprintf(`{"clock":%q}`, t.UTC().Format(time.RFC3339Nano))
	return ledger.Entry{Kind: ledgerfmt.KindTick, Body: []byte(body)}
}

// Appender appends entries to a ledger (a *ledger.Ledger).
type Appender interface {
	Append(ctx context.Context, entries []ledger.Entry) ([]ledger.Result, error)
}

// AppendTicks appends a clock tick to l every d until ctx is done. An
// append that fails (not for ctx's end) is given to failed, which says
// whether to go on.
func AppendTicks(ctx context.Context, l Appender, d time.Duration, failed func(error) bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if _, err := l.Append(ctx, []ledger.Entry{TickEntry(now)}); err != nil && ctx.Err() == nil && !failed(err) {
				return
			}
		}
	}
}

// DecodeTick reads a tick record's body.
func DecodeTick(body []byte) (time.Time, error) {
	var t struct {
		Clock string `json:"clock"`
	}
	if err := json.Unmarshal(body, &t); err != nil {
		return time.Time{}, err
	}
	v, ok := span.ValidRFC3339(t.Clock)
	if !ok {
		return time.Time{}, fmt.Errorf("tick clock %q is not RFC 3339", t.Clock)
	}
	return v, nil
}
