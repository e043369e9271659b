package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/tenant"
	"github.com/loglineos/loglineos/stdlib"
)

// The files in deploy/ are part of the product: they must load.
func TestDeployFiles(t *testing.T) {
	dir := filepath.Join("..", "..", "deploy")
	c := DefaultConfig()
	if err := c.LoadFile(filepath.Join(dir, "logline.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("deploy/logline.yaml: %v", err)
	}

	_, key, _ := ed25519.GenerateKey(rand.Reader)
	data, err := stdlib.Build(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Load(data, bundle.LoadOptions{Trusted: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}})
	if err != nil {
		t.Fatal(err)
	}
	tf, err := os.ReadFile(filepath.Join(dir, "tenant.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := tenant.Parse("", tf, tenant.BasePolicies(b))
	if err != nil {
		t.Fatalf("deploy/tenant.example.yaml: %v", err)
	}
	if cfg, err := tenant.ParseConfig(f.Doc); err != nil || cfg.Linker.MaxOpen != 200_000 {
		t.Fatalf("tenant example's policies read as %+v, %v", cfg.Linker, err)
	}
	if f.Quotas.IngestPerSecond != 2000 || len(f.Members) != 2 {
		t.Fatalf("tenant example read as %+v", f)
	}

	if _, err := exec.LookPath("promtool"); err != nil {
		t.Log("promtool is not installed: the alert rules are not checked here (.ci/run installs it)")
		return
	}
	out, err := exec.Command("promtool", "check", "rules", filepath.Join(dir, "alerts.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}
