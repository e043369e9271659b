package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/datadir"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/tenant"
)

// stateData is a stopped production data directory with a history: a
// tenant file applied, two service accounts (one revoked) besides the
// bootstrap operator, a key rotation, and a user record.
type stateData struct {
	cfg              Config
	active, revoked  string // account ids
	operator, tenant string // files
	user             string
}

func newStateData(t *testing.T) *stateData {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Data = t.TempDir()
	cfg.Derive.TickInterval = 0
	tenants := filepath.Join(cfg.Data, "cfg", "tenants")
	os.MkdirAll(tenants, 0o755)
	yaml := "features: {cluster: true}\npolicies:\n  trajectory_linker: {close_timeout: 2h}\nquotas: {ingest_per_second: 50, burst: 100}\nmembers: {\"ana@example.com\": [writer]}\nredact: [data.customer_email]\n"
	if err := os.WriteFile(filepath.Join(tenants, "t_bakery.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := &stateData{cfg: cfg, operator: filepath.Join(cfg.Data, "identity", operatorFile), tenant: filepath.Join(tenants, "t_bakery.yaml")}
	a, _, err := s.identity.CreateServiceAccount(ctx, identity.NewServiceAccount{Tenant: "t_bakery", Role: "app", Name: "till 7", CreatedBy: "sa:x"})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := s.identity.CreateServiceAccount(ctx, identity.NewServiceAccount{Tenant: "t_bakery", Role: "admin", CreatedBy: "sa:x"})
	if err != nil {
		t.Fatal(err)
	}
	d.active, d.revoked = a.ID, b.ID
	if err := s.identity.RevokeServiceAccount(ctx, b.ID, "sa:y"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.identity.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A user record as a login writes it.
	now := time.Now().UTC()
	u := identity.User{LLID: identity.LLID("https://accounts.google.com", "1234"), Issuer: "https://accounts.google.com", Subject: "1234",
		Email: "ana@example.com", EmailVerified: true, Name: "Ana", FirstLogin: now, LastLogin: now}
	ub, _ := json.Marshal(u)
	d.user = filepath.Join(cfg.Data, "identity", "users", u.LLID+".json")
	os.MkdirAll(filepath.Dir(d.user), 0o700)
	if err := os.WriteFile(d.user, ub, 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

// records verifies the ledger and returns what VerifyState checks against.
func (d *stateData) records(t *testing.T) *StateRecords {
	t.Helper()
	recs := NewStateRecords(d.cfg.Data)
	rep, err := ledger.Verify(d.cfg.Data, ledger.VerifyConfig{CheckBody: func(kind string, body []byte) error {
		recs.Observe(kind, body)
		return nil
	}})
	if err != nil || rep.Problem != nil {
		t.Fatalf("ledger: %v %v", err, rep.Problem)
	}
	return recs
}

func (d *stateData) path(rel string) string { return filepath.Join(d.cfg.Data, rel) }

func (d *stateData) keyFile(t *testing.T) string {
	t.Helper()
	keys, _ := filepath.Glob(d.path("jwks/*.key"))
	if len(keys) != 3 {
		t.Fatalf("key files %v", keys)
	}
	return keys[0]
}

func findings(fs []identity.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.File+": "+f.Reason)
	}
	return out
}

func TestVerifyStateIntact(t *testing.T) {
	d := newStateData(t)
	recs := d.records(t)
	before := dirFiles(t, d.cfg.Data)
	r := VerifyState(d.cfg, recs, false)
	if len(r.Problems)+len(r.Notes) > 0 {
		t.Fatalf("problems %q, notes %q", findings(r.Problems), findings(r.Notes))
	}
	id := r.Identity
	got := []any{r.BundleKey, id.Keys, id.Ring, id.Accounts, id.Secrets, id.Users, r.Operator, r.RedactKey, r.Applied, r.TenantFiles, r.Audits}
	// keys.create, 3 × account.create, redact.key.create, account.revoke, keys.rotate
	want := []any{true, 3, true, 3, 3, 1, true, true, true, 1, 7}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("checked (-want +got):\n%s", d)
	}
	if d := cmp.Diff(before, dirFiles(t, d.cfg.Data)); d != "" {
		t.Errorf("VerifyState changed the directory (-before +after):\n%s", d)
	}
	// On a directory no server ran in, it creates nothing either (LoadBundle
	// would make a key).
	empty := DefaultConfig()
	empty.Data = t.TempDir()
	os.MkdirAll(filepath.Join(empty.Data, "cfg", "tenants"), 0o755)
	os.WriteFile(filepath.Join(empty.Data, "cfg", "tenants", "t_x.yaml"), []byte("features: {cluster: true}\n"), 0o644)
	r = VerifyState(empty, NewStateRecords(empty.Data), false)
	if fs := dirFiles(t, empty.Data); len(fs) != 1 || len(r.Problems) != 0 || len(r.Notes) != 1 {
		t.Errorf("empty directory: files %v, problems %q, notes %q", fs, findings(r.Problems), findings(r.Notes))
	}
}

// dirFiles maps every file under dir to its content.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			b, _ := os.ReadFile(path)
			out[path[len(dir):]] = string(b)
		}
		return err
	})
	return out
}

func rewrite(t *testing.T, path string, change func(string) string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := change(string(b))
	if n == string(b) {
		t.Fatalf("the edit changes nothing in %s", path)
	}
	st, _ := os.Stat(path)
	if err := os.WriteFile(path, []byte(n), st.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyStateFindings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		change   func(t *testing.T, d *stateData)
		problems []string
		notes    []string
	}{
		{"bundle public key", func(t *testing.T, d *stateData) {
			_, pub, _ := generateKeyPEM()
			os.WriteFile(d.path("bundle/local.key.pub"), pub, 0o644)
		}, []string{"bundle/local.key.pub: is not the public half of bundle/local.key (one of the two is damaged)"},
			[]string{"cfg/tenants/t_bakery.yaml: not compared with the ledger: no intact standard bundle key"}},
		{"bundle private key", func(t *testing.T, d *stateData) {
			priv, _, _ := generateKeyPEM()
			os.WriteFile(d.path("bundle/local.key"), priv, 0o600)
		}, []string{"bundle/local.key.pub: is not the public half of bundle/local.key (one of the two is damaged)"},
			[]string{"cfg/tenants/t_bakery.yaml: not compared with the ledger: no intact standard bundle key"}},
		{"bundle key text after the PEM", func(t *testing.T, d *stateData) {
			rewrite(t, d.path("bundle/local.key"), func(s string) string { return s + "x" })
		}, []string{`bundle/local.key: not a PEM "PRIVATE KEY" as written`},
			[]string{"cfg/tenants/t_bakery.yaml: not compared with the ledger: no intact standard bundle key"}},
		{"bundle private key missing", func(t *testing.T, d *stateData) {
			os.Remove(d.path("bundle/local.key"))
		}, nil, []string{"bundle/local.key: missing: the next start with the standard bundle makes a new key pair",
			"cfg/tenants/t_bakery.yaml: not compared with the ledger: no intact standard bundle key"}},
		{"operator secret", func(t *testing.T, d *stateData) {
			rewrite(t, d.operator, func(s string) string { return strings.Replace(s, `"llsa_`, `"llsa_x`, 1) })
		}, []string{"identity/operator.json: client_secret is not the secret of account "}, nil},
		{"operator account", func(t *testing.T, d *stateData) {
			rewrite(t, d.operator, func(s string) string {
				var m map[string]string
				json.Unmarshal([]byte(s), &m)
				return string(operatorCredentials(d.active, m["client_secret"]))
			})
		}, []string{"of tenant t_bakery and role app, not the bootstrap operator"}, nil},
		{"operator layout", func(t *testing.T, d *stateData) {
			rewrite(t, d.operator, func(s string) string { return strings.Replace(s, "  ", "\t", 1) })
		}, []string{"identity/operator.json: not as the server writes it"}, nil},
		{"operator removed", func(t *testing.T, d *stateData) { os.Remove(d.operator) }, nil, nil},
		{"redaction key", func(t *testing.T, d *stateData) {
			rewrite(t, d.path("identity/redact.key"), func(s string) string { return "x" + s[1:] })
		}, []string{"identity/redact.key: does not match the fingerprint of its redact.key.create record"}, nil},
		{"redaction key short", func(t *testing.T, d *stateData) {
			rewrite(t, d.path("identity/redact.key"), func(s string) string { return s[1:] })
		}, []string{"identity/redact.key: 31 bytes, want 32 (the server refuses to start)"}, nil},
		{"redaction key missing", func(t *testing.T, d *stateData) { os.Remove(d.path("identity/redact.key")) },
			[]string{"identity/redact.key: missing; the ledger records one"}, nil},
		{"tenant file changed", func(t *testing.T, d *stateData) {
			rewrite(t, d.tenant, func(s string) string { return strings.Replace(s, "ana@", "bob@", 1) })
		}, nil, []string{"cfg/tenants/t_bakery.yaml: changed since it was last applied: the next start applies it as a signed config record"}},
		{"tenant file refused", func(t *testing.T, d *stateData) {
			rewrite(t, d.tenant, func(s string) string { return strings.Replace(s, "features", "featurez", 1) })
		}, nil, []string{"cfg/tenants/t_bakery.yaml: changed since it was last applied, and the server refuses it (line 1: featurez: unknown member (did you mean \"features\"?) (known: features, policies, quotas, members, roles, redact, runtime)): the configuration the ledger last recorded stays in force"}},
		{"tenant file removed", func(t *testing.T, d *stateData) { os.Remove(d.tenant) },
			nil, []string{"cfg/tenants/t_bakery.yaml: removed since it was last applied: the next start returns t_bakery to the defaults (a config record)"}},
		{"tenant file added", func(t *testing.T, d *stateData) {
			os.WriteFile(filepath.Join(filepath.Dir(d.tenant), "t_cafe.yaml"), []byte("features: {cluster: true}\n"), 0o644)
			os.WriteFile(filepath.Join(filepath.Dir(d.tenant), "_x.yaml"), []byte("features: {cluster: true}\n"), 0o644)
		}, nil, []string{"cfg/tenants/_x.yaml: ignored by the server: not a tenant name",
			"cfg/tenants/t_cafe.yaml: changed since it was last applied: the next start applies it as a signed config record"}},
		{"tenant state damaged", func(t *testing.T, d *stateData) {
			rewrite(t, d.path("cfg/tenants/.applied.json"), func(s string) string { return strings.Replace(s, `"t_bakery": "`, `"t_bakery": "0`, 1)[:len(s)] })
		}, []string{"cfg/tenants/.applied.json: not as the server writes it (the next start applies every tenant file again)"}, nil},
		{"tenant state unsealed", func(t *testing.T, d *stateData) {
			rewrite(t, d.path("cfg/tenants/.applied.json"), func(s string) string {
				applied, _, _ := tenant.ReadApplied([]byte(s))
				b, _ := json.Marshal(applied)
				return string(b)
			})
		}, nil, []string{"cfg/tenants/.applied.json: written by an earlier version without a seal: not checked (sealed at the next change)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newStateData(t)
			recs := d.records(t)
			tc.change(t, d)
			r := VerifyState(d.cfg, recs, false)
			if !matchAll(findings(r.Problems), tc.problems) || !matchAll(findings(r.Notes), tc.notes) {
				t.Errorf("problems %q\nwant %q\nnotes %q\nwant %q", findings(r.Problems), tc.problems, findings(r.Notes), tc.notes)
			}
		})
	}
}

// matchAll reports whether got has one finding per want, each starting
// with its want (or, for a want not ending in ':' … holding it).
func matchAll(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !strings.HasPrefix(got[i], want[i]) && !strings.Contains(got[i], want[i]) {
			return false
		}
	}
	return true
}

func generateKeyPEM() (priv, pub []byte, err error) {
	dir, err := os.MkdirTemp("", "key")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	if _, err := localBundleKey(dir); err != nil {
		return nil, nil, err
	}
	priv, _ = os.ReadFile(filepath.Join(dir, "local.key"))
	pub, _ = os.ReadFile(filepath.Join(dir, "local.key.pub"))
	return priv, pub, nil
}

// TestVerifyStateLive: beside a running server, what it did after its
// last checkpoint is a note.
func TestVerifyStateLive(t *testing.T) {
	d := newStateData(t)
	recs := NewStateRecords(d.cfg.Data)
	// The records up to, but not including, the revocation and the
	// rotation.
	n := 0
	ledger.Verify(d.cfg.Data, ledger.VerifyConfig{CheckBody: func(kind string, body []byte) error {
		if n++; n <= 5 {
			recs.Observe(kind, body)
		}
		return nil
	}})
	r := VerifyState(d.cfg, recs, true)
	if len(r.Problems) != 0 || len(r.Notes) != 2 {
		t.Errorf("live: problems %q, notes %q", findings(r.Problems), findings(r.Notes))
	}
	if r := VerifyState(d.cfg, recs, false); len(r.Problems) != 2 {
		t.Errorf("offline: problems %q", findings(r.Problems))
	}
}

// TestRedactKeyRecorded: the server records a new redaction key's
// fingerprint, never the key, before it writes the key; under --dev it
// records nothing. A key it cannot record is not written.
func TestRedactKeyRecorded(t *testing.T) {
	dir := t.TempDir()
	rec := &auditLog{}
	key, err := loadRedactKey(t.Context(), dir, rec)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`redact.key.create {"fingerprint":"` + redactKeyFingerprint(key) + `"}`}
	if d := cmp.Diff(want, rec.lines); d != "" {
		t.Errorf("records (-want +got):\n%s", d)
	}
	if again, err := loadRedactKey(t.Context(), dir, rec); err != nil || string(again) != string(key) || len(rec.lines) != 1 {
		t.Errorf("second load: %v, same key %v, %d records", err, string(again) == string(key), len(rec.lines))
	}
	dev := t.TempDir()
	if _, err := loadRedactKey(t.Context(), dev, nil); err != nil {
		t.Fatal(err)
	}
	failing := t.TempDir()
	if _, err := loadRedactKey(t.Context(), failing, &auditLog{fail: true}); err == nil {
		t.Error("a key that could not be recorded was used")
	}
	if _, err := os.Stat(filepath.Join(failing, redactKeyFile)); !os.IsNotExist(err) {
		t.Errorf("a key that could not be recorded was written: %v", err)
	}
}

type auditLog struct {
	lines []string
	fail  bool
}

func (a *auditLog) Record(_ context.Context, op string, fields map[string]any) error {
	if a.fail {
		return fmt.Errorf("no ledger")
	}
	b, _ := json.Marshal(fields)
	a.lines = append(a.lines, op+" "+string(b))
	return nil
}

// TestStateFlipCampaign flips bytes of every kind of state file in a
// production data directory (64 offsets, or every byte of a shorter
// file), and requires each flip to be reported by VerifyState, or to be
// harmless: the server reads none of those bytes to decide or serve
// anything (shown for each kind below).
func TestStateFlipCampaign(t *testing.T) {
	d := newStateData(t)
	recs := d.records(t)
	// The bundle is loaded once: VerifyState's other reads are what the
	// flips are about.
	b, err := LoadBundle(d.cfg)
	if err != nil {
		t.Fatal(err)
	}
	loaded := func(Config) (*bundle.Bundle, error) { return b, nil }
	files := map[string]string{ // kind -> file
		"LOCK":                        d.path("LOCK"),
		"bundle/local.key":            d.path("bundle/local.key"),
		"bundle/local.key.pub":        d.path("bundle/local.key.pub"),
		"jwks/ring.json":              d.path("jwks/ring.json"),
		"jwks/<kid>.key":              d.keyFile(t),
		"identity/accounts (active)":  d.path("identity/accounts/" + d.active + ".json"),
		"identity/accounts (revoked)": d.path("identity/accounts/" + d.revoked + ".json"),
		"identity/operator.json":      d.operator,
		"identity/redact.key":         d.path("identity/redact.key"),
		"identity/users":              d.user,
		"cfg/tenants/<tenant>.yaml":   d.tenant,
		"cfg/tenants/.applied.json":   d.path("cfg/tenants/.applied.json"),
		"identity/.lock":              d.path("identity/.lock"),
		"jwks/.lock":                  d.path("jwks/.lock"),
	}
	why := map[string]string{
		"LOCK":                      "only its flock matters; each holder truncates and rewrites the text (datadir.Acquire, checked after each flip)",
		"identity/users":            "email, name, hd and login times: no decision or answer reads them (a login keeps only first_login); the flipped record differs in no other field",
		"cfg/tenants/<tenant>.yaml": "operator input: a note says it changed since it was applied; the next start records it as a config record",
		"identity/.lock":            "empty: only its flock matters",
		"jwks/.lock":                "empty: only its flock matters",
	}
	kinds := slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	})
	type tally struct{ flips, verify, note, harmless int }
	results := map[string]*tally{}
	for ki, kind := range kinds {
		name := files[kind]
		orig, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(name)
		res := &tally{}
		results[kind] = res
		rng := rand.New(rand.NewPCG(uint64(ki), 13))
		offs := map[int]bool{}
		if len(orig) > 0 {
			offs[0], offs[len(orig)-1] = true, true
		}
		for len(offs) < min(64, len(orig)) {
			offs[rng.IntN(len(orig))] = true
		}
		for _, off := range slices.Sorted(func(yield func(int) bool) {
			for o := range offs {
				if !yield(o) {
					return
				}
			}
		}) {
			b := slices.Clone(orig)
			b[off] ^= byte(1 + rng.IntN(255))
			if err := os.WriteFile(name, b, st.Mode().Perm()); err != nil {
				t.Fatal(err)
			}
			res.flips++
			r := verifyState(d.cfg, recs, false, loaded)
			rel := d.cfg.Data + "/"
			switch {
			case slices.ContainsFunc(r.Problems, func(f identity.Finding) bool {
				return rel+f.File == name || strings.Contains(f.Reason, strings.TrimPrefix(name, rel))
			}):
				res.verify++
			case len(r.Problems) > 0:
				t.Errorf("%s offset %d: problems name other files: %q", kind, off, findings(r.Problems))
			case kind == "cfg/tenants/<tenant>.yaml" && len(r.Notes) == 1 && strings.Contains(r.Notes[0].Reason, "changed since it was last applied"):
				res.note++
			case kind == "LOCK":
				l, err := datadir.Acquire(d.cfg.Data, "test")
				if err != nil {
					t.Errorf("LOCK offset %d: %v", off, err)
					continue
				}
				l.Release()
				if got, _ := os.ReadFile(name); !strings.HasPrefix(string(got), "logline data directory lock\npid ") {
					t.Errorf("LOCK offset %d: not rewritten: %q", off, got)
				}
				res.harmless++
			case kind == "identity/users":
				var was, now identity.User
				json.Unmarshal(orig, &was)
				if err := json.Unmarshal(b, &now); err != nil {
					t.Errorf("users offset %d: unreadable but not reported", off)
					continue
				}
				if d := cmp.Diff(was, now, cmpopts.IgnoreFields(identity.User{}, "Email", "Name", "HostedDomain", "FirstLogin", "LastLogin")); d != "" {
					t.Errorf("users offset %d: not reported, and a field that matters changed:\n%s", off, d)
					continue
				}
				res.harmless++
			default:
				t.Errorf("%s offset %d: not reported (notes %q)", kind, off, findings(r.Notes))
			}
		}
		if err := os.WriteFile(name, orig, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}

	// A server starts on the directory with its lock files changed, and
	// serves the same keys: their bytes are never read.
	os.WriteFile(d.path("identity/.lock"), []byte("junk"), 0o600)
	os.WriteFile(d.path("jwks/.lock"), []byte("junk"), 0o600)
	rewrite(t, d.path("LOCK"), func(s string) string { return "x" + s[1:] })
	s, err := Open(context.Background(), d.cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("a server with changed lock files: %v", err)
	}
	if got := len(s.identity.Keys()); got != 3 {
		t.Errorf("%d keys after the start, want 3", got)
	}
	s.Close()

	var tbl strings.Builder
	fmt.Fprintf(&tbl, "\n| file kind | flips | found by verify | note (operator input) | harmless, and why |\n|---|---|---|---|---|\n")
	for _, kind := range kinds {
		r := results[kind]
		fmt.Fprintf(&tbl, "| %s | %d | %d | %d | %d %s |\n", kind, r.flips, r.verify, r.note, r.harmless, why[kind])
	}
	t.Log(tbl.String())
}
