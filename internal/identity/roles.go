package identity

import (
	"slices"
	"strings"
)

// The built-in roles.
const (
	RoleAdmin   = "admin"
	RoleWriter  = "writer"
	RoleReader  = "reader"
	RoleAuditor = "auditor"
	RoleApp     = "app"
	// RoleMonitor is for a metrics scraper: it reads GET /metrics and
	// nothing else, and only in the operator tenant.
	RoleMonitor = "monitor"
)

// DefaultRoles returns the built-in table of roles to capabilities, a fresh
// copy each call. Anything not listed is denied.
//
//	capability       admin  writer  reader  auditor  app  monitor
//	ingest             x      x                       x
//	stream.read        x      x       x       x
//	receipts.read      x      x       x       x       x
//	quality.dryrun     x      x
//	policy.write       x
//	export             x                      x
//	keys.rotate        x*
//	accounts.admin     x
//	cross_tenant       x*
//	metrics.read       x*                                  x*
//
// (*) only in the operator tenant (Config.OperatorTenant): the signing keys
// are the server's, not a tenant's, and so is the right to cross tenants
// and to read the metrics, which name every tenant.
// Per-tenant overrides (TenantConfig.Roles) replace a role's row or add
// roles; they cannot lift the operator-only restriction.
func DefaultRoles() map[string][]Capability {
	return map[string][]Capability{
		RoleAdmin: {CapIngest, CapStreamRead, CapReceiptsRead, CapQualityDryrun,
			CapPolicyWrite, CapExport, CapKeysRotate, CapAccountsAdmin, CapCrossTenant, CapMetricsRead},
		RoleWriter:  {CapIngest, CapStreamRead, CapReceiptsRead, CapQualityDryrun},
		RoleReader:  {CapStreamRead, CapReceiptsRead},
		RoleAuditor: {CapStreamRead, CapReceiptsRead, CapExport},
		RoleApp:     {CapIngest, CapReceiptsRead},
		RoleMonitor: {CapMetricsRead},
	}
}

// AllCapabilities lists every capability, in a fixed order.
func AllCapabilities() []Capability {
	return []Capability{CapIngest, CapStreamRead, CapReceiptsRead, CapQualityDryrun,
		CapPolicyWrite, CapExport, CapKeysRotate, CapAccountsAdmin, CapCrossTenant, CapMetricsRead}
}

func knownCapability(c Capability) bool { return slices.Contains(AllCapabilities(), c) }

func operatorOnly(c Capability) bool {
	return c == CapKeysRotate || c == CapCrossTenant || c == CapMetricsRead
}

// policy is an immutable snapshot of the role tables of all tenants,
// swapped whole when the configuration changes.
type policy struct {
	operator string
	defaults map[string][]Capability
	tenants  map[string]map[string][]Capability // overrides
	// Single roles resolved in advance: per overridden tenant, and the
	// defaults in the operator tenant and in any other.
	single           map[string]map[string][]Capability
	operatorDefaults map[string][]Capability
	plainDefaults    map[string][]Capability
}

func newPolicy(operator string, tenants map[string]TenantConfig) *policy {
	p := &policy{operator: operator, defaults: DefaultRoles(), tenants: map[string]map[string][]Capability{},
		single: map[string]map[string][]Capability{}, operatorDefaults: map[string][]Capability{}, plainDefaults: map[string][]Capability{}}
	for name, t := range tenants {
		if len(t.Roles) == 0 {
			continue
		}
		o := make(map[string][]Capability, len(t.Roles))
		for role, caps := range t.Roles {
			o[role] = slices.Clone(caps)
		}
		p.tenants[name] = o
	}
	// Resolve every single role once, for the fast path of caps.
	const plain = "\x00not-the-operator" // no tenant has this name in the map
	for role := range p.defaults {
		p.operatorDefaults[role] = p.resolve(operator, []string{role})
		p.plainDefaults[role] = p.resolve(plain, []string{role})
	}
	for name, o := range p.tenants {
		p.single[name] = map[string][]Capability{}
		for role := range o {
			p.single[name][role] = p.resolve(name, []string{role})
		}
		for role := range p.defaults {
			if _, ok := o[role]; !ok {
				p.single[name][role] = p.resolve(name, []string{role})
			}
		}
	}
	return p
}

// knownRole reports whether role means anything in tenant.
func (p *policy) knownRole(tenant, role string) bool {
	if _, ok := p.tenants[tenant][role]; ok {
		return true
	}
	_, ok := p.defaults[role]
	return ok
}

// caps returns the capabilities roles grant in tenant, sorted and without
// duplicates, in a slice of the caller's. Unknown roles grant nothing.
func (p *policy) caps(tenant string, roles []string) []Capability {
	if len(roles) == 1 { // the common case: one role, resolved in advance
		if caps, ok := p.single[tenant][roles[0]]; ok {
			return slices.Clone(caps)
		}
		if tenant == p.operator {
			return slices.Clone(p.operatorDefaults[roles[0]])
		}
		if _, overridden := p.tenants[tenant]; !overridden {
			return slices.Clone(p.plainDefaults[roles[0]])
		}
	}
	return p.resolve(tenant, roles)
}

func (p *policy) resolve(tenant string, roles []string) []Capability {
	var out []Capability
	for _, role := range roles {
		caps, ok := p.tenants[tenant][role]
		if !ok {
			caps = p.defaults[role]
		}
		for _, c := range caps {
			if operatorOnly(c) && tenant != p.operator {
				continue
			}
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	slices.SortFunc(out, func(a, b Capability) int { return strings.Compare(string(a), string(b)) })
	return out
}
