package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/loglineos/loglineos/internal/atomicfile"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/span"
)

// The key-value store of routers (kv.get, kv.set) belongs to a tenant.
// Every kv.set is a ledger record of kind "kv" (KVRecord), so the store is
// a fold of the ledger: <data>/runtime/kv.json is a cache of that fold, and
// is rebuilt from the ledger when it is missing or damaged (reindex deletes
// it).
//
// Writes happen in ledger order. A router's kv.set is performed when its
// record is routed: at once in memory (a later record's routers read it),
// in the outbox as a "k" entry, and in the ledger at the cycle's next Sync,
// before the "r" mark that says the record is routed. Within the routing
// of one record, what a route writes is what a later route reads (the
// record's writes are staged before they are performed).
//
// After a crash, the records past the routed mark are routed again, from
// the state their routing first saw: their writes in the outbox are left
// out of the fold until routing makes them again. A record whose writes
// the ledger holds was routed whole (its Sync came after it), so the
// routed mark is raised past it.

// KindKV is the ledger record kind of a router's kv.set.
const KindKV = "kv"

// Bounds of the store.
const (
	MaxKVKey       = 256      // bytes of a key
	MaxKVValue     = 64 << 10 // bytes of a value's JSON
	DefaultKVQuota = 4 << 20  // bytes of keys and values per tenant
)

// KVRecord is the body of a kv record: key of tenant set to value (null:
// deleted) by the routing of the record at seq cause. Its members are in
// the order of their names, as a canonical body has them.
type KVRecord struct {
	Bundle string          `json:"bundle"` // the bundle hash
	Cause  uint64          `json:"cause"`  // the seq of the record whose routing wrote it
	ID     string          `json:"id"`     // the action's id, msg_…
	Key    string          `json:"key"`
	Router string          `json:"router"`
	Tenant string          `json:"tenant"`
	Value  json.RawMessage `json:"value"`
}

// Ledger is what the store needs of the ledger.
type Ledger interface {
	Append(ctx context.Context, entries []ledger.Entry) ([]ledger.Result, error)
	Next() uint64
	NewReader(from uint64) (*ledger.Reader, error)
}

// kvStore is the committed state of every tenant's store.
type kvStore struct {
	path   string
	quota  int
	bundle string
	l      Ledger

	mu      sync.Mutex
	spaces  map[string]*kvSpace
	pending []KVRecord // performed, not yet in the ledger, in order
	dirty   bool       // kv.json is behind
}

// kvSpace is one tenant's keys and their values' JSON.
type kvSpace struct {
	m    map[string]string
	size int // bytes of keys and values
	// dec caches the values kv.get decoded (a value is decoded from its
	// JSON once, not at every read).
	dec map[string]ir.Value
}

// KVFile is kv.json.
type KVFile struct {
	// Routed: the fold holds the writes of every record below it;
	// LedgerNext: and no kv record of the ledger from it on.
	Routed     uint64                       `json:"routed"`
	LedgerNext uint64                       `json:"ledger_next"`
	Tenants    map[string]map[string]string `json:"tenants"`
}

func (s *kvStore) space(tenant string) *kvSpace {
	sp := s.spaces[tenant]
	if sp == nil {
		sp = &kvSpace{m: map[string]string{}}
		s.spaces[tenant] = sp
	}
	return sp
}

// apply sets a key (an empty or "null" value deletes it). mu is held.
func (s *kvStore) apply(tenant, key, value string) {
	sp := s.space(tenant)
	delete(sp.dec, key)
	if old, ok := sp.m[key]; ok {
		sp.size -= len(key) + len(old)
		delete(sp.m, key)
	}
	if value != "" && value != "null" {
		sp.m[key] = value
		sp.size += len(key) + len(value)
	}
	s.dirty = true
}

// openKV rebuilds the store: kv.json, then the kv records of the ledger
// after it, then the writes the outbox holds that the ledger does not, of
// records below routed. It returns the seq below which every record is
// routed (routed, raised past the records whose writes the ledger holds).
func (rt *Runtime) openKV(routed uint64, outbox []*entry) (uint64, error) {
	s := &kvStore{path: filepath.Join(rt.cfg.Dir, KVFileName), quota: rt.cfg.KVQuota, bundle: rt.cfg.BundleHash,
		l: rt.cfg.Ledger, spaces: map[string]*kvSpace{}}
	rt.kv = s
	if !slices.Contains(rt.cfg.BundleCaps, "kv.get") && !slices.Contains(rt.cfg.BundleCaps, "kv.set") {
		s.l = nil // the bundle has no use for a store: the ledger is not read
	}
	if s.l == nil {
		return routed, nil
	}
	var f KVFile
	if ff, err := ReadKVFile(s.path); err == nil {
		f = *ff
	} else if !errors.Is(err, os.ErrNotExist) {
		rt.log.Warn("runtime: kv.json is damaged; rebuilding the key-value store from the ledger", "err", err)
	}
	for t, m := range f.Tenants {
		for k, v := range m {
			s.apply(t, k, v)
		}
	}
	// The ledger's kv records from where kv.json stops. Each was appended
	// by a Sync after its record was routed: the records up to the last of
	// them are routed.
	inLedger := map[string]bool{}
	var recs []KVRecord
	if err := scanKV(s.l, f.LedgerNext, func(r KVRecord) {
		recs = append(recs, r)
		inLedger[r.ID] = true
		routed = max(routed, r.Cause+1)
	}); err != nil {
		return 0, err
	}
	for _, r := range recs {
		if r.Cause >= f.Routed {
			s.apply(r.Tenant, r.Key, string(r.Value))
		}
	}
	// The outbox's writes of routed records the ledger does not hold yet
	// (a crash before the Sync that would have appended them).
	for _, e := range outbox {
		if e.T != "k" || e.Seq < f.Routed || e.Seq >= routed || inLedger[e.ID] {
			continue
		}
		inLedger[e.ID] = true
		s.apply(e.Tenant, e.Key, e.Body)
		s.pending = append(s.pending, KVRecord{Bundle: s.bundle, Cause: e.Seq, ID: e.ID, Key: e.Key, Router: e.Router, Tenant: e.Tenant, Value: json.RawMessage(orNull(e.Body))})
	}
	s.dirty = true
	return routed, nil
}

// KVFileName is the store's cache in the runtime's directory.
const KVFileName = "kv.json"

// ReadKVFile reads kv.json.
func ReadKVFile(path string) (*KVFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f KVFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	return &f, nil
}

func orNull(s string) string {
	if s == "" {
		return "null"
	}
	return s
}

// scanKV calls fn with every kv record of the ledger from seq from on.
func scanKV(l Ledger, from uint64, fn func(KVRecord)) error {
	if from >= l.Next() {
		return nil
	}
	rd, err := l.NewReader(from)
	if err != nil {
		return fmt.Errorf("runtime: kv: %w", err)
	}
	defer rd.Close()
	rd.SkipLeafCheck()
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("runtime: kv: %w", err)
		}
		if rec.Kind != KindKV {
			continue
		}
		var r KVRecord
		if err := json.Unmarshal(rec.Body, &r); err != nil {
			return fmt.Errorf("runtime: kv record %d does not decode: %w", rec.Seq, err)
		}
		fn(r)
	}
}

// pendingWrites reports whether writes wait for the ledger.
func (s *kvStore) pendingWrites() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending) > 0
}

// syncKV appends the writes performed since the last Sync to the ledger.
// The outbox holds them (synced) already.
func (s *kvStore) syncKV(ctx context.Context) error {
	s.mu.Lock()
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	es := make([]ledger.Entry, 0, len(pending))
	for i := range pending {
		r := &pending[i]
		raw, err := json.Marshal(r)
		if err != nil {
			return err
		}
		body, err := span.Canonicalize(raw)
		if err != nil {
			return fmt.Errorf("runtime: kv record: %w", err)
		}
		es = append(es, ledger.Entry{Kind: KindKV, Tenant: r.Tenant, Body: body})
	}
	if _, err := s.l.Append(ctx, es); err != nil {
		s.mu.Lock()
		s.pending = append(pending, s.pending...)
		s.mu.Unlock()
		return fmt.Errorf("runtime: appending kv records: %w", err)
	}
	return nil
}

// save writes kv.json, if it is behind, for the records below routed.
func (s *kvStore) save(routed uint64) error {
	if s.l == nil {
		return nil
	}
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	f := KVFile{Routed: routed, LedgerNext: s.l.Next(), Tenants: map[string]map[string]string{}}
	for t, sp := range s.spaces {
		if len(sp.m) > 0 {
			f.Tenants[t] = sp.m
		}
	}
	b, err := json.Marshal(f)
	s.dirty = false
	s.mu.Unlock()
	if err == nil {
		err = atomicfile.Write(s.path, b, 0o600)
	}
	if err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
	}
	return err
}

// get returns the value of tenant's key (null when unset).
func (s *kvStore) get(tenant, key string) (ir.Value, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.spaces[tenant]
	if sp == nil {
		return ir.NullValue(), nil
	}
	if v, ok := sp.dec[key]; ok {
		return v, nil
	}
	js, ok := sp.m[key]
	if !ok {
		return ir.NullValue(), nil
	}
	v, err := decodeValue([]byte(js))
	if err != nil {
		return v, err
	}
	if sp.dec == nil {
		sp.dec = map[string]ir.Value{}
	}
	sp.dec[key] = v
	return v, nil
}

// kvWrite is a write staged or performed: a key's new value's JSON
// ("null" deletes it).
type kvWrite struct {
	tenant, key, value string
}

// kvTxn holds the writes of the evaluations of one record routed so far,
// performed once its every router has run.
type kvTxn struct{ w []kvWrite }

// kvArgs checks a kv.set's arguments and returns its key and value JSON.
func kvArgs(a *eval.Action) (string, string, error) {
	if len(a.Args) != 2 || a.Args[0].Kind() != ir.String {
		return "", "", errors.New("kv.set takes a key (a string) and a value")
	}
	key := a.Args[0].Str()
	if key == "" || len(key) > MaxKVKey {
		return "", "", fmt.Errorf("a key has 1 to %d bytes, not %d", MaxKVKey, len(key))
	}
	v, err := json.Marshal(a.Args[1].Interface())
	if err != nil {
		return "", "", err
	}
	if len(v) > MaxKVValue {
		return "", "", fmt.Errorf("the value of %q is %d bytes of JSON; at most %d", key, len(v), MaxKVValue)
	}
	return key, string(v), nil
}

// lookup returns the value of key in the writes ws, newest first.
func lookup(ws []kvWrite, tenant, key string) (string, bool) {
	for i := len(ws) - 1; i >= 0; i-- {
		if ws[i].tenant == tenant && ws[i].key == key {
			return ws[i].value, true
		}
	}
	return "", false
}

// kvGet reads key of the host's tenant: the evaluation's own writes, the
// record's, then the store.
func (h *Host) kvGet(args []ir.Value) (ir.Value, error) {
	if len(args) != 1 || args[0].Kind() != ir.String {
		return ir.Value{}, errors.New("kv.get takes one string")
	}
	if h.rt.kv == nil || h.rt.kv.l == nil {
		return ir.Value{}, errors.New("kv is not available: this runtime has no ledger to record it in")
	}
	key := args[0].Str()
	v, ok := lookup(h.staged, h.tenant, key)
	if !ok && h.txn != nil {
		v, ok = lookup(h.txn.w, h.tenant, key)
	}
	if !ok {
		return h.rt.kv.get(h.tenant, key)
	}
	if v == "null" {
		return ir.NullValue(), nil
	}
	return decodeValue([]byte(v))
}

// Stage stages a kv.set, so that the evaluation's later routes read it,
// within the tenant's quota.
func (h *Host) Stage(_ context.Context, a *eval.Action) error {
	if a.Call != "kv.set" || !h.rt.allowed(h.tenant, a.Call) {
		return nil // performed (or refused) by the runtime
	}
	if h.txn == nil {
		return errors.New("kv.set is not available to webhook routers: they run before their spans are in the ledger; write the span with ledger.append and set the key from a router on it")
	}
	if h.rt.kv == nil || h.rt.kv.l == nil {
		return errors.New("kv is not available: this runtime has no ledger to record it in")
	}
	key, v, err := kvArgs(a)
	if err != nil {
		return err
	}
	if size := h.projected(key, v); size > h.rt.kv.quota {
		return fmt.Errorf("the tenant's key-value store would hold %d bytes; its quota is %d (runtime.kv_quota)", size, h.rt.kv.quota)
	}
	h.staged = append(h.staged, kvWrite{tenant: h.tenant, key: key, value: v})
	return nil
}

// projected is the size of the tenant's store after the record's writes,
// the evaluation's and key set to v.
func (h *Host) projected(key, v string) int {
	s := h.rt.kv
	s.mu.Lock()
	defer s.mu.Unlock()
	size := 0
	sp := s.spaces[h.tenant]
	if sp != nil {
		size = sp.size
	}
	cur := map[string]string{}
	value := func(k string) string {
		if x, ok := cur[k]; ok {
			return x
		}
		if sp != nil {
			return sp.m[k]
		}
		return ""
	}
	set := func(k, x string) {
		if old := value(k); old != "" && old != "null" {
			size -= len(k) + len(old)
		}
		if x != "null" {
			size += len(k) + len(x)
		}
		cur[k] = x
	}
	if h.txn != nil {
		for _, w := range h.txn.w {
			if w.tenant == h.tenant {
				set(w.key, w.value)
			}
		}
	}
	for _, w := range h.staged {
		set(w.key, w.value)
	}
	set(key, v)
	return size
}

// setKV performs a kv.set of the routing of record seq.
func (rt *Runtime) setKV(id string, seq uint64, a *eval.Action, tenant string) string {
	s := rt.kv
	if s == nil || s.l == nil || seq == 0 {
		return OutcomeBadAction
	}
	key, v, err := kvArgs(a)
	if err != nil {
		return OutcomeBadAction
	}
	s.mu.Lock()
	s.pending = append(s.pending, KVRecord{Bundle: s.bundle, Cause: seq, ID: id, Key: key, Router: a.Router, Tenant: tenant, Value: json.RawMessage(v)})
	s.apply(tenant, key, v)
	s.mu.Unlock()
	if err := rt.ob.add(&entry{T: "k", ID: id, Seq: seq, Tenant: tenant, Router: a.Router, Call: a.Call, Key: key, Body: v}); err != nil {
		rt.log.Error("outbox write failed", "err", err)
		return OutcomeError
	}
	return OutcomeStored
}
