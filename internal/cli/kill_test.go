package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/history"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/span"
)

// TestKillServeDuringIngest kills `logline serve` with SIGKILL while clients
// are ingesting over HTTP, several times, restarting it each time. After
// each restart every span a client was told was accepted is stored byte
// for byte with the receipt the client got; at the end the ledger verifies.
func TestKillServeDuringIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a server process several times")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	rng := rand.New(rand.NewPCG(11, 12))
	type acked struct {
		body    []byte
		receipt ledgerfmt.Receipt
	}
	var mu sync.Mutex
	accepted := map[string]acked{}
	// hist records what every client was told; it is checked against the
	// whole ledger at the end.
	hist := &history.History{}

	start := func() (*exec.Cmd, string) {
		addrFile := filepath.Join(dir, "addr")
		os.Remove(addrFile)
		cmd := exec.Command(exe, "serve", "--dev", "--data", data, "--listen", "127.0.0.1:0", "--addr-file", addrFile, "--log-level", "warn")
		cmd.Env = append(os.Environ(), "LOGLINE_TEST_AS_LOGLINE=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
				return cmd, "http://" + strings.TrimSpace(string(b))
			}
			time.Sleep(20 * time.Millisecond)
		}
		cmd.Process.Kill()
		t.Fatalf("server did not start: %s", stderr.String())
		return nil, ""
	}

	const rounds = 6
	for round := range rounds {
		cmd, url := start()
		var stop atomic.Bool
		var wg sync.WaitGroup
		var n atomic.Int64
		for c := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := &http.Client{Timeout: 5 * time.Second}
				for i := 0; !stop.Load(); i++ {
					var body bytes.Buffer
					var bodies [][]byte
					var ops []*history.Op
					for k := range 10 {
						id := fmt.Sprintf("r%d_c%d_%d_%d", round, c, i, k)
						line := fmt.Sprintf(`{"id":"%s","tenant":"t_kill","who":"c%d","did":"sale.post","this":"order:%d","when":"2025-10-05T22:18:07Z","status":"confirmed","data":{"k":%d}}`,
							id, c, i%50, k)
						canon, err := span.Canonicalize([]byte(line))
						if err != nil {
							t.Error(err)
							return
						}
						bodies = append(bodies, canon)
						ops = append(ops, hist.Invoke(fmt.Sprintf("r%d_c%d", round, c), "t_kill", id, canon))
						body.WriteString(line + "\n")
					}
					resp, err := client.Post(url+"/ingest", "application/x-ndjson", &body)
					if err != nil {
						for _, op := range ops {
							op.Info(err.Error()) // the server is gone
						}
						return
					}
					var out struct{ Results []ingestResult }
					err = json.NewDecoder(resp.Body).Decode(&out)
					resp.Body.Close()
					if !recordOutcomes(t, ops, resp.StatusCode, err, out.Results) {
						return
					}
					mu.Lock()
					for k, r := range out.Results {
						if r.Status == "accepted" || r.Status == "duplicate" {
							accepted[r.ID] = acked{body: bodies[k], receipt: *r.Receipt}
						}
					}
					mu.Unlock()
					n.Add(10)
				}
			}()
		}
		wait := time.Duration(100+rng.IntN(500)) * time.Millisecond
		time.Sleep(wait)
		for n.Load() == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		stop.Store(true)
		wg.Wait()
		t.Logf("round %d: killed after %s; %d spans acknowledged in all", round, wait, len(accepted))

		// Restart and check everything acknowledged so far.
		cmd, url = start()
		client := &http.Client{Timeout: 10 * time.Second}
		for id, a := range accepted {
			resp, err := client.Get(url + "/spans/t_kill/" + id)
			if err != nil {
				t.Fatal(err)
			}
			var rec struct {
				Seq  uint64
				Span json.RawMessage
			}
			json.NewDecoder(resp.Body).Decode(&rec)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("acknowledged span %s lost after SIGKILL (HTTP %d)", id, resp.StatusCode)
			}
			if !bytes.Equal(rec.Span, a.body) || rec.Seq != a.receipt.Seq {
				t.Fatalf("span %s changed: seq %d (receipt says %d) %s", id, rec.Seq, a.receipt.Seq, rec.Span)
			}
		}
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("graceful stop: %v", err)
		}
	}

	rep, err := ledger.Verify(data, ledger.VerifyConfig{CheckBody: canonicalBody})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem != nil {
		t.Fatalf("ledger verify: %v", rep.Problem)
	}
	// Every receipt the clients got verifies against the stored spans.
	b, err := os.ReadFile(filepath.Join(data, "ledger", "key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := ledgerfmt.NewVerifier(string(b))
	if err != nil {
		t.Fatal(err)
	}
	for id, a := range accepted {
		if err := v.VerifyReceipt(&a.receipt, ledgerfmt.KindSpan, a.body); err != nil {
			t.Fatalf("receipt of %s: %v", id, err)
		}
	}
	if rep.Records < uint64(len(accepted)) {
		t.Fatalf("%d records for %d acknowledged spans", rep.Records, len(accepted))
	}
	t.Logf("%d records verified, %d acknowledged spans checked", rep.Records, len(accepted))

	recs, err := history.ReadLedger(data)
	if err != nil {
		t.Fatal(err)
	}
	check := history.Check(hist, recs)
	t.Logf("history: %d rounds, %s", rounds, check)
	if !check.Clean() {
		t.Fatal("the ledger is not what the clients were told")
	}
}

// ingestResult is one line's result in an ingest answer.
type ingestResult struct {
	ID      string
	Status  string
	Receipt *ledgerfmt.Receipt
}

// recordOutcomes completes the operations of one ingest request, one a
// line, from its answer (HTTP status, decoding error, results), and says
// whether the answer was a complete 200.
func recordOutcomes(t *testing.T, ops []*history.Op, status int, err error, results []ingestResult) bool {
	t.Helper()
	all := func(complete func(*history.Op, string), reason string) bool {
		for _, op := range ops {
			complete(op, reason)
		}
		return false
	}
	switch {
	case err != nil: // cut short by the kill
		return all((*history.Op).Info, fmt.Sprintf("HTTP %d, answer unreadable: %v", status, err))
	case status >= 400 && status < 500 && results == nil: // the whole request refused
		return all((*history.Op).Fail, fmt.Sprintf("HTTP %d", status))
	case status != 200 && (status < 400 || status >= 500):
		return all((*history.Op).Info, fmt.Sprintf("HTTP %d", status))
	case len(results) != len(ops):
		t.Errorf("HTTP %d with %d results for %d lines", status, len(results), len(ops))
		return all((*history.Op).Info, "malformed answer")
	}
	for k, r := range results {
		switch {
		case (r.Status == "accepted" || r.Status == "duplicate") && r.Receipt != nil:
			ops[k].Ok(*r.Receipt)
		case r.Status == "rejected":
			ops[k].Fail("rejected")
		default:
			t.Errorf("line %d: status %q (receipt %v)", k+1, r.Status, r.Receipt != nil)
			ops[k].Info("malformed result")
		}
	}
	return status == 200
}
