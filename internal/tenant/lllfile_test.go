package tenant

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// A tenant's policies written in .lll give the same configuration, and the
// same config record, as the same policies written in YAML.
func TestParseLLLMatchesYAML(t *testing.T) {
	base := readBase(t)
	ll, err := ParseLLL("t_a.lll", []byte(`policy quality_meter {
  min_score: 70
  percentile_target: "p90"
}
policy trajectory_linker {
  close_timeout: "2h"
  close_on_did: ["sale.close"]
}
`), base)
	if err != nil {
		t.Fatal(err)
	}
	ym, err := Parse("t_a.yaml", []byte(`policies:
  quality_meter: {min_score: 70, percentile_target: "p90"}
  trajectory_linker: {close_timeout: "2h", close_on_did: ["sale.close"]}
`), base)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ym.Config, ll.Config); diff != "" {
		t.Errorf("configuration (-yaml +lll):\n%s", diff)
	}
	a, _ := ConfigEntry("t_a", ym.Doc)
	b, _ := ConfigEntry("t_a", ll.Doc)
	if string(a.Body) != string(b.Body) {
		t.Errorf("config records differ:\nyaml %s\nlll  %s", a.Body, b.Body)
	}
	if ll.Config.Meter.MinScore != 70 {
		t.Errorf("min_score %d, want 70", ll.Config.Meter.MinScore)
	}
}

func TestParseLLLErrors(t *testing.T) {
	base := readBase(t)
	tests := []struct {
		name, src, want string
	}{
		{"unknown key", "policy quality_meter {\n  min_scor: 70\n}\n", "t_a.lll:2:3: error[LLL"},
		{"out of range", "policy quality_meter {\n  min_score: 170\n}\n", "t_a.lll:2:"},
		{"not a policy", "policy quality_meter {\n  min_score: 70\n}\nvalidator v {\n  require field \"id\"\n}\n", "t_a.lll:4: a tenant file in .lll holds policy declarations only"},
		{"syntax", "policy quality_meter {\n  min_score 70\n", "t_a.lll:1:22: error[LLL014]: policy quality_meter: '{' is never closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLLL("t_a.lll", []byte(tt.src), base)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseLLL = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// The watcher records a tenant's .lll file; a .yaml beside it is ignored,
// and said so.
func TestScanLLLFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "t_a.lll"), []byte("policy quality_meter {\n  min_score: 75\n}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "t_a.yaml"), []byte("policies: {quality_meter: {min_score: 10}}\n"), 0o644)
	log := &appendLog{}
	var logged strings.Builder
	var applied *File
	w := &Watcher{Dir: dir, Ledger: log, Base: readBase(t), Logger: slog.New(slog.NewTextHandler(&logged, nil)),
		Apply: func(name string, f *File) error { applied = f; return nil }}
	if err := w.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if log.len() != 1 || applied == nil || applied.Config.Meter.MinScore != 75 {
		t.Fatalf("recorded %d, applied %+v: want the .lll file's min_score 75", log.len(), applied)
	}
	if !strings.Contains(logged.String(), "t_a.yaml") || !strings.Contains(logged.String(), "has a .lll file too") {
		t.Errorf("log: %s", logged.String())
	}
}

// A changed file is read once it has been left alone for Settle and two
// scans in a row read the same bytes: one being written (truncated first,
// empty for a moment) is not recorded half-written, even by a scan that
// finds it old (a writer stalled between its truncation and its write);
// once old enough and read twice the same, it is.
func TestScanSettles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t_a.yaml")
	os.WriteFile(path, []byte("policies: {quality_meter: {min_score: 10}}\n"), 0o644)
	log := &appendLog{}
	w := &Watcher{Dir: dir, Ledger: log, Base: readBase(t), Settle: time.Hour}
	if err := w.Scan(context.Background()); err != nil || log.len() != 1 {
		t.Fatalf("first scan: %d recorded, %v; want the file recorded at once", log.len(), err)
	}
	os.WriteFile(path, nil, 0o644) // an editor's truncation, the content to follow
	if err := w.Scan(context.Background()); err != nil || log.len() != 1 {
		t.Fatalf("a file written just now was recorded: %d records, %v", log.len(), err)
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(path, old, old) // the writer stalls after its truncation
	if err := w.Scan(context.Background()); err != nil || log.len() != 1 {
		t.Fatalf("an old empty file read once was recorded: %d records, %v", log.len(), err)
	}
	os.WriteFile(path, []byte("policies: {quality_meter: {min_score: 20}}\n"), 0o644)
	os.Chtimes(path, old, old)
	for i, want := range []int{1, 2, 2} {
		if err := w.Scan(context.Background()); err != nil || log.len() != want {
			t.Fatalf("settled change, scan %d: %d records, %v; want %d", i+1, log.len(), err, want)
		}
	}
	if got := log.entries[1].Body; !strings.Contains(string(got), `"min_score":20`) {
		t.Errorf("recorded %s, want min_score 20", got)
	}
}
