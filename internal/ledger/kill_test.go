package ledger

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
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
	l, err := Open(dir, Config{SegmentBytes: 256 << 10, CheckpointEvery: 500, CheckpointInterval: 50 * time.Millisecond})
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
		checkRecoveredAt(t, vfs.Default, dir, Config{}, acked)
	}
}
