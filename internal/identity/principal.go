package identity

import (
	"slices"
	"time"
)

// Capability names one thing a caller may do within a tenant. Every route of
// the gateway requires exactly one capability; anything not granted is denied.
type Capability string

// The capabilities of the API.
const (
	CapIngest        Capability = "ingest"
	CapStreamRead    Capability = "stream.read"
	CapReceiptsRead  Capability = "receipts.read"
	CapQualityDryrun Capability = "quality.dryrun"
	CapPolicyWrite   Capability = "policy.write"
	CapExport        Capability = "export"
	CapKeysRotate    Capability = "keys.rotate"
	CapAccountsAdmin Capability = "accounts.admin"
	// CapCrossTenant lets a caller act on tenants other than its own.
	CapCrossTenant Capability = "cross_tenant"
	// CapMetricsRead lets a caller read GET /metrics, which names every
	// tenant; an operator's capability.
	CapMetricsRead Capability = "metrics.read"
)

// Principal is an authenticated caller: who it is, the tenant its credential
// belongs to and the capabilities its roles grant within that tenant.
type Principal struct {
	// Subject is the LLID of a person, or "sa:<id>" for a service account,
	// or "dev" in development mode.
	Subject string
	Tenant  string
	Roles   []string
	Caps    []Capability
	// TokenID is the jti of the token presented, when there was one.
	TokenID string
	// IssuedAt and Expires are the token's iat and exp, when there was
	// one: a stream served to the principal ends at Expires.
	IssuedAt time.Time
	Expires  time.Time
	// Dev is set in development mode, where every request acts as an
	// administrator of the tenant it names.
	Dev bool
}

// Can reports whether p may use capability c on tenant. A principal acts on
// its own tenant; another tenant needs CapCrossTenant as well. In development
// mode everything is allowed.
func (p *Principal) Can(tenant string, c Capability) bool {
	if p == nil {
		return false
	}
	if p.Dev {
		return true
	}
	if tenant != p.Tenant && !slices.Contains(p.Caps, CapCrossTenant) {
		return false
	}
	return slices.Contains(p.Caps, c)
}
