package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
)

// openLedger opens a ledger in dir, closed when the test ends.
func openLedger(t *testing.T, dir string) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(dir, ledger.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// A router's first route writes a key its later routes read back
// (read-your-writes); a thing seen before is recognised from an earlier
// record's write.
const kvRouters = `router firsts {
  uses "kv.get"
  uses "kv.set"
  uses "ws.send"
  route to kv.set("last", id)
  route when kv.get("last") == id to ws.send("ryw", {id: id})
  route when len(kv.get(this)) == 0 to ws.send("first", {this: this})
  route to kv.set(this, id)
}`

func kvTenant() tenants {
	return tenants{"acme": endpointTenant("http://127.0.0.1:1/", "kv.get", "kv.set", "ws.send")}
}

func thingSpan(seq uint64, this string) ledger.Record {
	return spanRecord(seq, fmt.Sprintf(`{"id":"s_%d","tenant":"acme","who":"till","did":"sale.post","this":%q,"when":"2025-10-05T09:00:00Z","status":"confirmed"}`, seq, this))
}

// drain returns the messages waiting on sub.
func drain(sub *Subscription) []string {
	var out []string
	for {
		select {
		case m := <-sub.C:
			out = append(out, string(m))
		default:
			return out
		}
	}
}

// kvRecords returns the bodies of the ledger's kv records.
func kvRecords(t *testing.T, l *ledger.Ledger) []KVRecord {
	t.Helper()
	var out []KVRecord
	if err := scanKV(l, 0, func(r KVRecord) { out = append(out, r) }); err != nil {
		t.Fatal(err)
	}
	return out
}

func get(t *testing.T, rt *Runtime, key string) any {
	t.Helper()
	v, err := rt.Host("acme").Call(context.Background(), "kv.get", []ir.Value{ir.StringValue(key)})
	if err != nil {
		t.Fatal(err)
	}
	return v.Interface()
}

func TestKVReadYourWritesPersistsAndRebuilds(t *testing.T) {
	dir, ldir := t.TempDir(), t.TempDir()
	l := openLedger(t, ldir)
	mod := func(c *Config) { c.Ledger = l }
	rt := open(t, dir, kvRouters, kvTenant(), nil, mod)
	ryw, first := rt.Subscribe("acme", "ryw"), rt.Subscribe("acme", "first")
	for _, r := range []ledger.Record{thingSpan(1, "order:1"), thingSpan(2, "order:1"), thingSpan(3, "order:2")} {
		if err := rt.Record(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := drain(ryw); len(got) != 3 {
		t.Fatalf("read-your-writes: %d messages %v, want 3", len(got), got)
	}
	if got := drain(first); !slices.Equal(got, []string{`{"this":"order:1"}`, `{"this":"order:2"}`}) {
		t.Fatalf("first sightings %v", got)
	}
	if err := rt.Sync(4); err != nil {
		t.Fatal(err)
	}
	recs := kvRecords(t, l)
	if len(recs) != 6 || recs[0].Key != "last" || string(recs[0].Value) != `"s_1"` || recs[0].Cause != 1 || recs[5].Key != "order:2" || recs[5].Router != "firsts" {
		t.Fatalf("kv records %+v", recs)
	}
	rt.Close()

	// Reopened: the store holds what the records wrote; kv.json gone, it
	// is rebuilt from the ledger alone, the same.
	for _, drop := range []bool{false, true} {
		if drop {
			if err := os.Remove(filepath.Join(dir, "kv.json")); err != nil {
				t.Fatal(err)
			}
		}
		rt = open(t, dir, kvRouters, kvTenant(), nil, mod)
		if a, b, c := get(t, rt, "last"), get(t, rt, "order:1"), get(t, rt, "order:2"); a != "s_3" || b != "s_2" || c != "s_3" {
			t.Fatalf("drop kv.json %v: last=%v order:1=%v order:2=%v", drop, a, b, c)
		}
		if get(t, rt, "order:3") != nil {
			t.Fatal("an unset key is not null")
		}
		rt.Close()
	}
	rt = open(t, dir, kvRouters, kvTenant(), nil, mod)
	defer rt.Close()
	first = rt.Subscribe("acme", "first")
	if err := rt.Record(thingSpan(4, "order:1"), nil); err != nil {
		t.Fatal(err)
	}
	if got := drain(first); len(got) != 0 {
		t.Fatalf("order:1 seen again as new after a reopen: %v", got)
	}
}

// A crash before the cycle's Sync: the writes of the routed records are in
// the outbox only, and the last record's were torn from its mark. At open
// the writes of the records routed whole are recorded in the ledger, the
// torn record is routed again from the state before it, and no write is
// recorded twice.
func TestKVSurvivesACrashBeforeSync(t *testing.T) {
	dir, ldir := t.TempDir(), t.TempDir()
	l := openLedger(t, ldir)
	mod := func(c *Config) { c.Ledger = l }
	rt := open(t, dir, kvRouters, kvTenant(), nil, mod)
	for seq := uint64(1); seq <= 3; seq++ {
		if err := rt.Record(thingSpan(seq, fmt.Sprintf("order:%d", seq%2)), nil); err != nil {
			t.Fatal(err)
		}
	}
	// No Sync: close the outbox as a crash after a flush would leave it,
	// and tear the last record's mark away.
	if err := rt.ob.close(); err != nil {
		t.Fatal(err)
	}
	ob := filepath.Join(dir, "outbox")
	b, err := os.ReadFile(ob)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, `"t":"r","seq":4`) {
		t.Fatalf("the outbox does not end with record 3's mark: %s", last)
	}
	if err := os.WriteFile(ob, []byte(strings.Join(lines[:len(lines)-1], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if n := len(kvRecords(t, l)); n != 0 {
		t.Fatalf("%d kv records before any Sync", n)
	}

	rt = open(t, dir, kvRouters, kvTenant(), nil, mod)
	defer rt.Close()
	if got := kvRecords(t, l); len(got) != 4 || got[3].Cause != 2 {
		t.Fatalf("at open the ledger holds %+v, want the 4 writes of records 1 and 2", got)
	}
	// The cycle offers the records again from its snapshot: 1 and 2 are
	// routed, 3 is routed again from the state before it.
	first := rt.Subscribe("acme", "first")
	for seq := uint64(1); seq <= 4; seq++ {
		if err := rt.Record(thingSpan(seq, fmt.Sprintf("order:%d", seq%2)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := drain(first); len(got) != 0 {
		t.Fatalf("records routed again saw an empty store: %v", got)
	}
	if err := rt.Sync(5); err != nil {
		t.Fatal(err)
	}
	recs := kvRecords(t, l)
	ids := map[string]bool{}
	for _, r := range recs {
		if ids[r.ID] {
			t.Fatalf("write %s recorded twice: %+v", r.ID, recs)
		}
		ids[r.ID] = true
	}
	if len(recs) != 8 {
		t.Fatalf("%d kv records, want 8 (two per record)", len(recs))
	}
	if a, b := get(t, rt, "order:1"), get(t, rt, "last"); a != "s_3" || b != "s_4" {
		t.Fatalf("order:1=%v last=%v", a, b)
	}
}

// Keys and values are bounded, and so is a tenant's store: a write past
// a bound fails its evaluation, and nothing of it is performed.
func TestKVBounds(t *testing.T) {
	src := `router big {
  uses "kv.set"
  uses "ws.send"
  route to kv.set(this, did)
  route to ws.send("done")
}`
	l := openLedger(t, t.TempDir())
	rt := open(t, t.TempDir(), src, kvTenant(), nil, func(c *Config) { c.Ledger = l; c.KVQuota = 300 })
	defer rt.Close()
	done := rt.Subscribe("acme", "done")
	rec := func(seq uint64, this, did string) {
		body := fmt.Sprintf(`{"id":"s_%d","tenant":"acme","who":"w","did":%q,"this":%q,"when":"2025-10-05T09:00:00Z","status":"confirmed"}`, seq, did, this)
		if err := rt.Record(spanRecord(seq, body), nil); err != nil {
			t.Fatal(err)
		}
	}
	rec(1, strings.Repeat("k", MaxKVKey+1), "x") // key too long
	rec(2, "a", strings.Repeat("v", 200))        // fits
	rec(3, "b", strings.Repeat("v", 200))        // past the quota
	rec(4, "a", "short")                         // replaces a: fits
	rec(5, "c", strings.Repeat("v", 200))        // fits again
	if got := len(drain(done)); got != 3 {
		t.Fatalf("%d evaluations performed, want 3 (records 2, 4, 5)", got)
	}
	if err := rt.Sync(6); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range kvRecords(t, l) {
		keys = append(keys, r.Key)
	}
	if !slices.Equal(keys, []string{"a", "a", "c"}) {
		t.Fatalf("recorded writes of keys %v", keys)
	}
}

// Webhook routers run before their spans are in the ledger: their kv.set
// fails with a message that says what to do instead.
func TestKVSetRefusedToWebhookRouters(t *testing.T) {
	l := openLedger(t, t.TempDir())
	rt := open(t, t.TempDir(), kvRouters, kvTenant(), nil, func(c *Config) { c.Ledger = l })
	defer rt.Close()
	h := &Host{rt: rt, tenant: "acme"}
	err := h.Stage(context.Background(), &eval.Action{Call: "kv.set", Args: []ir.Value{ir.StringValue("k"), ir.StringValue("v")}})
	if err == nil || !strings.Contains(err.Error(), "webhook routers") || !strings.Contains(err.Error(), "ledger.append") {
		t.Fatalf("Stage = %v", err)
	}
}

// A kv record's body is canonical JSON that names its bundle, cause,
// router and id.
func TestKVRecordBody(t *testing.T) {
	l := openLedger(t, t.TempDir())
	rt := open(t, t.TempDir(), kvRouters, kvTenant(), nil, func(c *Config) { c.Ledger = l; c.BundleHash = "sha256:b" })
	defer rt.Close()
	if err := rt.Record(thingSpan(7, "order:1"), []derive.Event(nil)); err != nil {
		t.Fatal(err)
	}
	if err := rt.Sync(8); err != nil {
		t.Fatal(err)
	}
	rd, err := l.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	rec, err := rd.Next()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"bundle":"sha256:b","cause":7,"id":%q,"key":"last","router":"firsts","tenant":"acme","value":"s_7"}`, msgID(7, 0))
	if rec.Kind != KindKV || string(rec.Body) != want {
		t.Fatalf("record %s %s, want kv %s", rec.Kind, rec.Body, want)
	}
	var r KVRecord
	if err := json.Unmarshal(rec.Body, &r); err != nil || r.Cause != 7 {
		t.Fatalf("%+v %v", r, err)
	}
}

// CheckDir finds a damaged outbox line and a changed signing key; a torn
// last line is only a note.
func TestCheckDir(t *testing.T) {
	dir := t.TempDir()
	rt := open(t, dir, kvRouters, kvTenant(), nil, func(c *Config) { c.Ledger = openLedger(t, t.TempDir()) })
	for seq := uint64(1); seq <= 3; seq++ {
		if err := rt.Record(thingSpan(seq, "order:1"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.Sync(4); err != nil {
		t.Fatal(err)
	}
	rt.Close()
	n, found := CheckDir(dir)
	if n < 7 || len(found) != 0 {
		t.Fatalf("clean: %d lines, %+v", n, found)
	}
	ob := filepath.Join(dir, "outbox")
	good, _ := os.ReadFile(ob)
	change := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	change("outbox", append(slices.Clone(good), `0000`...))
	if _, found := CheckDir(dir); len(found) != 1 || found[0].Damaged || !strings.Contains(found[0].Reason, "torn") {
		t.Fatalf("torn tail: %+v", found)
	}
	bad := slices.Clone(good)
	bad[20] ^= 1
	change("outbox", bad)
	if _, found := CheckDir(dir); len(found) != 1 || !found[0].Damaged || !strings.Contains(found[0].Reason, "line 1 of") {
		t.Fatalf("damaged line: %+v", found)
	}
	change("outbox", good)
	key, _ := os.ReadFile(filepath.Join(dir, "webhook.key"))
	change("webhook.key", append(key, '\n'))
	if _, found := CheckDir(dir); len(found) != 1 || !found[0].Damaged || !strings.Contains(found[0].Reason, "as the runtime writes it") {
		t.Fatalf("changed key: %+v", found)
	}
}
