package tenant

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/span"
)

// A config record puts a tenant's derivation configuration in force from its
// position in the ledger on. Its body is the RFC 8785 canonical JSON of
//
//	{"config":{"features":{...},"policies":{...}},"tenant":"t_x"}
//
// where "config" is the tenant file's features and policies merged over the
// bundle's (Merge), exactly as written apart from the canonical form, and
// read back by ParseConfig; "config":null returns the tenant to the
// defaults. Replay derives from these bytes, so their form is part of the
// ledger format: the same tenant file over the same bundle always gives the
// same record.

// ErrNoTenant is returned for a config record without a tenant.
var ErrNoTenant = errors.New("tenant: config record without a tenant")

// ConfigEntry returns the ledger entry putting a tenant's configuration in
// force; a nil doc returns the tenant to the defaults. doc holds the
// derivation part of the tenant file: "features" and "policies".
func ConfigEntry(tenant string, doc map[string]any) (ledger.Entry, error) {
	if tenant == "" {
		return ledger.Entry{}, ErrNoTenant
	}
	raw, err := json.Marshal(struct {
		Config map[string]any `json:"config"`
		Tenant string         `json:"tenant"`
	}{doc, tenant})
	if err != nil {
		return ledger.Entry{}, fmt.Errorf("tenant: config record of %s: %w", tenant, err)
	}
	body, err := span.Canonicalize(raw)
	if err != nil {
		return ledger.Entry{}, fmt.Errorf("tenant: config record of %s: %w", tenant, err)
	}
	return ledger.Entry{Kind: ledgerfmt.KindConfig, Tenant: tenant, Body: body}, nil
}

// PolicyHash names a derivation configuration doc (the "config" of a
// config record): "sha256:" and the hex SHA-256 of its canonical JSON.
func PolicyHash(doc map[string]any) (string, error) {
	raw, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	c, err := span.Canonicalize(raw)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// DecodeConfig reads a config record's body into the tenant and its
// configuration (nil: back to the defaults).
func DecodeConfig(body []byte) (string, *derive.TenantConfig, error) {
	var rec struct {
		Config map[string]any `json:"config"`
		Tenant string         `json:"tenant"`
	}
	if err := json.Unmarshal(body, &rec); err != nil {
		return "", nil, err
	}
	if rec.Tenant == "" {
		return "", nil, ErrNoTenant
	}
	if rec.Config == nil {
		return rec.Tenant, nil, nil
	}
	cfg, err := ParseConfig(rec.Config)
	if err != nil {
		return "", nil, err
	}
	return rec.Tenant, &cfg, nil
}
