package tenant

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// appendLog is an Appender that keeps the entries.
type appendLog struct {
	mu      sync.Mutex
	entries []ledger.Entry
}

func (a *appendLog) Append(_ context.Context, es []ledger.Entry) ([]ledger.Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]ledger.Result, len(es))
	for i, e := range es {
		out[i].Receipt = ledgerfmt.Receipt{Seq: uint64(len(a.entries))}
		a.entries = append(a.entries, e)
	}
	return out, nil
}

func (a *appendLog) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.entries)
}

// TestAppliedStateSealed: the watcher's state file carries a seal, so that
// every byte flipped in it is found by ReadApplied; an older unsealed file
// is still read; a file that fails its seal makes the watcher apply every
// tenant file again (a config record with the same content) rather than
// trust it.
func TestAppliedStateSealed(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"t_bakery", "t_cafe"} {
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte("features: {cluster: true}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	log := &appendLog{}
	w := &Watcher{Dir: dir, Base: map[string]any{}, Ledger: log, Logger: slog.New(slog.DiscardHandler)}
	if err := w.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, AppliedFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	applied, sealed, err := ReadApplied(data)
	if err != nil || !sealed || len(applied) != 2 {
		t.Fatalf("ReadApplied = %v, %v, %v\n%s", applied, sealed, err, data)
	}
	for off := range data {
		b := []byte(string(data))
		for _, x := range []byte{0x01, 0x20, 0xff} {
			b[off] = data[off] ^ x
			if m, _, err := ReadApplied(b); err == nil {
				t.Errorf("byte %d ^ %#x: read as %v", off, x, m)
			}
		}
	}

	// An older server's file: the map alone.
	old := []byte("{\n  \"t_bakery\": \"" + applied["t_bakery"] + "\",\n  \"t_cafe\": \"" + applied["t_cafe"] + "\"\n}")
	got, sealed, err := ReadApplied(old)
	if d := cmp.Diff(applied, got); d != "" || sealed || err != nil {
		t.Errorf("older file: sealed %v, err %v, map (-want +got):\n%s", sealed, err, d)
	}
	if _, _, err := ReadApplied([]byte("null")); err == nil {
		t.Error("null read as a state file")
	}
	if err := os.WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	w2 := &Watcher{Dir: dir, Base: map[string]any{}, Ledger: log, Logger: slog.New(slog.DiscardHandler)}
	if err := w2.Scan(context.Background()); err != nil || log.len() != 2 {
		t.Fatalf("an older state file: %v, %d records (want 2: nothing applied again)", err, log.len())
	}

	// A damaged one: nothing in it is trusted.
	data[len(data)/2] ^= 1
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	w3 := &Watcher{Dir: dir, Base: map[string]any{}, Ledger: log, Logger: slog.New(slog.NewTextHandler(&logged, nil))}
	if err := w3.Scan(context.Background()); err != nil || log.len() != 4 {
		t.Fatalf("a damaged state file: %v, %d records (want 4: both applied again)", err, log.len())
	}
	if !strings.Contains(logged.String(), "every tenant file is applied again") {
		t.Errorf("log: %s", logged.String())
	}
	if data, _ = os.ReadFile(path); !strings.Contains(string(data), `"sha256"`) {
		t.Errorf("not rewritten sealed: %s", data)
	}
}

// TestScanRefusesUnrecordable: a file whose policies cannot be written as
// JSON (a NaN, in a policy derivation does not read) is refused like any
// bad file: the scan goes on, the other tenants are recorded, and the
// server can start.
func TestScanRefusesUnrecordable(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "t_nan.yaml"), []byte("policies:\n  other: {x: .nan}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "t_ok.yaml"), []byte("features: {cluster: true}\n"), 0o644)
	log := &appendLog{}
	var logged strings.Builder
	w := &Watcher{Dir: dir, Ledger: log, Logger: slog.New(slog.NewTextHandler(&logged, nil))}
	if err := w.Scan(context.Background()); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if log.len() != 1 || log.entries[0].Tenant != "t_ok" {
		t.Fatalf("recorded %d entries, want t_ok's alone", log.len())
	}
	if !strings.Contains(logged.String(), "tenant file refused") || !strings.Contains(logged.String(), "policies.other.x") {
		t.Errorf("log: %s", logged.String())
	}
}
