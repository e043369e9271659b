package cycle

import (
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/ledger"
)

// served returns everything the store serves: every tenant's stream, and
// every trajectory of the streams looked up through the trajectory index.
func served(t *testing.T, r *Runner) string {
	t.Helper()
	var b strings.Builder
	for _, tenant := range r.Tenants() {
		b.WriteString("tenant " + tenant + "\n")
		var ids []string
		if _, err := r.Events(tenant, 0, func(n uint64, ev []byte) bool {
			b.Write(ev)
			b.WriteByte('\n')
			if s := string(ev); strings.Contains(s, `"type":"trajectory_edge"`) {
				i := strings.Index(s, `"trajectory_id":"`) + len(`"trajectory_id":"`)
				ids = append(ids, s[i:i+26])
			}
			return true
		}); err != nil {
			b.WriteString("error: " + err.Error() + "\n")
		}
		slices.Sort(ids)
		for _, id := range slices.Compact(ids) {
			evs, err := r.Trajectory(tenant, id)
			if err != nil {
				b.WriteString("error: " + err.Error() + "\n")
			}
			b.WriteString("trajectory " + id + "\n")
			for _, ev := range evs {
				b.Write(ev)
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}

// reopen opens a runner on store, lets it catch up with the ledger and
// returns what it serves and why it rebuilt the store.
func reopen(t *testing.T, l *ledger.Ledger, store string) (string, string) {
	t.Helper()
	// No flush delay: nothing else is appended while it catches up.
	r, err := Open(l, Config{Dir: store, Default: derive.DefaultTenantConfig(), Fingerprint: "test", FlushDelay: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	catchUp(t, r, l)
	return served(t, r), r.Rebuilt()
}

// linkTree makes dst a copy of the store src: hard links, but for the file
// rel, which is copied (it is about to be damaged).
func linkTree(t *testing.T, src, dst, rel string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, r)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case r == rel:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
		return os.Link(p, target)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDerivedDamage flips one byte of a derived file at a time, in each kind
// of file at 64 offsets (16 under the race detector), and checks that every flip is reported by
// Verify or harmless: after reopening, the store serves exactly what an
// undamaged copy serves (the flip was found at open and the store rebuilt).
func TestDerivedDamage(t *testing.T) {
	dir := memDir(t)
	l := openBuilt(t, dir, 400)
	pristine := filepath.Join(dir, "pristine")
	deriveAll(t, l, pristine, 500)
	want, rebuilt := reopen(t, l, pristine)
	if rebuilt != "" {
		t.Fatalf("an undamaged store was rebuilt: %s", rebuilt)
	}
	if rep, err := Verify(l, pristine, derive.DefaultTenantConfig(), nil, "test", false, nil); err != nil || rep.Problem != nil || rep.Stale != "" {
		t.Fatalf("undamaged store: %+v %v", rep, err)
	}

	kinds := []struct {
		name string
		glob string
	}{{"t/*.ndjson", "t/*.ndjson"}, {"t/*.idx", "t/*.idx"}, {"j/*.idx", "j/*.idx"}, {"snapshot", "snapshot"}}
	rng := rand.New(rand.NewPCG(11, 12))
	flips := 64
	if raceEnabled {
		// Each flip reopens a store; the race detector makes that slow.
		flips = 16
	}
	for _, kind := range kinds {
		files, _ := filepath.Glob(filepath.Join(pristine, kind.glob))
		var sizes []int64
		var names []string
		for _, f := range files {
			if st, err := os.Stat(f); err == nil && st.Size() > 0 {
				rel, _ := filepath.Rel(pristine, f)
				names = append(names, rel)
				sizes = append(sizes, st.Size())
			}
		}
		if len(names) == 0 {
			t.Fatalf("no %s files", kind.name)
		}
		var reported, harmless, both, neither int
		for i := range flips {
			k := rng.IntN(len(names))
			off := rng.Int64N(sizes[k])
			mask := byte(1 << rng.IntN(8))
			copyDir := filepath.Join(dir, "damaged")
			os.RemoveAll(copyDir)
			linkTree(t, pristine, copyDir, names[k])
			flipByte(t, filepath.Join(copyDir, names[k]), off, mask)

			rep, err := Verify(l, copyDir, derive.DefaultTenantConfig(), nil, "test", false, nil)
			if err != nil {
				t.Fatalf("%s byte %d: Verify: %v", names[k], off, err)
			}
			got, why := reopen(t, l, copyDir)
			isReported, isHarmless := rep.Problem != nil, got == want
			switch {
			case isReported && isHarmless:
				both++
			case isReported:
				reported++
			case isHarmless:
				harmless++
			default:
				neither++
				t.Errorf("flip %d: %s byte %d ^ %#02x: not reported by Verify, and served differently after reopening (rebuilt: %q)", i, names[k], off, mask, why)
			}
			wantWhy := RebuildFiles
			if kind.name == "snapshot" {
				wantWhy = RebuildSnapshot
			}
			if why != wantWhy {
				t.Errorf("flip %d: %s byte %d ^ %#02x: rebuilt at open for %q, want %q", i, names[k], off, mask, why, wantWhy)
			}
			if i == 0 && rep.Problem != nil {
				t.Logf("%s: e.g. %v", kind.name, rep.Problem)
			}
		}
		t.Logf("%-10s %d flips in %d files: reported and harmless %d, reported only %d, harmless only %d, neither %d",
			kind.name, flips, len(names), both, reported, harmless, neither)
	}
	if rep, err := Verify(l, pristine, derive.DefaultTenantConfig(), nil, "test", false, nil); err != nil || rep.Problem != nil {
		t.Fatalf("the undamaged store changed: %+v %v", rep, err)
	}
}

// memDir returns a temporary directory in memory (/dev/shm) where there is
// one, else on disk: the damage test creates and removes some 50,000 files
// and syncs hundreds of times, which disks with online discard make slow.
func memDir(t *testing.T) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "logline-cycle-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

func flipByte(t *testing.T, path string, off int64, mask byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	b[0] ^= mask
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}
