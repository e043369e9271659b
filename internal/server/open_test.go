package server

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenFailureReleasesEverything: an Open that fails part way gives back
// what it took (the data directory's lock, identity's directories, the
// ledger), so that the next Open in the same process, with the cause
// removed, starts.
func TestOpenFailureReleasesEverything(t *testing.T) {
	open := func(data string, mutate ...func(*Config)) (*Server, error) {
		cfg := DefaultConfig()
		cfg.Data = data
		cfg.Derive.TickInterval = 0
		for _, m := range mutate {
			m(&cfg)
		}
		return Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	}
	tenants := func(data string) string { return filepath.Join(data, "cfg", "tenants") }
	redactKey := func(data string) string { return filepath.Join(data, "identity", "redact.key") }
	for _, tc := range []struct {
		name    string
		config  func(c *Config)              // of every start
		fail    func(c *Config, data string) // of the start that fails
		damage  func(data string) error      // before the start that fails
		repair  func(data string) error
		wantErr string
	}{
		{"read-only, failing after the ledger (bundle)",
			func(c *Config) { c.Dev = true },
			func(c *Config, data string) {
				c.Ledger.ReadOnly = true
				c.Bundle.Path, c.Bundle.Trust = filepath.Join(data, "missing.lllb"), []string{filepath.Join(data, "missing.pub")}
			},
			nil, nil, "bundle"},
		{"failing after identity (redaction key)",
			func(c *Config) {}, nil,
			func(data string) error { return os.WriteFile(redactKey(data), make([]byte, 31), 0o600) },
			func(data string) error { return os.Remove(redactKey(data)) },
			"redaction key"},
		{"failing after the runner (tenant directory)",
			func(c *Config) { c.Dev = true }, nil,
			func(data string) error {
				os.MkdirAll(filepath.Dir(tenants(data)), 0o755)
				return os.WriteFile(tenants(data), []byte("not a directory\n"), 0o644)
			},
			func(data string) error { return os.Remove(tenants(data)) },
			"tenant configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			s, err := open(data, tc.config) // makes the ledger and identity's files
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.damage != nil {
				if err := tc.damage(data); err != nil {
					t.Fatal(err)
				}
			}
			fail := func(c *Config) {
				if tc.fail != nil {
					tc.fail(c, data)
				}
			}
			if _, err := open(data, tc.config, fail); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Open: %v, want an error mentioning %q", err, tc.wantErr)
			}
			if tc.repair != nil {
				if err := tc.repair(data); err != nil {
					t.Fatal(err)
				}
			}
			done := make(chan error, 1)
			go func() {
				s, err := open(data, tc.config)
				if err == nil {
					err = s.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Open after the failed one: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Open after the failed one hangs")
			}
		})
	}
}
