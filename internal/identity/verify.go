package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Checking the files of KeyDir and StateDir against the ledger. The
// receipts this package gives its ReceiptRecorder are the record of what
// those files must hold:
//
//	keys.create     kid, next_kid, alg, at            the ring as first made
//	keys.rotate     kid, previous_kid, next_kid,      each rotation
//	                verify_until, reason, at
//	keys.retire     kids, at                          keys dropped
//	account.create  id, tenant, role, name, by, at,   an account as created
//	                secret_fingerprint
//	account.revoke  id, tenant, by, at                its revocation
//
// From them VerifyState rebuilds ring.json and every account file byte for
// byte and compares. The key files are checked against their names (the
// kid is the key's thumbprint) and ring.json; the user records (written at
// each login, never read to decide anything) against their LLID.

// Audit is one of this package's receipts as the ledger keeps it: the op
// and the JSON of the fields given to the ReceiptRecorder.
type Audit struct {
	Op     string          `json:"op"`
	Fields json.RawMessage `json:"fields"`
}

// Finding names a file and what is wrong with it (a problem) or what could
// not be checked (a note).
type Finding struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
}

// StateReport is what VerifyState found.
type StateReport struct {
	// Keys is the number of key files checked; Ring says whether ring.json
	// was checked against the key records.
	Keys int
	Ring bool
	// Accounts is the number of account files checked against their
	// records; Secrets, of those whose secret hash was too.
	Accounts int
	Secrets  int
	// Users is the number of user records checked.
	Users    int
	Problems []Finding
	Notes    []Finding
	accounts map[string]accountRecord // the accounts found intact
}

// Account returns the account id if VerifyState found its file intact.
func (r *StateReport) Account(id string) (ServiceAccount, bool) {
	rec, ok := r.accounts[id]
	return rec.ServiceAccount, ok
}

// SecretMatches reports whether secret is the secret of the intact account
// id (as POST /auth/token would accept it, revoked or not).
func (r *StateReport) SecretMatches(id, secret string) bool {
	rec, ok := r.accounts[id]
	sum := sha256.Sum256([]byte(secret))
	return ok && rec.SecretSHA256 == hex.EncodeToString(sum[:])
}

func (r *StateReport) problem(file, format string, args ...any) {
	r.Problems = append(r.Problems, Finding{File: file, Reason: fmt.Sprintf(format, args...)})
}

func (r *StateReport) note(file, format string, args ...any) {
	r.Notes = append(r.Notes, Finding{File: file, Reason: fmt.Sprintf(format, args...)})
}

// VerifyState checks, reading only, the key ring in keyDir and the service
// accounts and users in stateDir (either may be "") against audits, this
// package's receipts in ledger order. live says a server may be changing
// the files: what it may have done since the last audit given (a key or an
// account the records do not reach yet) is then a note, not a problem.
// Findings name files by their path.
func VerifyState(keyDir, stateDir string, audits []Audit, live bool) *StateReport {
	r := &StateReport{accounts: map[string]accountRecord{}}
	if keyDir != "" {
		r.verifyKeys(keyDir, audits, live)
	}
	if stateDir != "" {
		r.verifyAccounts(filepath.Join(stateDir, accountsKind), audits, live)
		r.verifyUsers(filepath.Join(stateDir, "users"))
	}
	return r
}

// decodeStrict decodes one JSON value with no unknown members and nothing
// after it.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err == nil {
		return errors.New("data after the JSON value")
	}
	return nil
}

// sameBytes says where got first differs from want, the bytes the server
// writes for what got says.
func sameBytes(got, want []byte) error {
	if bytes.Equal(got, want) {
		return nil
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Errorf("not as the server writes it (differs at byte %d)", i)
}

// readExact reads the file at path as a T (what names it in a problem):
// one JSON value, no unknown members, and exactly the bytes marshal
// writes for it, so that no byte of it goes unread. It reports a problem
// and returns false otherwise.
func readExact[T any](r *StateReport, path, what string, marshal func(any) ([]byte, error)) (T, bool) {
	var v T
	data, err := os.ReadFile(path)
	if err != nil {
		r.problem(path, "%v", err)
		return v, false
	}
	if err := decodeStrict(data, &v); err != nil {
		r.problem(path, "not %s: %v", what, err)
		return v, false
	}
	canon, err := marshal(v)
	if err == nil {
		err = sameBytes(data, canon)
	}
	if err != nil {
		r.problem(path, "%v", err)
		return v, false
	}
	return v, true
}

// eachRecord calls check with the path, name and content of every file
// <name>.json in dir that valid accepts and readExact reads as a T (what
// names it); other files are noted as ignored by the server.
func eachRecord[T any](r *StateReport, dir, what string, valid func(string) bool, check func(path, name string, v T)) {
	ents, err := listDir(dir)
	if err != nil {
		r.problem(dir, "%v", err)
		return
	}
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() || !valid(name) {
			r.note(path, "not %s: the server ignores it", what)
			continue
		}
		if v, ok := readExact[T](r, path, what, json.Marshal); ok {
			check(path, name, v)
		}
	}
}

func marshalIndent(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }

// listDir returns the names in dir; a missing dir is empty.
func listDir(dir string) ([]os.DirEntry, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return ents, err
}

// keyEvent is the fields of a keys.* receipt.
type keyEvent struct {
	Reason      string    `json:"reason"`
	KID         string    `json:"kid"`
	NextKID     string    `json:"next_kid"`
	PreviousKID string    `json:"previous_kid"`
	Kids        []string  `json:"kids"`
	At          time.Time `json:"at"`
	VerifyUntil time.Time `json:"verify_until"`
}

// ringFromAudits replays the keys.* receipts into the manifest the server
// wrote after the last of them; ok is false without a keys.create. known
// holds every kid the receipts name.
func ringFromAudits(audits []Audit) (items []manifestItem, known map[string]bool, ok bool) {
	known = map[string]bool{}
	for _, a := range audits {
		var ev keyEvent
		switch a.Op {
		case receiptCreate, receiptRotate, receiptRetire:
			if json.Unmarshal(a.Fields, &ev) != nil {
				continue
			}
		default:
			continue
		}
		switch a.Op {
		case receiptCreate:
			ok = true
			items = []manifestItem{
				{KID: ev.KID, State: keyActive, Created: ev.At.UTC(), Activated: ev.At},
				{KID: ev.NextKID, State: keyNext, Created: ev.At.UTC()},
			}
			known[ev.KID], known[ev.NextKID] = true, true
		case receiptRotate:
			promoted := false
			compromised := ev.Reason == rotateCompromised
			for i := range items {
				switch {
				case items[i].State == keyActive:
					items[i].State, items[i].Deactivated, items[i].VerifyUntil = keyVerifyOnly, ev.At, ev.VerifyUntil
				case items[i].State == keyNext && compromised:
					items[i].State, items[i].Deactivated, items[i].VerifyUntil = keyVerifyOnly, ev.At, ev.At
				case items[i].State == keyNext:
					items[i].State, items[i].Activated = keyActive, ev.At
					promoted = true
				case items[i].State == keyVerifyOnly && compromised:
					items[i].VerifyUntil = ev.At
				}
			}
			if !promoted {
				items = append(items, manifestItem{KID: ev.KID, State: keyActive, Created: ev.At.UTC(), Activated: ev.At})
			}
			items = append(items, manifestItem{KID: ev.NextKID, State: keyNext, Created: ev.At.UTC()})
			known[ev.KID], known[ev.NextKID] = true, true
		case receiptRetire:
			items = slices.DeleteFunc(items, func(it manifestItem) bool { return slices.Contains(ev.Kids, it.KID) })
		}
	}
	return items, known, ok
}

// itemDiff describes the first difference of a manifest from want.
func itemDiff(got, want []manifestItem) string {
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.KID != w.KID {
			return fmt.Sprintf("key %d is %s; the ledger's key records say %s", i+1, g.KID, w.KID)
		}
		for _, f := range []struct {
			name      string
			got, want string
		}{
			{"state", string(g.State), string(w.State)},
			{"created", fmtTime(g.Created), fmtTime(w.Created)},
			{"activated", fmtTime(g.Activated), fmtTime(w.Activated)},
			{"deactivated", fmtTime(g.Deactivated), fmtTime(w.Deactivated)},
			{"verify_until", fmtTime(g.VerifyUntil), fmtTime(w.VerifyUntil)},
		} {
			if f.got != f.want {
				return fmt.Sprintf("key %s: %s %q; the ledger's key records say %q", g.KID, f.name, f.got, f.want)
			}
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("lists %d keys; the ledger's key records say %d", len(got), len(want))
	}
	return ""
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

// aheadOf reports whether a ring that differs from want can be the work of
// a running server after the records given: a rotation (it adds a key no
// record names) or a retirement (it drops verify-only keys, recorded first).
func aheadOf(got, want []manifestItem, known map[string]bool) bool {
	for _, it := range got {
		if !known[it.KID] {
			return true
		}
	}
	rest := slices.DeleteFunc(slices.Clone(want), func(it manifestItem) bool {
		return it.State == keyVerifyOnly && !slices.ContainsFunc(got, func(g manifestItem) bool { return g.KID == it.KID })
	})
	return len(rest) < len(want) && itemDiff(got, rest) == ""
}

func (r *StateReport) verifyKeys(dir string, audits []Audit, live bool) {
	path := filepath.Join(dir, ringFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if _, _, ok := ringFromAudits(audits); ok {
			r.problem(path, "missing; the ledger records a key ring (restore it and its key files from a backup)")
		}
		return
	}
	m, ok := readExact[ringManifest](r, path, "a key manifest", marshalIndent)
	if !ok {
		return
	}
	if m.Version != ringVersion {
		r.problem(path, "version %d, want %d", m.Version, ringVersion)
		return
	}
	actives := 0
	for _, it := range m.Keys {
		if !safeName(it.KID) {
			r.problem(path, "bad kid %q", it.KID)
			return
		}
		switch it.State {
		case keyActive:
			actives++
		case keyNext, keyVerifyOnly:
		default:
			r.problem(path, "key %s: unknown state %q", it.KID, it.State)
			return
		}
	}
	if actives != 1 {
		r.problem(path, "%d active keys, want 1", actives)
		return
	}
	want, known, ok := ringFromAudits(audits)
	switch diff := itemDiff(m.Keys, want); {
	case !ok:
		r.note(path, "the ledger has no keys.create record (a key ring older than its records): key states not checked")
	case diff == "":
		r.Ring = true
	case live && aheadOf(m.Keys, want, known):
		r.note(path, "the running server changed the ring after its last signed checkpoint (%s): not checked; run verify again once a checkpoint covers it", diff)
	default:
		r.problem(path, "%s", diff)
	}
	listed := map[string]bool{}
	for _, it := range m.Keys {
		listed[it.KID+keyFileSuffix] = true
		if r.verifyKeyFile(dir, it) {
			r.Keys++
		}
	}
	ents, err := listDir(dir)
	if err != nil {
		r.problem(dir, "%v", err)
	}
	for _, e := range ents {
		if n := e.Name(); !listed[n] && n != ringFile && n != ".lock" {
			r.note(filepath.Join(dir, n), "not a key of ring.json: the server ignores it")
		}
	}
}

// verifyKeyFile checks the key file of it; true if intact.
func (r *StateReport) verifyKeyFile(dir string, it manifestItem) bool {
	path := filepath.Join(dir, it.KID+keyFileSuffix)
	st, err := os.Stat(path)
	if err != nil {
		r.problem(path, "%v (ring.json lists it)", err)
		return false
	}
	if st.Mode().Perm()&0o077 != 0 {
		r.problem(path, "mode %v: the server refuses a key readable by group or others (chmod 600)", st.Mode().Perm())
		return false
	}
	kf, ok := readExact[keyFile](r, path, "a key file", json.Marshal)
	if !ok {
		return false
	}
	seed, serr := base64.RawURLEncoding.DecodeString(kf.Seed)
	switch {
	case kf.KID != it.KID:
		r.problem(path, "holds kid %q", kf.KID)
	case kf.Alg != llstAlg || kf.Crv != "Ed25519":
		r.problem(path, "alg %q crv %q, want %s Ed25519", kf.Alg, kf.Crv, llstAlg)
	case serr != nil || len(seed) != ed25519.SeedSize || base64.RawURLEncoding.EncodeToString(seed) != kf.Seed:
		r.problem(path, "the seed is not 32 bytes of unpadded base64url")
	case thumbprint(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)) != it.KID:
		r.problem(path, "holds another key than its kid (the kid is the key's thumbprint)")
	case fmtTime(kf.Created) != fmtTime(it.Created):
		r.problem(path, "created %s; ring.json says %s", fmtTime(kf.Created), fmtTime(it.Created))
	default:
		return true
	}
	return false
}

// accountEvent is the fields of an account.* receipt.
type accountEvent struct {
	ID                string    `json:"id"`
	Tenant            string    `json:"tenant"`
	Role              string    `json:"role"`
	Name              string    `json:"name"`
	By                string    `json:"by"`
	At                time.Time `json:"at"`
	SecretFingerprint string    `json:"secret_fingerprint"`
}

// revokedByReceiptFailure is the revoked_by of an account whose creation could not
// be recorded.
const revokedByReceiptFailure = "receipt-failure"

func (r *StateReport) verifyAccounts(dir string, audits []Audit, live bool) {
	created, revoked := map[string]accountEvent{}, map[string]accountEvent{}
	for _, a := range audits {
		if a.Op != receiptSACreate && a.Op != receiptSARevoke {
			continue
		}
		var ev accountEvent
		if json.Unmarshal(a.Fields, &ev) != nil {
			continue
		}
		if a.Op == receiptSACreate {
			created[ev.ID] = ev
		} else if _, ok := revoked[ev.ID]; !ok {
			revoked[ev.ID] = ev
		}
	}
	var noSecret []string
	eachRecord(r, dir, "an account file", safeName, func(path, id string, rec accountRecord) {
		if rec.ID != id {
			r.problem(path, "holds account %q", rec.ID)
			return
		}
		c, hasCreate := created[id]
		if !hasCreate {
			switch {
			case rec.RevokedBy == revokedByReceiptFailure && !rec.Revoked.IsZero():
				r.note(path, "revoked at creation, which could not be recorded: not checked")
			case live:
				r.note(path, "created after the running server's last signed checkpoint: not checked; run verify again once a checkpoint covers it")
			default:
				r.problem(path, "the ledger has no account.create record of it")
			}
			return
		}
		want := rec
		want.Tenant, want.Role, want.Name, want.Created, want.CreatedBy = c.Tenant, c.Role, c.Name, c.At.UTC(), c.By
		want.Revoked, want.RevokedBy = time.Time{}, ""
		if v, ok := revoked[id]; ok {
			want.Revoked, want.RevokedBy = v.At.UTC(), v.By
		} else if !rec.Revoked.IsZero() {
			// Revoked, but the record is not there: the revocation's
			// receipt failed (it still took effect), or it is past the
			// checkpoint of a running server.
			r.note(path, "revoked without an account.revoke record in the ledger (not yet covered by a checkpoint, or its receipt could not be written): the revocation is not checked")
			want.Revoked, want.RevokedBy = rec.Revoked, rec.RevokedBy
		}
		if d := accountDiff(rec, want); d != "" {
			r.problem(path, "%s", d)
			return
		}
		if c.SecretFingerprint == "" {
			noSecret = append(noSecret, path)
		} else if SecretFingerprint(rec.SecretSHA256) != c.SecretFingerprint {
			r.problem(path, "secret_sha256 does not match the secret_fingerprint of its account.create record")
			return
		} else {
			r.Secrets++
		}
		r.Accounts++
		r.accounts[id] = rec
	})
	if len(noSecret) > 0 {
		r.note(noSecret[0], "%d account(s) created before account.create records held a secret_fingerprint: their secret hash is not checked", len(noSecret))
	}
}

// accountDiff describes the first field in which got differs from want.
func accountDiff(got, want accountRecord) string {
	for _, f := range []struct{ name, got, want string }{
		{"tenant", got.Tenant, want.Tenant},
		{"role", got.Role, want.Role},
		{"name", got.Name, want.Name},
		{"created", fmtTime(got.Created), fmtTime(want.Created)},
		{"created_by", got.CreatedBy, want.CreatedBy},
		{"revoked", fmtTime(got.Revoked), fmtTime(want.Revoked)},
		{"revoked_by", got.RevokedBy, want.RevokedBy},
	} {
		if f.got != f.want {
			return fmt.Sprintf("%s %q; the ledger's account records say %q", f.name, f.got, f.want)
		}
	}
	return ""
}

// verifyUsers checks the user records against their names. Their values
// (email, name, times) are informational: nothing decides or serves by
// them (a login keeps only first_login from the old record).
func (r *StateReport) verifyUsers(dir string) {
	eachRecord(r, dir, "a user record", validLLID, func(path, llid string, u User) {
		switch {
		case u.LLID != llid || LLID(u.Issuer, u.Subject) != llid:
			r.problem(path, "its llid, iss and sub do not agree with its name")
		case !u.EmailVerified:
			r.problem(path, "email_verified is false; only verified users are recorded")
		case u.LastLogin.Before(u.FirstLogin):
			r.problem(path, "last_login before first_login")
		default:
			r.Users++
		}
	})
}
