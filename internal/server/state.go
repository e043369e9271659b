package server

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/runtime"
	"github.com/loglineos/loglineos/internal/tenant"
)

// The state files of a data directory, besides the ledger and the derived
// store, and how logline ledger verify checks them (VerifyState), reading
// only:
//
//	bundle/local.key, local.key.pub   the standard bundle's signing key pair:
//	                                  PEM as written, the public half matching
//	jwks/ring.json, jwks/<kid>.key    rebuilt from the keys.* audit records;
//	identity/accounts/<id>.json       the account.* records (identity.VerifyState)
//	identity/users/<llid>.json        against their LLID (informational values)
//	identity/operator.json            as written, naming the bootstrap account
//	                                  with its secret
//	identity/redact.key               32 bytes, fingerprint of its
//	                                  redact.key.create record
//	cfg/tenants/.applied.json         sealed (tenant.ReadApplied)
//	cfg/tenants/<tenant>.yaml         operator input: a file that differs from
//	                                  what the ledger last recorded is a note
//
// The lock files (LOCK, identity/.lock, jwks/.lock) are not checked: only
// their flock matters, and LOCK's text is rewritten by each holder.

// StateRecords gathers, while the ledger is verified, the records the state
// files are checked against: the audit records and each tenant's last
// config record. Pass Observe to ledger.VerifyConfig.CheckBody (wrapped).
type StateRecords struct {
	audits  []identity.Audit
	redact  []string          // fingerprints of redact.key.create records
	configs map[string][]byte // tenant -> body of its last config record
	Audits  int               // audit records seen
	Bad     int               // audit or config bodies that did not parse

	n         uint64                       // records observed: the seq of the next
	kvThrough uint64                       // kv records below it are folded (kv.json's ledger_next)
	kv        map[string]map[string]string // their fold: tenant -> key -> value JSON
}

// NewStateRecords returns an empty StateRecords. data is the data
// directory: the kv records below the point runtime/kv.json says it holds
// are folded, to check it.
func NewStateRecords(data string) *StateRecords {
	r := &StateRecords{configs: map[string][]byte{}, kv: map[string]map[string]string{}}
	if f, err := runtime.ReadKVFile(filepath.Join(data, "runtime", runtime.KVFileName)); err == nil {
		r.kvThrough = f.LedgerNext
	}
	return r
}

// Observe takes each record's kind and body, in ledger order from the
// first; it copies what it keeps.
func (r *StateRecords) Observe(kind string, body []byte) {
	seq := r.n
	r.n++
	switch kind {
	case runtime.KindKV:
		var kv runtime.KVRecord
		if seq >= r.kvThrough {
			return
		}
		if json.Unmarshal(body, &kv) != nil {
			r.Bad++
			return
		}
		m := r.kv[kv.Tenant]
		if m == nil {
			m = map[string]string{}
			r.kv[kv.Tenant] = m
		}
		if string(kv.Value) == "null" {
			delete(m, kv.Key)
		} else {
			m[kv.Key] = string(kv.Value)
		}
	case KindAudit:
		r.Audits++
		var a struct {
			Op     string          `json:"op"`
			Fields json.RawMessage `json:"fields"`
		}
		if json.Unmarshal(body, &a) != nil {
			r.Bad++
			return
		}
		if a.Op == auditRedactKey {
			var f struct {
				Fingerprint string `json:"fingerprint"`
			}
			json.Unmarshal(a.Fields, &f)
			r.redact = append(r.redact, f.Fingerprint)
			return
		}
		r.audits = append(r.audits, identity.Audit{Op: a.Op, Fields: a.Fields})
	case ledgerfmt.KindConfig:
		var c struct {
			Tenant string `json:"tenant"`
		}
		if json.Unmarshal(body, &c) != nil || c.Tenant == "" {
			r.Bad++
			return
		}
		r.configs[c.Tenant] = bytes.Clone(body)
	}
}

// StateReport is what VerifyState found. Findings name files relative to
// the data directory.
type StateReport struct {
	BundleKey   bool // bundle/local.key and local.key.pub checked
	Identity    *identity.StateReport
	Operator    bool // identity/operator.json checked
	RedactKey   bool // identity/redact.key checked against its record
	Applied     bool // cfg/tenants/.applied.json checked
	KVKeys      int  // keys of runtime/kv.json checked against the ledger's kv records
	Outbox      int  // lines of runtime/outbox checked
	TenantFiles int  // tenant files as the ledger last recorded them
	Audits      int  // audit records used
	Problems    []identity.Finding
	Notes       []identity.Finding
}

// OK reports whether no state file is damaged.
func (r *StateReport) OK() bool { return len(r.Problems) == 0 }

type stateCheck struct {
	cfg  Config
	load func(Config) (*bundle.Bundle, error)
	recs *StateRecords
	live bool
	rep  *StateReport
}

func (c *stateCheck) rel(path string) string {
	if p, err := filepath.Rel(c.cfg.Data, path); err == nil {
		return filepath.ToSlash(p)
	}
	return path
}

func (c *stateCheck) problem(path, format string, args ...any) {
	c.rep.Problems = append(c.rep.Problems, identity.Finding{File: c.rel(path), Reason: fmt.Sprintf(format, args...)})
}

func (c *stateCheck) note(path, format string, args ...any) {
	c.rep.Notes = append(c.rep.Notes, identity.Finding{File: c.rel(path), Reason: fmt.Sprintf(format, args...)})
}

// VerifyState checks the state files of the data directory cfg.Data (see
// above) against recs, the records of its ledger, which must have been
// verified. It only reads: it never creates a key or any other file. live
// says a server holds the directory (recs then end at its last signed
// checkpoint): what it may have changed since is a note.
func VerifyState(cfg Config, recs *StateRecords, live bool) *StateReport {
	return verifyState(cfg, recs, live, LoadBundle)
}

// verifyState is VerifyState with the bundle loader.
func verifyState(cfg Config, recs *StateRecords, live bool, load func(Config) (*bundle.Bundle, error)) *StateReport {
	c := &stateCheck{cfg: cfg, recs: recs, live: live, load: load, rep: &StateReport{Audits: recs.Audits}}
	if recs.Bad > 0 {
		c.note(filepath.Join(cfg.Data, "ledger"), "%d audit or config records did not parse and were not used", recs.Bad)
	}
	c.bundleKey()
	id := identity.VerifyState(filepath.Join(cfg.Data, "jwks"), filepath.Join(cfg.Data, "identity"), recs.audits, live)
	for _, f := range id.Problems {
		c.problem(f.File, "%s", f.Reason)
	}
	for _, f := range id.Notes {
		c.note(f.File, "%s", f.Reason)
	}
	c.rep.Identity = id
	c.operator(id)
	c.redactKey()
	c.tenants()
	c.kvStore()
	lines, found := runtime.CheckDir(filepath.Join(c.cfg.Data, "runtime"))
	c.rep.Outbox = lines
	for _, f := range found {
		if f.Damaged {
			c.problem(f.File, "%s", f.Reason)
		} else {
			c.note(f.File, "%s", f.Reason)
		}
	}
	return c.rep
}

// kvStore checks runtime/kv.json, the cache of the routers' key-value
// store, against the fold of the ledger's kv records it says it holds.
func (c *stateCheck) kvStore() {
	path := filepath.Join(c.cfg.Data, "runtime", runtime.KVFileName)
	f, err := runtime.ReadKVFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	const fix = "(a cache: delete it, or run logline ledger reindex, and the next start rebuilds it from the ledger)"
	if err != nil {
		c.problem(path, "%v %s", err, fix)
		return
	}
	if f.LedgerNext > c.recs.n {
		c.note(path, "holds the kv records below seq %d, past the %d records checked", f.LedgerNext, c.recs.n)
		return
	}
	if t, k, why := kvDiff(f.Tenants, c.recs.kv); why != "" {
		if c.live {
			c.note(path, "key %q of tenant %q %s, as a running server may leave it", k, t, why)
			return
		}
		c.problem(path, "key %q of tenant %q %s %s", k, t, why, fix)
		return
	}
	for _, m := range f.Tenants {
		c.rep.KVKeys += len(m)
	}
}

// kvDiff names the first key (in tenant and key order) whose value in
// file differs from ledger's, comparing values as JSON.
func kvDiff(file, ledger map[string]map[string]string) (tenant, key, why string) {
	for _, t := range unionKeys(file, ledger) {
		fm, lm := file[t], ledger[t]
		for _, k := range unionKeys(fm, lm) {
			fv, fok := fm[k]
			lv, lok := lm[k]
			switch {
			case !lok:
				return t, k, "is set in the file, not by the ledger's kv records"
			case !fok:
				return t, k, "is missing from the file (the ledger's kv records set it)"
			case !sameJSON(fv, lv):
				return t, k, fmt.Sprintf("is %s in the file, %s by the ledger's kv records", clipJSON(fv), clipJSON(lv))
			}
		}
	}
	return "", "", ""
}

// unionKeys returns the keys of a and b, sorted, each once.
func unionKeys[V any](a, b map[string]V) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return a == b
	}
	return reflect.DeepEqual(x, y)
}

func clipJSON(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}

// bundleKey checks the standard bundle's key pair: each file exactly as
// written, and the public half that of the private key.
func (c *stateCheck) bundleKey() {
	dir := filepath.Join(c.cfg.Data, "bundle")
	keyPath, pubPath := filepath.Join(dir, "local.key"), filepath.Join(dir, "local.key.pub")
	priv, err := os.ReadFile(keyPath)
	pub, perr := os.ReadFile(pubPath)
	switch {
	case errors.Is(err, fs.ErrNotExist) && errors.Is(perr, fs.ErrNotExist):
		return // no server has run with the standard bundle
	case errors.Is(err, fs.ErrNotExist):
		c.note(keyPath, "missing: the next start with the standard bundle makes a new key pair")
		return
	case err != nil:
		c.problem(keyPath, "%v", err)
		return
	}
	b, _ := pem.Decode(priv)
	if b == nil || b.Type != "PRIVATE KEY" || !bytes.Equal(pem.EncodeToMemory(b), priv) {
		c.problem(keyPath, "not a PEM \"PRIVATE KEY\" as written")
		return
	}
	key, err := bundle.ParsePrivateKey(priv)
	if err != nil {
		c.problem(keyPath, "%v", err)
		return
	}
	if der, _ := x509.MarshalPKCS8PrivateKey(key); !bytes.Equal(der, b.Bytes) {
		c.problem(keyPath, "not the PKCS #8 encoding of an Ed25519 key")
		return
	}
	if perr != nil {
		c.problem(pubPath, "%v", perr)
		return
	}
	der, _ := x509.MarshalPKIXPublicKey(key.Public().(ed25519.PublicKey))
	if !bytes.Equal(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})) {
		c.problem(pubPath, "is not the public half of bundle/local.key (one of the two is damaged)")
		return
	}
	c.rep.BundleKey = true
}

// operator checks the bootstrap operator's credentials, if still there:
// the file as written, naming the operator account with its secret.
func (c *stateCheck) operator(id *identity.StateReport) {
	path := filepath.Join(c.cfg.Data, "identity", operatorFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return // deleted, as the note in it says
	}
	if err != nil {
		c.problem(path, "%v", err)
		return
	}
	var op map[string]string
	if err := json.Unmarshal(data, &op); err != nil {
		c.problem(path, "not JSON: %v", err)
		return
	}
	if !bytes.Equal(data, operatorCredentials(op["client_id"], op["client_secret"])) {
		c.problem(path, "not as the server writes it")
		return
	}
	acct, ok := id.Account(op["client_id"])
	switch {
	case !ok && c.live:
		c.note(path, "names account %s, not checked yet", op["client_id"])
	case !ok:
		c.problem(path, "names account %s, which is not an intact service account", op["client_id"])
	case acct.Tenant != OperatorTenant || acct.Role != operatorRole:
		c.problem(path, "names account %s, of tenant %s and role %s, not the bootstrap operator", acct.ID, acct.Tenant, acct.Role)
	case !id.SecretMatches(acct.ID, op["client_secret"]):
		c.problem(path, "client_secret is not the secret of account %s", acct.ID)
	default:
		c.rep.Operator = true
		if !acct.Revoked.IsZero() {
			c.note(path, "account %s is revoked: delete this file", acct.ID)
		}
	}
}

// redactKey checks the redaction key against its record.
func (c *stateCheck) redactKey() {
	path := filepath.Join(c.cfg.Data, "identity", redactKeyFile)
	key, err := os.ReadFile(path)
	recorded := len(c.recs.redact) > 0
	switch {
	case errors.Is(err, fs.ErrNotExist) && recorded:
		c.problem(path, "missing; the ledger records one (restore it from a backup: a new key would make redacted values unlinkable with earlier ones)")
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		c.problem(path, "%v", err)
	case len(key) != 32:
		c.problem(path, "%d bytes, want 32 (the server refuses to start)", len(key))
	case !recorded:
		c.note(path, "no redact.key.create record in the ledger (a key made by an earlier version, under --dev, or after the last checkpoint): not checked")
	case redactKeyFingerprint(key) != c.recs.redact[len(c.recs.redact)-1]:
		c.problem(path, "does not match the fingerprint of its redact.key.create record")
	default:
		c.rep.RedactKey = true
	}
}

// tenants checks the watcher's sealed state and compares each tenant file
// with what the ledger last recorded for its tenant. Tenant files are the
// operator's input: one that differs was changed since it was applied (a
// flipped bit included); the next start records it as a config record, or
// refuses it. That is a note, not damage.
func (c *stateCheck) tenants() {
	dir := filepath.Join(c.cfg.Data, "cfg", "tenants")
	var applied map[string]string
	statePath := filepath.Join(dir, tenant.AppliedFile)
	switch data, err := os.ReadFile(statePath); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		c.problem(statePath, "%v", err)
	default:
		m, sealed, err := tenant.ReadApplied(data)
		switch {
		case err != nil:
			c.problem(statePath, "%v (the next start applies every tenant file again)", err)
		case !sealed:
			c.note(statePath, "written by an earlier version without a seal: not checked (sealed at the next change)")
			applied = m
		default:
			c.rep.Applied = true
			applied = m
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.problem(dir, "%v", err)
		return
	}
	var base map[string]any
	var baseErr error
	seen := map[string]bool{}
	for _, e := range ents {
		name, ok := tenant.NameOf(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if !tenant.ValidName(name) {
			c.note(path, "ignored by the server: not a tenant name")
			continue
		}
		if seen[name] {
			c.note(path, "ignored by the server: the tenant's .lll file is in force")
			continue
		}
		seen[name] = true
		data, err := os.ReadFile(path)
		if err != nil {
			c.problem(path, "%v", err)
			continue
		}
		if base == nil && baseErr == nil {
			base, baseErr = c.basePolicies()
		}
		sum := sha256.Sum256(data)
		h, ok := applied[name]
		changed := applied != nil && (!ok || h != hex.EncodeToString(sum[:]))
		if baseErr != nil {
			if changed {
				c.note(path, "changed since it was last applied: the next start applies it as a signed config record")
			} else {
				c.note(path, "not compared with the ledger: %v", baseErr)
			}
			continue
		}
		var f *tenant.File
		if strings.HasSuffix(e.Name(), ".lll") {
			f, err = tenant.ParseLLL(e.Name(), data, base)
		} else {
			f, err = tenant.Parse("", data, base)
		}
		var entry ledger.Entry
		if err == nil {
			entry, err = tenant.ConfigEntry(name, f.Doc)
		}
		switch {
		case err != nil:
			c.note(path, "changed since it was last applied, and the server refuses it (%v): the configuration the ledger last recorded stays in force", err)
		case changed:
			c.note(path, "changed since it was last applied: the next start applies it as a signed config record")
		case !bytes.Equal(entry.Body, c.recs.configs[name]) && applied == nil:
			c.note(path, "differs from the configuration the ledger last recorded for %s: the next start applies it as a signed config record", name)
		case !bytes.Equal(entry.Body, c.recs.configs[name]):
			c.note(path, "as last applied, but the configuration the ledger last recorded for %s differs (the bundle's policies changed since?); the server keeps the ledger's", name)
		default:
			c.rep.TenantFiles++
		}
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for t := range applied {
			if !seen[t] && !yield(t) {
				return
			}
		}
	}) {
		c.note(filepath.Join(dir, name+".yaml"), "removed since it was last applied: the next start returns %s to the defaults (a config record)", name)
	}
}

// basePolicies returns the bundle's policies, loading the bundle without
// creating its key.
func (c *stateCheck) basePolicies() (map[string]any, error) {
	if c.cfg.Bundle.Path == "" && !c.rep.BundleKey {
		return nil, errors.New("no intact standard bundle key")
	}
	b, err := c.load(c.cfg)
	if err != nil {
		return nil, err
	}
	return tenant.BasePolicies(b), nil
}
