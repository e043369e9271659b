package identity

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func jwksKids(t *testing.T, s *Service) []string {
	t.Helper()
	data, err := s.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	slices.Sort(kids)
	return kids
}

func sorted(ss ...string) []string {
	ss = slices.Clone(ss)
	slices.Sort(ss)
	return ss
}

func stateOf(s *Service) map[string]string {
	m := map[string]string{}
	for _, k := range s.Keys() {
		m[k.KID] = k.State
	}
	return m
}

// TestRotationOverlap: after a rotation the old kid verifies for the
// overlap (TokenTTL + Skew) and not a second longer, and leaves the JWKS.
func TestRotationOverlap(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	rec := &receipts{}
	dir := t.TempDir()
	s := newTestService(t, clock, func(c *Config) { c.KeyDir = dir; c.Receipts = rec })
	if diff := cmp.Diff([]string{receiptCreate}, rec.Ops()); diff != "" {
		t.Fatalf("receipts (-want +got):\n%s", diff)
	}
	kid1 := s.ring.snapshot().active.kid
	priv1 := s.ring.snapshot().active.priv
	next := s.Keys()[1].KID
	tok1 := mustIssue(t, s)
	if _, err := s.Authenticate(bearer(tok1)); err != nil {
		t.Fatal(err)
	}

	kid2, err := s.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kid2 != next {
		t.Errorf("rotation activated %s, want the published next key %s", kid2, next)
	}
	if got := rec.last; got["previous_kid"] != kid1 || got["kid"] != kid2 || got["reason"] != rotateManual {
		t.Errorf("rotate receipt = %v", got)
	}
	kid3 := s.Keys()[2].KID
	if diff := cmp.Diff(map[string]string{kid1: "verify_only", kid2: "active", kid3: "next"}, stateOf(s)); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	tok2 := mustIssue(t, s)
	if !strings.Contains(mustHeader(t, tok2), kid2) {
		t.Errorf("new token not signed by %s", kid2)
	}
	// A token signed by the old key late in the overlap, so its own exp is
	// not what refuses it.
	late := clock.Now().Add(10 * time.Minute)
	tokLate := rawJWS(t, priv1, map[string]any{"alg": "EdDSA", "kid": kid1, "typ": "llst+jwt"},
		with(claimsAt(late), "iss", "https://logline.test"))

	clock.Add(15*time.Minute + 59*time.Second) // inside the overlap of 16 min
	for _, tok := range []string{tok1, tok2} {
		if _, err := s.Authenticate(bearer(tok)); err != nil {
			t.Fatalf("inside the overlap: %v", err)
		}
	}
	if diff := cmp.Diff(sorted(kid1, kid2, kid3), jwksKids(t, s)); diff != "" {
		t.Errorf("JWKS inside the overlap (-want +got):\n%s", diff)
	}
	clock.Add(time.Second) // the overlap is over: 16 min
	for _, tok := range []string{tok1, tokLate} {
		if _, err := s.Authenticate(bearer(tok)); ReasonOf(err) != ReasonUnknownKID {
			t.Fatalf("after the overlap: %v, want unknown_kid", err)
		}
	}
	if diff := cmp.Diff(sorted(kid2, kid3), jwksKids(t, s)); diff != "" {
		t.Errorf("JWKS after the overlap (-want +got):\n%s", diff)
	}
	if _, err := s.Authenticate(bearer(tok2)); err != nil {
		t.Fatalf("new key after the overlap: %v", err)
	}

	// Maintain retires the key: gone from memory and disk, with a receipt.
	if err := s.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, kid1+".key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("retired key file still there: %v", err)
	}
	if diff := cmp.Diff(map[string]string{kid2: "active", kid3: "next"}, stateOf(s)); diff != "" {
		t.Errorf("states after retirement (-want +got):\n%s", diff)
	}
	if ops := rec.Ops(); ops[len(ops)-1] != receiptRetire {
		t.Errorf("receipts = %v", ops)
	}
}

func mustHeader(t *testing.T, tok string) string {
	t.Helper()
	h, err := b64.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// TestKeyRingPersists: the ring survives a restart, private keys are 0600
// in a 0700 directory, and a reopened server verifies old tokens.
func TestKeyRingPersists(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	dir := filepath.Join(t.TempDir(), "jwks")
	s1 := newTestService(t, clock, func(c *Config) { c.KeyDir = dir })
	tok := mustIssue(t, s1)
	if _, err := s1.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, Config{KeyDir: dir}); !errors.Is(err, ErrDirLocked) {
		t.Fatalf("a second owner of the key dir: %v, want ErrDirLocked", err)
	}
	s1.Close()
	s2 := newTestService(t, clock, func(c *Config) { c.KeyDir = dir })
	if diff := cmp.Diff(s1.Keys(), s2.Keys()); diff != "" {
		t.Errorf("keys after reopening (-want +got):\n%s", diff)
	}
	if _, err := s2.Authenticate(bearer(tok)); err != nil {
		t.Errorf("token from before the restart: %v", err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("key dir mode %v (%v)", st.Mode().Perm(), err)
	}
	ents, _ := os.ReadDir(dir)
	nkeys := 0
	if st, err := os.Stat(filepath.Join(dir, ringFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("manifest mode %v (%v)", st.Mode().Perm(), err)
	}
	for _, e := range ents {
		info, _ := e.Info()
		if strings.HasSuffix(e.Name(), ".key") {
			nkeys++
			if info.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v, want 0600", e.Name(), info.Mode().Perm())
			}
			data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			if strings.Contains(string(data), `"d"`) {
				t.Errorf("unexpected field in %s", e.Name())
			}
		}
	}
	if nkeys != 3 {
		t.Errorf("%d key files, want 3", nkeys)
	}
	jwks, _ := s2.JWKS()
	for _, k := range s1.ring.snapshot().keys {
		seed := b64.EncodeToString(k.priv.Seed())
		if strings.Contains(string(jwks), seed) {
			t.Fatal("a private key is in the JWKS")
		}
	}
}

func TestKeyRingRefusesBadFiles(t *testing.T) {
	clock := newFakeClock()
	tests := []struct {
		name   string
		damage func(t *testing.T, dir, kid string)
		want   string
	}{
		{"world-readable key", func(t *testing.T, dir, kid string) {
			if err := os.Chmod(filepath.Join(dir, kid+".key"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "chmod 600"},
		{"key swapped under another name", func(t *testing.T, dir, kid string) {
			m, _ := os.ReadFile(filepath.Join(dir, ringFile))
			var man ringManifest
			_ = json.Unmarshal(m, &man)
			other := man.Keys[1].KID
			data, _ := os.ReadFile(filepath.Join(dir, other+".key"))
			if err := os.WriteFile(filepath.Join(dir, kid+".key"), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "another key"},
		{"kid with a path in the manifest", func(t *testing.T, dir, kid string) {
			m, _ := os.ReadFile(filepath.Join(dir, ringFile))
			m = []byte(strings.Replace(string(m), kid, "../../etc/passwd", 1))
			if err := os.WriteFile(filepath.Join(dir, ringFile), m, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "bad kid"},
		{"missing key file", func(t *testing.T, dir, kid string) {
			if err := os.Remove(filepath.Join(dir, kid+".key")); err != nil {
				t.Fatal(err)
			}
		}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := newTestService(t, clock, func(c *Config) { c.KeyDir = dir })
			s.Close()
			tt.damage(t, dir, s.ring.snapshot().active.kid)
			_, err := New(context.Background(), Config{KeyDir: dir, Now: clock.Now})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestRotateWithoutReceipt: a rotation that cannot be recorded does not
// happen, in memory or on disk.
func TestRotateWithoutReceipt(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	rec := &receipts{}
	dir := t.TempDir()
	s := newTestService(t, clock, func(c *Config) { c.KeyDir = dir; c.Receipts = rec })
	before := s.Keys()
	rec.fail = errors.New("ledger down")
	if _, err := s.Rotate(ctx); err == nil || !strings.Contains(err.Error(), "ledger down") {
		t.Fatalf("Rotate = %v", err)
	}
	if diff := cmp.Diff(before, s.Keys()); diff != "" {
		t.Errorf("keys changed (-want +got):\n%s", diff)
	}
	rec.fail = nil
	s.Close()
	s2 := newTestService(t, clock, func(c *Config) { c.KeyDir = dir })
	if diff := cmp.Diff(before, s2.Keys()); diff != "" {
		t.Errorf("keys on disk changed (-want +got):\n%s", diff)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 4 { // .lock, ring.json and two keys
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("files left behind: %v", names)
	}
}

func TestScheduledRotation(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	rec := &receipts{}
	s := newTestService(t, clock, func(c *Config) { c.Receipts = rec; c.RotateEvery = time.Hour })
	kid1 := s.ring.snapshot().active.kid
	clock.Add(59 * time.Minute)
	if err := s.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if s.ring.snapshot().active.kid != kid1 {
		t.Fatal("rotated early")
	}
	clock.Add(time.Minute)
	if err := s.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if s.ring.snapshot().active.kid == kid1 {
		t.Fatal("did not rotate on schedule")
	}
	if rec.last["reason"] != rotateSchedule {
		t.Errorf("receipt = %v", rec.last)
	}
	// Rotations every hour never keep more than: next, active, and the
	// verify-only keys of the last overlap.
	for range 10 {
		clock.Add(time.Hour)
		if err := s.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.Keys()); n != 3 {
		t.Errorf("%d keys in the ring after 10 rotations, want 3", n)
	}
}

func TestConfigRefusesLongJWKSCache(t *testing.T) {
	_, err := New(context.Background(), Config{JWKSMaxAge: time.Hour})
	if err == nil {
		t.Fatal("a JWKS max-age longer than the overlap was accepted")
	}
	s, err := New(context.Background(), Config{Overlap: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Overlap != DefaultTokenTTL+DefaultSkew {
		t.Errorf("overlap %v not raised to TTL + skew", s.cfg.Overlap)
	}
}

// TestConcurrentUse runs the hot path against every writer at once; run
// with -race.
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	s := newTestService(t, clock, func(c *Config) { c.KeyDir = t.TempDir(); c.StateDir = t.TempDir() })
	sa, secret, err := s.CreateServiceAccount(ctx, NewServiceAccount{Tenant: "acme", Role: RoleApp})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				tok, err := s.Issue("u_x", "acme", []string{RoleWriter})
				if err != nil {
					t.Error(err)
					return
				}
				// Rotations run meanwhile, but never faster than the
				// overlap: a fresh token always verifies.
				if _, err := s.Authenticate(bearer(tok.AccessToken)); err != nil {
					t.Error(err)
					return
				}
				_ = s.Limiter().Allow("acme", []string{RoleWriter}, 1)
				_, _ = s.ExchangeClientCredentials(sa.ID, secret)
				_, _ = s.JWKS()
			}
		})
	}
	for i := range 20 {
		if _, err := s.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateTenants(map[string]TenantConfig{"acme": {Quota: Quota{IngestPerSecond: float64(i + 1), Burst: 10}}}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.CreateServiceAccount(ctx, NewServiceAccount{Tenant: "acme", Role: RoleApp}); err != nil {
			t.Fatal(err)
		}
		s.RevokeSubject("u_y")
	}
	if err := s.RevokeServiceAccount(ctx, sa.ID, "test"); err != nil {
		t.Fatal(err)
	}
	close(done)
	wg.Wait()
}

// A rotation for a leak replaces the active and the next key at once, with
// no overlap: every token signed before is refused at once, and so is one
// forged with the leaked next key; new tokens verify; the ring still
// matches the ledger's key records.
func TestRotationCompromised(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	rec := &auditLog{}
	dir := t.TempDir()
	s := newTestService(t, clock, func(c *Config) { c.KeyDir = dir; c.Receipts = rec })
	kid1 := s.ring.snapshot().active.kid
	nextKey := s.ring.snapshot().keys[1]
	if nextKey.state != keyNext {
		t.Fatalf("key 1 is %v, want the next key", nextKey.state)
	}
	tok1 := mustIssue(t, s)
	if _, err := s.Authenticate(bearer(tok1)); err != nil {
		t.Fatal(err)
	}
	// An ordinary rotation first, so that a key is still verifying when
	// the leak is found.
	if _, err := s.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	tok2 := mustIssue(t, s)
	leakedNext := s.ring.snapshot().keys[len(s.ring.snapshot().keys)-1]
	forged := rawJWS(t, leakedNext.priv, map[string]any{"alg": "EdDSA", "kid": leakedNext.kid, "typ": "llst+jwt"},
		with(claimsAt(clock.Now()), "iss", "https://logline.test"))

	kid3, err := s.RotateCompromised(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kid3 == leakedNext.kid || kid3 == kid1 || kid3 == nextKey.kid {
		t.Fatalf("the compromised rotation activated %s, a key that may have leaked", kid3)
	}
	all := rec.all()
	var got map[string]any
	json.Unmarshal(all[len(all)-1].Fields, &got)
	if all[len(all)-1].Op != receiptRotate || got["reason"] != rotateCompromised || got["kid"] != kid3 {
		t.Errorf("rotate receipt %s %v", all[len(all)-1].Op, got)
	}
	for name, tok := range map[string]string{"tok1 (verify-only key)": tok1, "tok2 (active key)": tok2, "forged (next key)": forged} {
		if _, err := s.Authenticate(bearer(tok)); err == nil {
			t.Errorf("%s still verifies after the compromised rotation", name)
		}
	}
	tok3 := mustIssue(t, s)
	if _, err := s.Authenticate(bearer(tok3)); err != nil || !strings.Contains(mustHeader(t, tok3), kid3) {
		t.Fatalf("a new token: %v", err)
	}
	// The ring still matches the key records, before and after the
	// leaked keys are retired.
	for _, when := range []string{"at once", "after maintenance"} {
		rep := VerifyState(dir, t.TempDir(), rec.all(), false)
		if len(rep.Problems) > 0 {
			t.Fatalf("%s: VerifyState problems %v", when, rep.Problems)
		}
		clock.Add(time.Second)
		if err := s.ring.maintain(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.Keys()); n != 2 {
		t.Errorf("%d keys after the leaked ones are retired, want 2 (active, next): %v", n, stateOf(s))
	}
}
