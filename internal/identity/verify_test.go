package identity

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// auditLog records receipts as the ledger keeps them: the op and the JSON
// of the fields.
type auditLog struct {
	mu     sync.Mutex
	audits []Audit
}

func (l *auditLog) Record(_ context.Context, op string, fields map[string]any) error {
	b, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.audits = append(l.audits, Audit{Op: op, Fields: b})
	return nil
}

func (l *auditLog) all() []Audit {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Audit(nil), l.audits...)
}

// stateFixture is a key ring and accounts with a history: two rotations, a
// retirement, three accounts (one revoked) and a user, made on a clock
// that is not in UTC.
type stateFixture struct {
	keyDir, stateDir string
	log              *auditLog
	active, revoked  string // account ids
	secret           string // the active account's
	llid             string
}

func newStateFixture(t *testing.T) *stateFixture {
	t.Helper()
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 600, time.FixedZone("", 90*60))}
	f := &stateFixture{keyDir: t.TempDir(), stateDir: t.TempDir(), log: &auditLog{}}
	s := newTestService(t, clock, func(c *Config) { c.KeyDir, c.StateDir, c.Receipts = f.keyDir, f.stateDir, f.log })
	a, secret, err := s.CreateServiceAccount(ctx, NewServiceAccount{Tenant: "acme", Role: RoleApp, Name: "till", CreatedBy: "u_admin"})
	if err != nil {
		t.Fatal(err)
	}
	f.active, f.secret = a.ID, secret
	clock.Add(time.Minute)
	b, _, err := s.CreateServiceAccount(ctx, NewServiceAccount{Tenant: "globex", Role: RoleAdmin, CreatedBy: "sa:x"})
	if err != nil {
		t.Fatal(err)
	}
	f.revoked = b.ID
	if _, err := s.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Hour)
	if err := s.RevokeServiceAccount(ctx, b.ID, "u_admin"); err != nil {
		t.Fatal(err)
	}
	if err := s.Maintain(ctx); err != nil { // retires the first key, rotates (RotateEvery is 24h: no)
		t.Fatal(err)
	}
	if _, err := s.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	u := User{LLID: LLID("https://accounts.google.com", "1234"), Issuer: "https://accounts.google.com", Subject: "1234",
		Email: "ana@example.com", EmailVerified: true, FirstLogin: clock.Now().UTC(), LastLogin: clock.Now().UTC()}
	if err := s.saveUser(u); err != nil {
		t.Fatal(err)
	}
	f.llid = u.LLID
	return f
}

func (f *stateFixture) verify(live bool) *StateReport {
	return VerifyState(f.keyDir, f.stateDir, f.log.all(), live)
}

func TestVerifyStateIntact(t *testing.T) {
	f := newStateFixture(t)
	r := f.verify(false)
	if len(r.Problems)+len(r.Notes) > 0 {
		t.Fatalf("problems %v, notes %v", r.Problems, r.Notes)
	}
	got := [5]int{r.Keys, r.Accounts, r.Secrets, r.Users, len(f.log.all())}
	// keys.create, 2 × account.create, keys.rotate, account.revoke,
	// keys.retire, keys.rotate: a ring of verify_only, active and next.
	if want := [5]int{3, 2, 2, 1, 7}; got != want || !r.Ring {
		t.Errorf("keys, accounts, secrets, users, audits = %v, want %v (ring checked: %v)", got, want, r.Ring)
	}
	if !r.SecretMatches(f.active, f.secret) || r.SecretMatches(f.active, f.secret+"x") || r.SecretMatches(f.revoked, f.secret) {
		t.Error("SecretMatches does not tell the account's secret")
	}
	if a, ok := r.Account(f.revoked); !ok || a.Revoked.IsZero() {
		t.Errorf("Account(revoked) = %+v, %v", a, ok)
	}
}

// edit changes a file of the fixture.
func edit(t *testing.T, path string, change func(string) string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := change(string(b))
	if n == string(b) {
		t.Fatalf("the edit changes nothing in %s", path)
	}
	if err := os.WriteFile(path, []byte(n), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *stateFixture) ring(t *testing.T) ringManifest {
	t.Helper()
	var m ringManifest
	b, err := os.ReadFile(filepath.Join(f.keyDir, ringFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestVerifyStateFindsDamage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, f *stateFixture)
		file   string // the base name of the file reported
		reason string
	}{
		{"ring state", func(t *testing.T, f *stateFixture) {
			edit(t, filepath.Join(f.keyDir, ringFile), func(s string) string { return strings.Replace(s, `"verify_only"`, `"next"`, 1) })
		}, ringFile, `state "next"; the ledger's key records say "verify_only"`},
		{"ring time", func(t *testing.T, f *stateFixture) {
			edit(t, filepath.Join(f.keyDir, ringFile), func(s string) string { return strings.Replace(s, `"verify_until": "2030`, `"verify_until": "2031`, 1) })
		}, ringFile, `verify_until "2031`},
		{"ring layout", func(t *testing.T, f *stateFixture) {
			edit(t, filepath.Join(f.keyDir, ringFile), func(s string) string { return strings.Replace(s, `"kid"`, `"KID"`, 1) })
		}, ringFile, "not as the server writes it (differs at byte 43)"},
		{"ring unknown member", func(t *testing.T, f *stateFixture) {
			edit(t, filepath.Join(f.keyDir, ringFile), func(s string) string { return strings.Replace(s, `"kid"`, `"kie"`, 1) })
		}, ringFile, `not a key manifest: json: unknown field "kie"`},
		{"ring missing", func(t *testing.T, f *stateFixture) {
			os.Remove(filepath.Join(f.keyDir, ringFile))
		}, ringFile, "missing; the ledger records a key ring"},
		{"key seed", func(t *testing.T, f *stateFixture) {
			kid := f.ring(t).Keys[1].KID
			edit(t, filepath.Join(f.keyDir, kid+keyFileSuffix), func(s string) string {
				// Another base64url character (flipping a bit could make
				// '-' or '_' one that is not base64url at all).
				i := strings.Index(s, `"seed":"`) + 8
				c := "A"
				if s[i] == 'A' {
					c = "B"
				}
				return s[:i] + c + s[i+1:]
			})
		}, "", "holds another key than its kid"},
		{"key seed padding bits", func(t *testing.T, f *stateFixture) {
			kid := f.ring(t).Keys[1].KID
			edit(t, filepath.Join(f.keyDir, kid+keyFileSuffix), func(s string) string {
				// The last of 43 base64url characters carries 2 bits of
				// the seed and 4 bits a lax decoder ignores.
				i := strings.Index(s, `","created"`) - 1
				return s[:i] + string(s[i]^1) + s[i+1:]
			})
		}, "", "the seed is not 32 bytes of unpadded base64url"},
		{"key mode", func(t *testing.T, f *stateFixture) {
			os.Chmod(filepath.Join(f.keyDir, f.ring(t).Keys[0].KID+keyFileSuffix), 0o644)
		}, "", "mode -rw-r--r--: the server refuses a key readable by group or others"},
		{"key missing", func(t *testing.T, f *stateFixture) {
			os.Remove(filepath.Join(f.keyDir, f.ring(t).Keys[2].KID+keyFileSuffix))
		}, "", "no such file or directory (ring.json lists it)"},
		{"key created", func(t *testing.T, f *stateFixture) {
			kid := f.ring(t).Keys[2].KID
			edit(t, filepath.Join(f.keyDir, kid+keyFileSuffix), func(s string) string { return strings.Replace(s, `"created":"2030`, `"created":"2031`, 1) })
		}, "", "; ring.json says 2030-"},
		{"account tenant", func(t *testing.T, f *stateFixture) {
			edit(t, filepath.Join(f.stateDir, "accounts", f.active+".json"), func(s string) string { return strings.Replace(s, `"acme"`, `"acmf"`, 1) })
		}, "", `tenant "acmf"; the ledger's account records say "acme"`},
		{"account role", func(t *testing.T, f *stateFixture) {
			edit(t, filepath.Join(f.stateDir, "accounts", f.active+".json"), func(s string) string { return strings.Replace(s, `"app"`, `"admin"`, 1) })
		}, "", `role "admin"; the ledger's account records say "app"`},
		{"account unrevoked", func(t *testing.T, f *stateFixture) {
			edit(t, filepath.Join(f.stateDir, "accounts", f.revoked+".json"), func(s string) string {
				return regexp.MustCompile(`,"revoked":"[^"]*","revoked_by":"[^"]*"`).ReplaceAllString(s, "")
			})
		}, "", `revoked ""; the ledger's account records say "2030-`},
		{"account unrevoked by a flip", func(t *testing.T, f *stateFixture) {
			// A lax decoder would drop the unknown member and serve the
			// account as active.
			edit(t, filepath.Join(f.stateDir, "accounts", f.revoked+".json"), func(s string) string { return strings.Replace(s, `"revoked"`, `"revokef"`, 1) })
		}, "", `unknown field "revokef"`},
		{"account secret", func(t *testing.T, f *stateFixture) {
			edit(t, filepath.Join(f.stateDir, "accounts", f.active+".json"), func(s string) string {
				i := strings.Index(s, `"secret_sha256":"`) + 17
				return s[:i] + string(s[i]^1) + s[i+1:]
			})
		}, "", "secret_sha256 does not match the secret_fingerprint of its account.create record"},
		{"account without record", func(t *testing.T, f *stateFixture) {
			b, _ := os.ReadFile(filepath.Join(f.stateDir, "accounts", f.active+".json"))
			id := "01KZZZZZZZZZZZZZZZZZZZZZZZ"
			os.WriteFile(filepath.Join(f.stateDir, "accounts", id+".json"), []byte(strings.ReplaceAll(string(b), f.active, id)), 0o600)
		}, "01KZZZZZZZZZZZZZZZZZZZZZZZ.json", "the ledger has no account.create record of it"},
		{"account under another name", func(t *testing.T, f *stateFixture) {
			b, _ := os.ReadFile(filepath.Join(f.stateDir, "accounts", f.active+".json"))
			os.WriteFile(filepath.Join(f.stateDir, "accounts", "01KZZZZZZZZZZZZZZZZZZZZZZZ.json"), b, 0o600)
		}, "01KZZZZZZZZZZZZZZZZZZZZZZZ.json", `holds account "` + "01"},
		{"user subject", func(t *testing.T, f *stateFixture) {
			edit(t, filepath.Join(f.stateDir, "users", f.llid+".json"), func(s string) string { return strings.Replace(s, `"1234"`, `"1235"`, 1) })
		}, "", "its llid, iss and sub do not agree with its name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newStateFixture(t)
			tc.damage(t, f)
			r := f.verify(false)
			if len(r.Problems) != 1 {
				t.Fatalf("problems %v, want one", r.Problems)
			}
			p := r.Problems[0]
			if !strings.Contains(p.Reason, tc.reason) || (tc.file != "" && filepath.Base(p.File) != tc.file) {
				t.Errorf("problem %s: %s\nwant %s: …%s…", p.File, p.Reason, tc.file, tc.reason)
			}
		})
	}
}

// TestVerifyStateNotes: what the records cannot check is a note, not a
// problem: accounts and rings older than their records, and the changes a
// running server made after the records verify saw.
func TestVerifyStateNotes(t *testing.T) {
	f := newStateFixture(t)
	audits := f.log.all()
	opsOf := func(as []Audit) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.Op)
		}
		return out
	}
	want := []string{receiptCreate, receiptSACreate, receiptSACreate, receiptRotate, receiptSARevoke, receiptRetire, receiptRotate}
	if d := cmp.Diff(want, opsOf(audits)); d != "" {
		t.Fatalf("audits (-want +got):\n%s", d)
	}
	notes := func(r *StateReport) []string {
		var out []string
		for _, n := range r.Notes {
			out = append(out, filepath.Base(n.File)+": "+n.Reason)
		}
		return out
	}
	problems := func(r *StateReport) []string {
		var out []string
		for _, p := range r.Problems {
			out = append(out, filepath.Base(p.File)+": "+p.Reason)
		}
		return out
	}

	// A running server that rotated after the records seen: the ring is
	// ahead (a key no record names); the same ring offline is a problem.
	early := audits[:5]
	r := VerifyState(f.keyDir, f.stateDir, early, true)
	if len(r.Problems) != 0 || len(r.Notes) != 1 || !strings.Contains(r.Notes[0].Reason, "the running server changed the ring after its last signed checkpoint") {
		t.Errorf("live, ring ahead: problems %q, notes %q", problems(r), notes(r))
	}
	if r := VerifyState(f.keyDir, f.stateDir, early, false); len(r.Problems) != 1 {
		t.Errorf("offline, ring ahead: problems %q", problems(r))
	}
	// A retirement past the records seen: the ring lacks a verify-only
	// key the records still have (the server records a retirement first,
	// so only a running server shows this).
	noRetire := slicesDelete(audits, 5)
	if r := VerifyState(f.keyDir, f.stateDir, noRetire, true); len(r.Problems) != 0 || len(r.Notes) != 1 {
		t.Errorf("live, retirement ahead: problems %q, notes %q", problems(r), notes(r))
	}
	if r := VerifyState(f.keyDir, f.stateDir, noRetire, false); len(r.Problems) != 1 {
		t.Errorf("offline, retirement ahead: problems %q", problems(r))
	}
	// Damage is not mistaken for a running server's work.
	ringPath := filepath.Join(f.keyDir, ringFile)
	orig, _ := os.ReadFile(ringPath)
	edit(t, ringPath, func(s string) string { return strings.Replace(s, `"next"`, `"verify_only"`, 1) })
	if r := VerifyState(f.keyDir, f.stateDir, audits, true); len(r.Problems) != 1 {
		t.Errorf("live, damaged ring: problems %q, notes %q", problems(r), notes(r))
	}
	os.WriteFile(ringPath, orig, 0o600)

	// An account created, or revoked, after the records seen.
	r = VerifyState(f.keyDir, f.stateDir, audits[:2], true)
	if got := notes(r); len(got) != 2 || !strings.Contains(got[1], "created after the running server's last signed checkpoint") {
		t.Errorf("live, account ahead: notes %q", got)
	}
	r = VerifyState(f.keyDir, f.stateDir, slicesDelete(audits, 4), true)
	if got := notes(r); len(got) != 1 || !strings.Contains(got[0], "revoked without an account.revoke record") || len(r.Problems) != 0 {
		t.Errorf("live, revocation ahead: problems %q, notes %q", problems(r), got)
	}

	// Older records: no keys.create, no secret_fingerprint.
	var old []Audit
	for _, a := range audits {
		switch a.Op {
		case receiptCreate, receiptRotate, receiptRetire:
			continue
		case receiptSACreate:
			var m map[string]any
			json.Unmarshal(a.Fields, &m)
			delete(m, "secret_fingerprint")
			a.Fields, _ = json.Marshal(m)
		}
		old = append(old, a)
	}
	r = VerifyState(f.keyDir, f.stateDir, old, false)
	want = []string{
		"ring.json: the ledger has no keys.create record (a key ring older than its records): key states not checked",
		filepath.Base(r.Notes[len(r.Notes)-1].File) + ": 2 account(s) created before account.create records held a secret_fingerprint: their secret hash is not checked",
	}
	if d := cmp.Diff(want, notes(r)); d != "" || len(r.Problems) != 0 || r.Secrets != 0 || r.Accounts != 2 || r.Ring {
		t.Errorf("older records: problems %q, notes (-want +got):\n%s", problems(r), d)
	}

	// An account whose creation could not be recorded is revoked at once.
	r = VerifyState("", f.stateDir, nil, false)
	if len(r.Problems) != 2 {
		t.Errorf("no records: problems %q", problems(r))
	}
}

func slicesDelete(as []Audit, i int) []Audit {
	out := append([]Audit(nil), as[:i]...)
	return append(out, as[i+1:]...)
}

// TestVerifyStateReceiptFailure: an account saved revoked because its
// account.create receipt failed has no record; it is a note.
func TestVerifyStateReceiptFailure(t *testing.T) {
	clock := newFakeClock()
	rec := &receipts{}
	dir := t.TempDir()
	s := newTestService(t, clock, func(c *Config) { c.StateDir = dir; c.Receipts = rec })
	rec.fail = context.DeadlineExceeded
	if _, _, err := s.CreateServiceAccount(context.Background(), NewServiceAccount{Tenant: "acme", Role: RoleApp}); err == nil {
		t.Fatal("created without a receipt")
	}
	r := VerifyState("", dir, nil, false)
	if len(r.Problems) != 0 || len(r.Notes) != 1 || !strings.Contains(r.Notes[0].Reason, "revoked at creation, which could not be recorded") {
		t.Errorf("problems %v, notes %v", r.Problems, r.Notes)
	}
}
