package cycle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/loglineos/loglineos/internal/atomicfile"
	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/ledger"
)

// TenantFile is cfg/tenants/<tenant>.yaml:
//
//	features: {trajectory: true, diamond: true, cluster: false}
//	quotas:   {ingest_per_second: 2000, burst: 4000}
//	policies:
//	  trajectory_linker: {close_timeout: "2h", exceptions: ["this:heartbeat-*"]}
//	  quality_meter:     {percentile_target: "p96", min_score: 60}
//	members:  {"alice@example.com": [writer], "u_0123...": [admin]}
//
// features and policies override the bundle's for this tenant; they reach
// derivation through a config record in the ledger. quotas and members go to
// identity.
type TenantFile struct {
	Features map[string]any      `yaml:"features"`
	Policies map[string]any      `yaml:"policies"`
	Quotas   Quotas              `yaml:"quotas"`
	Members  map[string][]string `yaml:"members"`
	Roles    map[string][]string `yaml:"roles"`
	Redact   []string            `yaml:"redact"`
}

// Quotas are a tenant's ingest token bucket.
type Quotas struct {
	IngestPerSecond float64 `yaml:"ingest_per_second"`
	Burst           int     `yaml:"burst"`
}

// Appender appends records to the ledger.
type Appender interface {
	Append(ctx context.Context, entries []ledger.Entry) ([]ledger.Result, error)
}

// Watcher applies cfg/tenants/*.yaml, at start and whenever a file changes.
type Watcher struct {
	Dir      string         // cfg/tenants
	Base     map[string]any // the bundle's features and policies
	Ledger   Appender
	Apply    func(tenant string, f *TenantFile) error // identity: quotas and members; f nil when removed
	Check    func(f *TenantFile) error                // more checks of a file before anything is applied
	Logger   *slog.Logger
	applied  map[string]string // tenant -> hash of the file content last applied
	problems map[string]string // tenant -> hash of a file last refused (not logged again)
	started  bool              // identity has been given every file once
}

var tenantName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidTenantName reports whether a tenant file may be called name.yaml;
// the watcher ignores other files.
func ValidTenantName(name string) bool { return tenantName.MatchString(name) }

// AppliedFile is the watcher's state in Dir: which file content of each
// tenant the ledger last recorded, sealed so that damage is found:
//
//	{
//	  "applied": {"t_bakery": "<hex SHA-256 of cfg/tenants/t_bakery.yaml>", …},
//	  "sha256": "<hex SHA-256 of \"logline applied tenants v1\\n\" and the JSON of applied>"
//	}
//
// A file that does not read, or fails its seal, is not trusted: every
// tenant file is applied again (a config record with the same content).
// Earlier versions wrote the map alone; it is read as before, and sealed at
// the next change.
const AppliedFile = ".applied.json"

const appliedSealPrefix = "logline applied tenants v1\n"

type appliedState struct {
	Applied map[string]string `json:"applied"`
	SHA256  string            `json:"sha256"`
}

func appliedSeal(m map[string]string) string {
	b, _ := json.Marshal(m) // keys sorted
	sum := sha256.Sum256(append([]byte(appliedSealPrefix), b...))
	return hex.EncodeToString(sum[:])
}

func encodeApplied(m map[string]string) []byte {
	if m == nil {
		m = map[string]string{}
	}
	b, _ := json.MarshalIndent(appliedState{Applied: m, SHA256: appliedSeal(m)}, "", "  ")
	return append(b, '\n')
}

// ReadApplied reads the content of AppliedFile: each tenant's applied file
// hash, and whether the file was sealed (an unsealed one, from an earlier
// version, cannot be checked). It fails unless the file is exactly as the
// watcher writes it, with a seal that matches.
func ReadApplied(data []byte) (applied map[string]string, sealed bool, err error) {
	var st appliedState
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		var old map[string]string
		if json.Unmarshal(data, &old) == nil && old != nil {
			return old, false, nil
		}
		return nil, false, fmt.Errorf("not a tenant state file: %w", err)
	}
	switch {
	case st.Applied == nil:
		return nil, false, errors.New(`no "applied" member`)
	case !bytes.Equal(encodeApplied(st.Applied), data):
		return nil, false, errors.New("not as the server writes it")
	case appliedSeal(st.Applied) != st.SHA256:
		return nil, false, errors.New("its seal does not match its content")
	}
	return st.Applied, true, nil
}

func (w *Watcher) statePath() string { return filepath.Join(w.Dir, AppliedFile) }

func (w *Watcher) load() {
	if w.applied != nil {
		return
	}
	w.applied = map[string]string{}
	w.problems = map[string]string{}
	b, err := os.ReadFile(w.statePath())
	if err != nil {
		return
	}
	m, _, err := ReadApplied(b)
	if err != nil {
		w.Logger.Warn("tenant configuration state damaged; every tenant file is applied again", "file", w.statePath(), "err", err)
		return
	}
	w.applied = m
}

func (w *Watcher) save() error {
	return atomicfile.Write(w.statePath(), encodeApplied(w.applied), 0o644)
}

// Parse reads and checks a tenant file. The configuration it returns is the
// tenant's complete derivation configuration (base with the file's
// overrides), ready for a config record.
func (w *Watcher) Parse(data []byte) (*TenantFile, map[string]any, error) {
	var f TenantFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && err.Error() != "EOF" {
		return nil, nil, err
	}
	over := map[string]any{}
	if f.Features != nil {
		over["features"] = f.Features
	}
	if f.Policies != nil {
		over["policies"] = f.Policies
	}
	doc := Merge(w.Base, normalize(over).(map[string]any))
	if _, err := derive.ParseTenantConfig(doc); err != nil {
		return nil, nil, err
	}
	if f.Quotas.IngestPerSecond < 0 || f.Quotas.Burst < 0 {
		return nil, nil, errors.New("quotas: ingest_per_second and burst must not be negative")
	}
	if w.Check != nil {
		if err := w.Check(&f); err != nil {
			return nil, nil, err
		}
	}
	return &f, doc, nil
}

// normalize turns YAML's map[string]interface{} trees into JSON-like ones.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = normalize(x)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[fmt.Sprint(k)] = normalize(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = normalize(x)
		}
		return out
	}
	return v
}

// Scan applies every changed, new or removed tenant file once.
func (w *Watcher) Scan(ctx context.Context) error {
	w.load()
	entries, err := os.ReadDir(w.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	seen := map[string]bool{}
	changed := false
	for _, e := range entries {
		tenant, ok := strings.CutSuffix(e.Name(), ".yaml")
		if !ok || e.IsDir() {
			continue
		}
		if !tenantName.MatchString(tenant) {
			w.Logger.Warn("tenant file ignored: bad tenant name", "file", e.Name())
			continue
		}
		seen[tenant] = true
		path := filepath.Join(w.Dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			w.Logger.Warn("tenant file unreadable", "file", path, "err", err)
			continue
		}
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])
		if w.applied[tenant] == h {
			if !w.started && w.Apply != nil {
				// Already in the ledger; identity keeps its part in memory.
				if f, _, err := w.Parse(data); err == nil {
					w.Apply(tenant, f)
				}
			}
			continue
		}
		f, doc, err := w.Parse(data)
		if err != nil {
			if w.problems[tenant] != h {
				w.Logger.Error("tenant file refused; the previous configuration stays in force", "file", path, "err", err)
				w.problems[tenant] = h
			}
			continue
		}
		entry, err := ConfigEntry(tenant, doc)
		if err != nil {
			return err
		}
		res, err := w.Ledger.Append(ctx, []ledger.Entry{entry})
		if err != nil {
			return fmt.Errorf("record tenant %s configuration: %w", tenant, err)
		}
		if w.Apply != nil {
			if err := w.Apply(tenant, f); err != nil {
				w.Logger.Error("tenant quotas/members not applied", "tenant", tenant, "err", err)
			}
		}
		w.applied[tenant] = h
		delete(w.problems, tenant)
		changed = true
		w.Logger.Info("tenant configuration applied", "tenant", tenant, "seq", res[0].Receipt.Seq)
	}
	// Removed files return their tenants to the defaults.
	var gone []string
	for tenant := range w.applied {
		if !seen[tenant] {
			gone = append(gone, tenant)
		}
	}
	slices.Sort(gone)
	for _, tenant := range gone {
		entry, err := ConfigEntry(tenant, nil)
		if err != nil {
			return err
		}
		if _, err := w.Ledger.Append(ctx, []ledger.Entry{entry}); err != nil {
			return err
		}
		if w.Apply != nil {
			w.Apply(tenant, nil)
		}
		delete(w.applied, tenant)
		changed = true
		w.Logger.Info("tenant configuration removed; defaults apply", "tenant", tenant)
	}
	w.started = true
	if changed {
		return w.save()
	}
	return nil
}

// Run scans every interval until ctx ends.
func (w *Watcher) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := w.Scan(ctx); err != nil && ctx.Err() == nil {
				w.Logger.Error("tenant configuration scan", "err", err)
			}
		}
	}
}
