package ledger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// The SIGKILL test runs this test binary again as a child that appends with
// many concurrent writers to a ledger on the real file system and prints
// every receipt it is given; the parent kills it at a random moment, reopens
// the ledger and checks everything the child was told.

const killChildEnv = "LOGLINE_LEDGER_KILL_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		os.Exit(killChild(dir))
	}
	os.Exit(m.Run())
}

type ackLine struct {
	ID      string            `json:"id"`
	Body    string            `json:"body"`
	Receipt ledgerfmt.Receipt `json:"receipt"`
}

func killChild(dir string) int {
	round, _ := strconv.Atoi(os.Getenv("LOGLINE_LEDGER_KILL_ROUND"))
	cfg := Config{SegmentBytes: 256 << 10, CheckpointEvery: 500, CheckpointInterval: 50 * time.Millisecond}
	if round%2 == 1 {
		// Odd lives write over padding (a server's default), even ones
		// append: each kind of life is killed, and each opens what the
		// other left.
		cfg.Preallocate = 64 << 10
	}
	l, err := Open(dir, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 3
	}
	var outMu sync.Mutex
	out := bufio.NewWriterSize(os.Stdout, 8192)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				var es []Entry
				for k := range 1 + (i+w)%4 {
					es = append(es, spanEntry("t_a", fmt.Sprintf("r%d_w%d_%d_%d", round, w, i, k), "x"))
				}
				if round > 0 && i%3 == 0 { // resend something from an earlier life
					es = append(es, spanEntry("t_a", fmt.Sprintf("r%d_w%d_%d_0", round-1, w, i), "x"))
				}
				res, err := l.Append(context.Background(), es)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					return
				}
				outMu.Lock()
				for j, r := range res {
					b, _ := json.Marshal(ackLine{ID: es[j].ID, Body: string(es[j].Body), Receipt: r.Receipt})
					out.Write(append(b, '\n'))
				}
				// One write per batch of lines: a line is either wholly in
				// the pipe before the kill or not at all.
				out.Flush()
				outMu.Unlock()
			}
		}()
	}
	wg.Wait()
	return 0
}

func TestSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process 20 times")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 8))
	acked := map[string]ackedSpan{}
	rounds := 20
	if raceEnabled {
		rounds = 8 // .ci/run runs the 20 without the race detector
	}
	padded := 0 // lives that left padding behind them
	for round := range rounds {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), killChildEnv+"="+dir, "LOGLINE_LEDGER_KILL_ROUND="+strconv.Itoa(round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan ackLine, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var a ackLine
				if json.Unmarshal(sc.Bytes(), &a) == nil {
					lines <- a
				}
			}
		}()
		// Let it run until it has acknowledged some spans, then a random
		// while longer, then kill it.
		deadline := time.After(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		got := 0
	wait:
		for {
			select {
			case a, ok := <-lines:
				if !ok {
					break wait
				}
				acked[a.ID] = ackedSpan{body: []byte(a.Body), receipt: a.Receipt}
				got++
			case <-deadline:
				if got > 0 {
					break wait
				}
				deadline = time.After(10 * time.Millisecond)
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for a := range lines {
			acked[a.ID] = ackedSpan{body: []byte(a.Body), receipt: a.Receipt}
			got++
		}
		cmd.Wait()
		t.Logf("round %d: %d acknowledged this life, %d in all", round, got, len(acked))
		segs, _ := filepath.Glob(filepath.Join(dir, "ledger", "segments", "*.ndjson"))
		if n := len(segs); n > 0 {
			end, err := SegmentDataEnd(segs[n-1])
			if st, serr := os.Stat(segs[n-1]); err == nil && serr == nil && st.Size() > end {
				padded++
			}
		}
		checkRecoveredAt(t, vfs.Default, dir, Config{}, acked)
		// Padding is never taken for a torn record: what was moved aside
		// holds more than zeros.
		aside, _ := filepath.Glob(filepath.Join(dir, "ledger", "segments", "*.broken*"))
		for _, p := range aside {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(bytes.Trim(b, "\x00")) == 0 {
				t.Fatalf("round %d: %s, %d bytes of zeros, was moved aside as a torn tail", round, p, len(b))
			}
		}
	}
	if padded == 0 {
		t.Errorf("no life was killed with padding in its segment: the test does not try recovery over it")
	}
	t.Logf("%d of %d lives left padding", padded, rounds)
}
