package cycle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/tenant"
)

// The determinism test builds a ledger of spans, ticks and config records,
// then replays it through the cycle in child processes that differ in batch
// size, GOMAXPROCS and time zone, and compares the SHA-256 of every tenant's
// derived stream.

const (
	replayEnv      = "LOGLINE_CYCLE_REPLAY"
	replayBatchEnv = "LOGLINE_CYCLE_REPLAY_BATCH"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(replayEnv); dir != "" {
		batch, _ := strconv.Atoi(os.Getenv(replayBatchEnv))
		sum, err := replay(dir, batch)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Println(sum)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// replay derives the ledger in dir into a new store and returns the hash of
// all streams.
func replay(dir string, batch int) (string, error) {
	l, err := ledger.Open(dir, ledger.Config{ReadOnly: true})
	if err != nil {
		return "", err
	}
	defer l.Close()
	store, err := os.MkdirTemp(dir, "derived-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(store)
	r, err := Open(l, Config{Dir: store, Default: derive.DefaultTenantConfig(), Fingerprint: "test", BatchRecords: batch})
	if err != nil {
		return "", err
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for r.Cursor() < l.Next() && r.Err() == nil {
		select {
		case <-r.Changed():
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		return "", err
	}
	h := sha256.New()
	var events uint64
	for _, tenant := range r.Tenants() {
		fmt.Fprintf(h, "tenant %s\n", tenant)
		if _, err := r.Events(tenant, 0, func(n uint64, ev []byte) bool {
			h.Write(ev)
			h.Write([]byte{'\n'})
			events++
			return true
		}); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%s %d events, GOMAXPROCS=%d, TZ=%s, batch=%d", hex.EncodeToString(h.Sum(nil)), events,
		runtime.GOMAXPROCS(0), time.Local.String(), batch), nil
}

// buildLedger appends n spans of several tenants, with a tick every 5000
// records and a config change halfway.
func buildLedger(t *testing.T, dir string, n int) {
	t.Helper()
	l, err := ledger.Open(dir, ledger.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	base := time.Date(2025, 10, 5, 0, 0, 0, 0, time.UTC)
	dids := []string{"sale.post", "sale.paid", "sale.ship", "sale.close"}
	const batch = 4096
	ctx := context.Background()
	for i := 0; i < n; {
		es := make([]ledger.Entry, 0, batch+2)
		for ; len(es) < batch && i < n; i++ {
			name := fmt.Sprintf("t_%d", i%5)
			when := base.Add(time.Duration(i) * time.Second)
			if rng.IntN(50) == 0 {
				when = when.Add(-time.Duration(rng.IntN(7200)) * time.Second)
			}
			this := fmt.Sprintf("order:%d", rng.IntN(n/6+1))
			if rng.IntN(40) == 0 {
				this = "heartbeat-" + strconv.Itoa(rng.IntN(3))
			}
			conf := ""
			if rng.IntN(3) > 0 {
				conf = fmt.Sprintf(`"confirmed_by":["pos://%d"],`, rng.IntN(5))
			}
			id := fmt.Sprintf("s_%d", i)
			body := fmt.Sprintf(`{%s"did":%q,"id":%q,"status":"confirmed","tenant":%q,"this":%q,"when":%q,"who":"u%d"}`,
				conf, dids[rng.IntN(4)], id, name, this, when.Format(time.RFC3339), rng.IntN(9))
			es = append(es, ledger.Entry{Tenant: name, ID: id, This: this, Body: []byte(body)})
			if i%5000 == 4999 {
				es = append(es, TickEntry(when.Add(time.Minute)))
			}
			if i == n/2 {
				doc := map[string]any{"policies": map[string]any{"trajectory_linker": map[string]any{"close_on_did": []any{"sale.close"}, "key_fields": []any{"this"}}}}
				cfg, err := tenant.ConfigEntry("t_1", tenant.Merge(map[string]any{}, doc))
				if err != nil {
					t.Fatal(err)
				}
				es = append(es, cfg)
			}
		}
		if _, err := l.Append(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReplayDeterminism(t *testing.T) {
	n := 1_000_000
	switch {
	case testing.Short():
		n = 20_000
	case raceEnabled:
		// The race detector makes a million-span replay take minutes; the
		// full size runs in .ci/run without it.
		n = 30_000
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := time.Now()
	buildLedger(t, dir, n)
	t.Logf("built a ledger of %d spans in %s", n, time.Since(start).Round(time.Millisecond))
	var sums []string
	for _, run := range []struct {
		batch, procs int
		tz           string
	}{{1, 1, "Asia/Kolkata"}, {4096, 2, "America/St_Johns"}, {977, 2, "UTC"}} {
		start := time.Now()
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), replayEnv+"="+dir, replayBatchEnv+"="+strconv.Itoa(run.batch),
			"GOMAXPROCS="+strconv.Itoa(run.procs), "TZ="+run.tz)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("replay: %v\n%s", err, out)
		}
		line := strings.TrimSpace(string(out))
		t.Logf("replay in %s: %s", time.Since(start).Round(time.Millisecond), line)
		sums = append(sums, strings.Fields(line)[0])
	}
	for _, s := range sums[1:] {
		if s != sums[0] {
			t.Fatalf("derived streams differ between replays: %v", sums)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ledger")); err != nil {
		t.Fatal(err)
	}
}

// TestEvictionReplay: a tenant over its max_open_trajectories evicts, and the
// derived streams are byte for byte the same whether derived in one go, one
// record a batch, or in stages with restarts from snapshots in between (the
// snapshot keeps the opening order eviction follows).
func TestEvictionReplay(t *testing.T) {
	dir := t.TempDir()
	l, err := ledger.Open(dir, ledger.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg, err := tenant.ConfigEntry("t_e", map[string]any{"policies": map[string]any{"trajectory_linker": map[string]any{"max_open_trajectories": 50}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), []ledger.Entry{cfg}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2025, 10, 5, 0, 0, 0, 0, time.UTC)
	staged := filepath.Join(dir, "staged")
	id := 0
	for stage := range 4 {
		var es []ledger.Entry
		for range 1500 {
			tenant := "t_e"
			if rng.IntN(10) == 0 {
				tenant = "t_other"
			}
			// Many spans share a second: opening order and id order differ.
			when := base.Add(time.Duration(id/7) * time.Second).Format(time.RFC3339)
			this := fmt.Sprintf("k:%d", rng.IntN(400))
			body := fmt.Sprintf(`{"did":"d","id":"s_%d","status":"confirmed","tenant":%q,"this":%q,"when":%q,"who":"u"}`, id, tenant, this, when)
			es = append(es, ledger.Entry{Tenant: tenant, ID: fmt.Sprintf("s_%d", id), This: this, Body: []byte(body)})
			id++
		}
		if _, err := l.Append(context.Background(), es); err != nil {
			t.Fatal(err)
		}
		// Derive what is there, then stop (a snapshot at the end).
		deriveWith(t, l, Config{Dir: staged, Default: derive.DefaultTenantConfig(), Fingerprint: "test", SnapshotEvery: 97, BatchRecords: 13 + stage})
	}
	want := deriveWith(t, l, Config{Dir: staged, Default: derive.DefaultTenantConfig(), Fingerprint: "test"})
	if n := strings.Count(want, `"reason":"evicted"`); n < 1000 {
		t.Fatalf("only %d evictions", n)
	}
	for _, line := range strings.Split(want, "\n") {
		if strings.Contains(line, `"reason":"evicted"`) && strings.Contains(line, `"tenant":"t_other"`) {
			t.Fatalf("a tenant under its bound evicted: %s", line)
		}
	}
	for _, batch := range []int{1, 4096} {
		got := deriveWith(t, l, Config{Dir: filepath.Join(dir, fmt.Sprintf("batch%d", batch)), Default: derive.DefaultTenantConfig(), Fingerprint: "test", BatchRecords: batch})
		if got != want {
			t.Fatalf("batch %d: the derived streams differ from the staged derivation", batch)
		}
	}
	t.Logf("%d evictions, identical in one go, one record a batch, and in 4 stages with restarts", strings.Count(want, `"reason":"evicted"`))
}
