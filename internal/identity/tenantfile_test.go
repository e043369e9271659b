package identity

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTenantFromFile: a tenant file's members are named by LLID when they
// look like one, else by email; role overrides become capabilities.
func TestTenantFromFile(t *testing.T) {
	got := TenantFromFile(Quota{IngestPerSecond: 5, Burst: 10},
		map[string][]string{"u_abc": {"admin"}, "bob@example.com": {"writer", "reader"}, "u_": {"reader"}},
		map[string][]string{"auditor": {"stream.read"}, "empty": {}})
	want := TenantConfig{
		Quota: Quota{IngestPerSecond: 5, Burst: 10},
		Members: []Member{
			{Email: "bob@example.com", Roles: []string{"writer", "reader"}},
			{Email: "u_", Roles: []string{"reader"}},
			{LLID: "u_abc", Roles: []string{"admin"}},
		},
		Roles: map[string][]Capability{"auditor": {"stream.read"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
