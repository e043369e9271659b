package cycle

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/loglineos/loglineos/internal/derive"
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
// to the defaults.

// TickEntry returns the ledger entry of a clock tick at t.
func TickEntry(t time.Time) ledger.Entry {
	body := fmt.Sprintf(`{"clock":%q}`, t.UTC().Format(time.RFC3339Nano))
	return ledger.Entry{Kind: ledgerfmt.KindTick, Body: []byte(body)}
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

// ConfigEntry returns the ledger entry putting a tenant's configuration in
// force; a nil doc returns the tenant to the defaults. doc holds the
// derivation part of the tenant file: "features" and "policies".
func ConfigEntry(tenant string, doc map[string]any) (ledger.Entry, error) {
	if tenant == "" {
		return ledger.Entry{}, errors.New("config record without a tenant")
	}
	raw, err := json.Marshal(struct {
		Config map[string]any `json:"config"`
		Tenant string         `json:"tenant"`
	}{doc, tenant})
	if err != nil {
		return ledger.Entry{}, err
	}
	body, err := span.Canonicalize(raw)
	if err != nil {
		return ledger.Entry{}, err
	}
	return ledger.Entry{Kind: ledgerfmt.KindConfig, Tenant: tenant, Body: body}, nil
}

// DecodeConfig reads a config record's body into the tenant and its
// configuration (nil: back to the defaults). The base is the defaults the
// record's values override.
func DecodeConfig(body []byte) (string, *derive.TenantConfig, error) {
	var rec struct {
		Config map[string]any `json:"config"`
		Tenant string         `json:"tenant"`
	}
	if err := json.Unmarshal(body, &rec); err != nil {
		return "", nil, err
	}
	if rec.Tenant == "" {
		return "", nil, errors.New("config record without a tenant")
	}
	if rec.Config == nil {
		return rec.Tenant, nil, nil
	}
	cfg, err := derive.ParseTenantConfig(rec.Config)
	if err != nil {
		return "", nil, err
	}
	return rec.Tenant, &cfg, nil
}

// Merge lays overrides over base, recursively for maps; base is not changed.
func Merge(base, overrides map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(overrides))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range overrides {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = Merge(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}
