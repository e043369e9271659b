package identity

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// docs/roles.md has a row for every capability, marking exactly the
// built-in roles that grant it (with * where it is operator-only).
func TestRolesDocMatchesTheTable(t *testing.T) {
	doc, err := os.ReadFile("../../docs/roles.md")
	if err != nil {
		t.Fatal(err)
	}
	roles := []string{RoleAdmin, RoleWriter, RoleReader, RoleAuditor, RoleApp, RoleMonitor}
	if !strings.Contains(string(doc), "| capability | "+strings.Join(roles, " | ")+" |") {
		t.Fatalf("docs/roles.md has no header row for the roles %v", roles)
	}
	table := DefaultRoles()
	for _, c := range AllCapabilities() {
		row := "| `" + string(c) + "` |"
		for _, r := range roles {
			mark := ""
			if slices.Contains(table[r], c) {
				mark = " x"
				if operatorOnly(c) {
					mark = " x*"
				}
			}
			row += mark + " |"
		}
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/roles.md lacks the row %q", row)
		}
	}
}
