package snapshot

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/server"
	"github.com/loglineos/loglineos/internal/server/servertest"
)

// startServer starts a server on a fresh data directory, served on
// 127.0.0.1, without login (dev) or in production mode, and returns the
// directory, its base URL and a stop function (also run at cleanup).
func startServer(t *testing.T, dev bool) (data, base string, stop func()) {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Data = t.TempDir()
	cfg.Dev = dev
	cfg.Production, cfg.TrustedProxyTLS = !dev, !dev
	cfg.Derive.TickInterval = 0
	cfg.Ledger.CheckpointInterval = 20 * time.Millisecond
	cfg.Ledger.SegmentBytes = 64 << 10 // sealed segments to link
	ts := servertest.Start(t, cfg)
	return cfg.Data, ts.URL, ts.Stop
}

// issued is a receipt the server gave for a span.
type issued struct {
	Seq     uint64
	Receipt ledgerfmt.Receipt
}

// ingest posts spans as NDJSON and returns the receipts of the accepted.
func ingest(client *http.Client, base string, lines []string) ([]issued, error) {
	resp, err := client.Post(base+"/ingest", "application/x-ndjson", strings.NewReader(strings.Join(lines, "\n")+"\n"))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			Status  string             `json:"status"`
			Seq     *uint64            `json:"seq"`
			Receipt *ledgerfmt.Receipt `json:"receipt"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		return nil, fmt.Errorf("ingest: HTTP %d (%v)", resp.StatusCode, err)
	}
	var got []issued
	for _, r := range out.Results {
		if r.Status != "accepted" || r.Seq == nil || r.Receipt == nil {
			return nil, fmt.Errorf("ingest: a line %s", r.Status)
		}
		got = append(got, issued{Seq: *r.Seq, Receipt: *r.Receipt})
	}
	return got, nil
}

func spanLine(w, i, j int) string {
	return fmt.Sprintf(`{"id":"s_%d_%d_%d","tenant":"t_%d","who":"dan","did":"sale.post","this":"order:%d","when":"2025-10-05T22:18:07Z","status":"confirmed"}`, w, i, j, w%4, i)
}

// TestSnapshotUnderLoad takes a snapshot while 64 writers ingest, restores
// it, and checks the restored directory against the checkpoint, the
// receipts the server issued, and a reindex of the same segments.
func TestSnapshotUnderLoad(t *testing.T) {
	// Each writer goes on until two requests after the snapshot, at most
	// maxRequests.
	const writers, maxRequests, perRequest = 64, 60, 4
	data, base, stop := startServer(t, true)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: writers}, Timeout: 10 * time.Second}
	var (
		mu       sync.Mutex
		receipts []issued
		accepted atomic.Int64
		wg       sync.WaitGroup
		errs     = make(chan error, writers)
		halfway  = make(chan struct{})
		once     sync.Once
		snapDone = make(chan struct{})
	)
	deadline := time.Now().Add(20 * time.Second)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			after := 0
			for i := 0; i < maxRequests && time.Now().Before(deadline); i++ {
				select {
				case <-snapDone:
					if after++; after > 2 {
						return
					}
				default:
				}
				lines := make([]string, perRequest)
				for j := range lines {
					lines[j] = spanLine(w, i, j)
				}
				got, err := ingest(client, base, lines)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				receipts = append(receipts, got...)
				mu.Unlock()
				if accepted.Add(int64(len(got))) >= 1000 {
					once.Do(func() { close(halfway) })
				}
			}
		}()
	}
	snap := filepath.Join(t.TempDir(), "snap")
	var taken *Taken
	var takeErr error
	var atStart, atDone int64
	select {
	case <-halfway:
		atStart = accepted.Load()
		taken, takeErr = Take(context.Background(), TakeConfig{Data: data, Out: snap, Wait: 10 * time.Second})
		atDone = accepted.Load()
		close(snapDone)
	case err := <-errs:
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if takeErr != nil {
		t.Fatalf("Take: %v", takeErr)
	}
	stop()
	m := taken.Manifest
	if len(taken.Notes) > 0 {
		t.Errorf("Take notes: %q", taken.Notes)
	}
	if taken.Linked == 0 {
		t.Errorf("no sealed segment was linked")
	}
	if atStart >= atDone || atDone >= int64(len(receipts)) || m.Size == 0 {
		t.Fatalf("the snapshot (%d records) was not taken under load: %d, %d and %d spans accepted at its start, its end and the end of the load", m.Size, atStart, atDone, len(receipts))
	}
	t.Logf("snapshot of %d records; %d, %d and %d spans accepted at its start, its end and the end of the load", m.Size, atStart, atDone, len(receipts))

	// The original ledger had this root at the snapshot's size.
	orig, err := ledger.Open(data, ledger.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	origRoot, err := orig.RootAt(context.Background(), m.Size)
	orig.Close()
	if err != nil || origRoot != m.Root {
		t.Fatalf("the original ledger's root at %d is %s (%v), the snapshot's %s", m.Size, origRoot, err, m.Root)
	}

	cfg := server.DefaultConfig()
	cfg.Data = filepath.Join(t.TempDir(), "restored")
	r, err := Restore(context.Background(), RestoreConfig{From: snap, Server: cfg})
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if r.Manifest.Root != m.Root {
		t.Errorf("restored manifest root %s, want %s", r.Manifest.Root, m.Root)
	}
	rep, srep := verifyAll(t, cfg)
	if rep.Problem != nil {
		t.Fatalf("Verify of the restored directory: %+v", rep.Problem)
	}
	origCfg := cfg
	origCfg.Data = data
	_, origState := verifyAll(t, origCfg)
	if diff := cmp.Diff(origState.Notes, srep.Notes); !srep.OK() || diff != "" {
		t.Errorf("the restored state files: problems %+v; notes (-original +restored):\n%s", srep.Problems, diff)
	}
	if rep.Checkpoint == nil || rep.Checkpoint.Size != m.Size || rep.Checkpoint.Root != m.Root || rep.Records != m.Size {
		t.Fatalf("restored: %d records, checkpoint %+v; want %d records of root %s", rep.Records, rep.Checkpoint, m.Size, m.Root)
	}

	// Every receipt below the snapshot's size verifies against the
	// restored records and their proofs in the snapshot's tree.
	l, err := ledger.Open(cfg.Data, ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	v, err := ledgerfmt.NewVerifier(l.Signer().VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	bodies := recordBodies(t, l)
	checked := 0
	for _, is := range receipts {
		if is.Seq >= m.Size {
			continue
		}
		checked++
		if err := v.VerifyReceipt(&is.Receipt, ledgerfmt.KindSpan, bodies[is.Seq]); err != nil {
			t.Fatalf("receipt of seq %d against the restored record: %v", is.Seq, err)
		}
		p, err := l.Prove(context.Background(), is.Seq, m.Size)
		if err != nil {
			t.Fatalf("Prove(%d, %d): %v", is.Seq, m.Size, err)
		}
		if err := ledgerfmt.VerifyInclusion(p.Index, p.TreeSize, is.Receipt.Leaf, p.Path, m.Root); err != nil {
			t.Fatalf("receipt of seq %d: its leaf is not in the snapshot's tree: %v", is.Seq, err)
		}
	}
	if checked == 0 {
		t.Fatal("no receipt below the snapshot's size")
	}
	l.Close()

	// The derived streams are those a reindex of the same segments makes.
	again := filepath.Join(t.TempDir(), "again")
	if err := os.CopyFS(again, os.DirFS(cfg.Data)); err != nil {
		t.Fatal(err)
	}
	cfg2 := cfg
	cfg2.Data = again
	if _, _, err := server.Reindex(context.Background(), cfg2, slog.New(slog.DiscardHandler), true, nil); err != nil {
		t.Fatal(err)
	}
	want, got := readTree(t, filepath.Join(again, "derived")), readTree(t, filepath.Join(cfg.Data, "derived"))
	if len(want) == 0 {
		t.Fatal("nothing derived")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("derived/ of the restored directory differs from a reindex (-want +got):\n%s", diff)
	}
}

// verifyAll checks the ledger and the state files of cfg.Data, as logline
// ledger verify does.
func verifyAll(t *testing.T, cfg server.Config) (*ledger.VerifyReport, *server.StateReport) {
	t.Helper()
	recs := server.NewStateRecords(cfg.Data)
	rep, err := ledger.Verify(cfg.Data, ledger.VerifyConfig{CheckBody: func(kind string, body []byte) error {
		recs.Observe(kind, body)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return rep, server.VerifyState(cfg, recs, false)
}

// recordBodies returns the body of every record of l by seq.
func recordBodies(t *testing.T, l *ledger.Ledger) map[uint64][]byte {
	t.Helper()
	r, err := l.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := map[uint64][]byte{}
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		out[rec.Seq] = bytes.Clone(rec.Body)
	}
	return out
}

// readTree returns every file under dir by relative path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// smallSnapshot writes a ledger of a few spans and a snapshot of it.
func smallSnapshot(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	l, err := ledger.Open(data, ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		body := fmt.Sprintf(`{"did":"sale.post","id":"s_%d","status":"confirmed","tenant":"t","this":"order:1","when":"2025-10-05T22:18:07Z","who":"dan"}`, i)
		if _, err := l.Append(context.Background(), []ledger.Entry{{Tenant: "t", ID: fmt.Sprintf("s_%d", i), This: "order:1", Body: []byte(body)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(t.TempDir(), "snap")
	if _, err := Take(context.Background(), TakeConfig{Data: data, Out: snap}); err != nil {
		t.Fatalf("Take: %v", err)
	}
	return snap
}

func flipByte(t *testing.T, path string, at func(n int) int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[at(len(b))] ^= 0x01
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreRefuses: a snapshot that fails a check is refused with
// ErrBad, naming what is wrong, and the target is left as it was.
func TestRestoreRefuses(t *testing.T) {
	_, otherKey, err := ledgerfmt.GenerateKey(rand.Reader, "other.example/ledger")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		mutate  func(t *testing.T, snap, target string)
		key     string
		wantErr string
	}{
		{"checkpoint changed by one byte", func(t *testing.T, snap, _ string) {
			// A digit of the size line.
			flipByte(t, filepath.Join(snap, "ledger", "checkpoint"), func(n int) int {
				b, _ := os.ReadFile(filepath.Join(snap, "ledger", "checkpoint"))
				return bytes.IndexByte(b, '\n') + 1
			})
		}, "", "ledger/checkpoint does not verify"},
		{"checkpoint signature changed", func(t *testing.T, snap, _ string) {
			flipByte(t, filepath.Join(snap, "ledger", "checkpoint"), func(n int) int { return n - 5 })
		}, "", "ledger/checkpoint does not verify"},
		{"segment does not match its hash", func(t *testing.T, snap, _ string) {
			flipByte(t, filepath.Join(snap, "ledger", "segments", "000001.ndjson"), func(n int) int { return n / 2 })
		}, "", "ledger/segments/000001.ndjson: "},
		{"manifest hash changed", func(t *testing.T, snap, _ string) {
			p := filepath.Join(snap, ManifestName)
			b, _ := os.ReadFile(p)
			var m Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m.Files[len(m.Files)-1].SHA256 = strings.Repeat("0", 64)
			b, _ = json.Marshal(m)
			os.WriteFile(p, b, 0o600)
		}, "", "the manifest says"},
		{"target not empty", func(t *testing.T, _, target string) {
			os.MkdirAll(target, 0o700)
			os.WriteFile(filepath.Join(target, "keep"), []byte("mine"), 0o600)
		}, "", "is not empty"},
		{"another ledger's key", nil, otherKey, "not the key given"},
	}
	orig := smallSnapshot(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := filepath.Join(t.TempDir(), "snap")
			if err := os.CopyFS(snap, os.DirFS(orig)); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(t.TempDir(), "restored")
			if tt.mutate != nil {
				tt.mutate(t, snap, target)
			}
			before := readTreeIfAny(t, target)
			cfg := server.DefaultConfig()
			cfg.Data = target
			_, err := Restore(context.Background(), RestoreConfig{From: snap, Server: cfg, Key: tt.key})
			if !errors.Is(err, ErrBad) || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Restore: %v, want one line of ErrBad with %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(before, readTreeIfAny(t, target)); diff != "" {
				t.Errorf("the target changed (-before +after):\n%s", diff)
			}
		})
	}
	// The unchanged snapshot restores.
	cfg := server.DefaultConfig()
	cfg.Data = filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(context.Background(), RestoreConfig{From: orig, Server: cfg}); err != nil {
		t.Fatalf("Restore of the intact snapshot: %v", err)
	}
}

func readTreeIfAny(t *testing.T, dir string) map[string]string {
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	return readTree(t, dir)
}

// TestSnapshotCoversStateFiles: an account created just before the
// snapshot has its audit record in the snapshot's tree, so the restored
// state files verify against the restored ledger.
func TestSnapshotCoversStateFiles(t *testing.T) {
	data, base, _ := startServer(t, false)
	client := &http.Client{Timeout: 10 * time.Second}
	b, err := os.ReadFile(filepath.Join(data, "identity", "operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	var op map[string]string
	if err := json.Unmarshal(b, &op); err != nil {
		t.Fatal(err)
	}
	resp, err := client.PostForm(base+"/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {op["client_id"]}, "client_secret": {op["client_secret"]}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	req, _ := http.NewRequest("POST", base+"/admin/tenants/t_0/service-accounts", strings.NewReader(`{"role":"writer"}`))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	if resp, err = client.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("create account: HTTP %d", resp.StatusCode)
	}
	snap := filepath.Join(t.TempDir(), "snap")
	taken, err := Take(context.Background(), TakeConfig{Data: data, Out: snap, Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(taken.Notes) > 0 {
		t.Errorf("Take notes: %q", taken.Notes)
	}
	cfg := server.DefaultConfig()
	cfg.Data = filepath.Join(t.TempDir(), "restored")
	// Progress goes through the stages in order, the last done.
	var stages []string
	var last [2]int64
	progress := func(stage string, done, total int64) {
		if len(stages) == 0 || stages[len(stages)-1] != stage {
			stages = append(stages, stage)
		}
		last = [2]int64{done, total}
	}
	if _, err := Restore(context.Background(), RestoreConfig{From: snap, Server: cfg, Progress: progress}); err != nil {
		t.Fatal(err)
	}
	if len(stages) < 3 || stages[0] != "copy" || stages[len(stages)-2] != "derived" || stages[len(stages)-1] != "verify" || last[0] != last[1] {
		t.Errorf("progress: stages %q, last %d of %d; want copy ... derived, verify, done", stages, last[0], last[1])
	}
	_, srep := verifyAll(t, cfg)
	if !srep.OK() || srep.Identity == nil || srep.Identity.Accounts == 0 {
		t.Errorf("restored state: problems %+v, report %+v", srep.Problems, srep.Identity)
	}
}
