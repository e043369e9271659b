package identity

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoleCapabilities(t *testing.T) {
	p := newPolicy("system", map[string]TenantConfig{
		"acme":   {Roles: map[string][]Capability{RoleReader: {CapStreamRead}, "ingestor": {CapIngest}}},
		"rogue":  {Roles: map[string][]Capability{"god": {CapKeysRotate, CapCrossTenant, CapIngest}}},
		"system": {},
	})
	all := []Capability{CapAccountsAdmin, CapExport, CapIngest, CapPolicyWrite, CapQualityDryrun, CapReceiptsRead, CapStreamRead}
	tests := []struct {
		tenant string
		roles  []string
		want   []Capability
	}{
		{"globex", []string{RoleAdmin}, all},
		{"system", []string{RoleAdmin}, []Capability{CapAccountsAdmin, CapCrossTenant, CapExport, CapIngest, CapKeysRotate,
			CapMetricsRead, CapPolicyWrite, CapQualityDryrun, CapReceiptsRead, CapStreamRead}},
		{"system", []string{RoleMonitor}, []Capability{CapMetricsRead}},
		{"globex", []string{RoleMonitor}, nil}, // metrics.read is the operator's
		{"globex", []string{RoleWriter}, []Capability{CapIngest, CapQualityDryrun, CapReceiptsRead, CapStreamRead}},
		{"globex", []string{RoleReader}, []Capability{CapReceiptsRead, CapStreamRead}},
		{"globex", []string{RoleAuditor}, []Capability{CapExport, CapReceiptsRead, CapStreamRead}},
		{"globex", []string{RoleApp}, []Capability{CapIngest, CapReceiptsRead}},
		{"globex", []string{RoleReader, RoleApp}, []Capability{CapIngest, CapReceiptsRead, CapStreamRead}},
		{"acme", []string{RoleReader}, []Capability{CapStreamRead}}, // overridden
		{"acme", []string{"ingestor"}, []Capability{CapIngest}},
		{"globex", []string{"ingestor"}, nil}, // another tenant's role
		{"globex", []string{"root"}, nil},
		{"globex", nil, nil},
		{"rogue", []string{"god"}, []Capability{CapIngest}}, // operator-only stripped
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, p.caps(tt.tenant, tt.roles)); diff != "" {
			t.Errorf("caps(%s, %v) (-want +got):\n%s", tt.tenant, tt.roles, diff)
		}
	}
}

func TestAuthorize(t *testing.T) {
	writer := &Principal{Subject: "u_a", Tenant: "acme", Roles: []string{RoleWriter}, Caps: []Capability{CapIngest, CapStreamRead}}
	op := &Principal{Subject: "u_o", Tenant: "system", Roles: []string{RoleAdmin}, Caps: []Capability{CapCrossTenant, CapExport}}
	tests := []struct {
		name   string
		p      *Principal
		tenant string
		c      Capability
		want   Reason
		kind   Kind
	}{
		{"allowed", writer, "acme", CapIngest, "", 0},
		{"not granted", writer, "acme", CapExport, ReasonForbidden, KindForbidden},
		{"other tenant", writer, "globex", CapIngest, ReasonCrossTenant, KindForbidden},
		{"cross-tenant operator", op, "acme", CapExport, "", 0},
		{"cross-tenant, not granted", op, "acme", CapIngest, ReasonForbidden, KindForbidden},
		{"nobody", nil, "acme", CapIngest, ReasonMissing, KindUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Authorize(tt.p, tt.tenant, tt.c)
			if got := ReasonOf(err); got != tt.want {
				t.Fatalf("reason %q, want %q", got, tt.want)
			}
			if err != nil && err.(*Error).Kind != tt.kind {
				t.Fatalf("kind %v, want %v", err.(*Error).Kind, tt.kind)
			}
			if (err == nil) != tt.p.Can(tt.tenant, tt.c) {
				t.Fatalf("Authorize and Can disagree")
			}
		})
	}
}

func TestDevAuthenticator(t *testing.T) {
	d := DevAuthenticator{TenantOf: func(r *http.Request) string { return r.PathValue("tenant") }}
	r := httptest.NewRequest("GET", "/t/acme/x", nil)
	r.SetPathValue("tenant", "acme")
	p, err := d.Authenticate(r)
	if err != nil || !p.Dev || p.Tenant != "acme" || !p.Can("acme", CapKeysRotate) {
		t.Fatalf("dev principal %+v, %v", p, err)
	}
	p, _ = DevAuthenticator{}.Authenticate(r)
	if p.Tenant != "dev" {
		t.Errorf("tenant %q, want dev", p.Tenant)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		t    TenantConfig
	}{
		{"unknown capability", TenantConfig{Roles: map[string][]Capability{"x": {"ingest.all"}}}},
		{"member with both ids", TenantConfig{Members: []Member{{LLID: "u_x", Email: "a@b", Roles: []string{"admin"}}}}},
		{"member with no roles", TenantConfig{Members: []Member{{Email: "a@b"}}}},
		{"rate without burst", TenantConfig{Quota: Quota{IngestPerSecond: 5}}},
		{"negative quota", TenantConfig{RoleQuotas: map[string]Quota{"app": {IngestPerSecond: -1, Burst: 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := (Config{Tenants: map[string]TenantConfig{"acme": tt.t}}).withDefaults(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestSetTenantMembership(t *testing.T) {
	clock := newFakeClock()
	s := newTestService(t, clock)
	u := User{LLID: LLID("https://accounts.google.com", "42"), Email: "new@example.com", EmailVerified: true}
	if _, _, err := s.membership(u, ""); ReasonOf(err) != ReasonNotMember {
		t.Fatalf("before: %v", err)
	}
	if err := s.SetTenant("acme", TenantConfig{Members: []Member{{LLID: u.LLID, Roles: []string{RoleAuditor}}}}); err != nil {
		t.Fatal(err)
	}
	tenant, roles, err := s.membership(u, "")
	if err != nil || tenant != "acme" || !cmp.Equal(roles, []string{RoleAuditor}) {
		t.Fatalf("after: %s %v %v", tenant, roles, err)
	}
	if _, ok := s.Tenants()["globex"]; !ok {
		t.Error("SetTenant dropped another tenant")
	}
	if err := s.SetTenant("acme", TenantConfig{Members: []Member{{Email: "x@y"}}}); err == nil {
		t.Error("a member without roles was accepted")
	}
}
