package derive

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // so that TZ means the same on every machine
)

// The determinism acceptance: the same synthetic ledger of 1,000,000 spans
// (5 tenants, heartbeats, late spans, rule closes, ticks, config changes,
// guardrail caps) replayed in separate processes, with different
// GOMAXPROCS, TZ, chunking, span time locations and snapshot/resume points,
// gives byte-identical event streams (SHA-256 of the concatenated JSON).

const helperEnv = "DERIVE_DETERMINISM_HELPER"

// replayHash replays the ledger and returns the SHA-256 of the event stream
// and the number of events. mode "plain" feeds inputs one by one to one
// engine; mode "chunked" feeds random-size chunks, moves every span's time
// to an odd location, and at random chunk boundaries snapshots the engine
// and resumes in a new one.
func replayHash(t testing.TB, spans int, mode string, seed uint64) (string, int) {
	h := sha256.New()
	var n int
	var buf []byte
	var evs []Event
	e := &Engine{}
	emit := func() {
		for i := range evs {
			buf = evs[i].AppendJSON(buf[:0])
			buf = append(buf, '\n')
			h.Write(buf)
		}
		n += len(evs)
	}
	step := func(in Input) {
		var err error
		if evs, err = e.Step(evs[:0], in); err != nil {
			t.Fatal(err)
		}
		emit()
	}
	switch mode {
	case "plain":
		for in := range defaultLedger(spans).ledger() {
			step(in)
		}
	case "chunked":
		rng := rand.New(rand.NewPCG(seed, seed+1))
		zone := time.FixedZone("odd", -(9*3600 + 30*60))
		chunk := make([]Input, 0, 4096)
		flush := func() {
			for _, in := range chunk {
				if in.Kind == KindSpan {
					in.Span.When = in.Span.When.In(zone)
				}
				step(in)
			}
			chunk = chunk[:0]
			if rng.IntN(8) == 0 {
				snap, err := e.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				e = &Engine{}
				if err := e.UnmarshalBinary(snap); err != nil {
					t.Fatal(err)
				}
			}
		}
		size := 1 + rng.IntN(4000)
		for in := range defaultLedger(spans).ledger() {
			chunk = append(chunk, in)
			if len(chunk) >= size {
				flush()
				size = 1 + rng.IntN(4000)
			}
		}
		flush()
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// TestDeterminismHelper is not a test of its own: it is the child process of
// TestDeterminism.
func TestDeterminismHelper(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process only")
	}
	parts := strings.Split(spec, ",") // spans,mode,seed
	spans, _ := strconv.Atoi(parts[0])
	seed, _ := strconv.ParseUint(parts[2], 10, 64)
	sum, n := replayHash(t, spans, parts[1], seed)
	zone, off := time.Now().Zone()
	fmt.Printf("RESULT %s %d events GOMAXPROCS=%d TZ=%s local zone %s%+d\n", sum, n, runtime.GOMAXPROCS(0), os.Getenv("TZ"), zone, off)
}

func TestDeterminism(t *testing.T) {
	spans := 1_000_000
	if testing.Short() || raceEnabled {
		spans = 100_000
	}
	runs := []struct {
		env  []string
		mode string
		seed int
	}{
		{[]string{"GOMAXPROCS=1", "TZ=UTC"}, "plain", 0},
		{[]string{"GOMAXPROCS=2", "TZ=America/St_Johns"}, "chunked", 1},
		{[]string{"GOMAXPROCS=2", "TZ=Asia/Kolkata"}, "chunked", 2},
	}
	var first string
	for _, r := range runs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDeterminismHelper$", "-test.v", "-test.timeout=20m")
		cmd.Env = append(os.Environ(), r.env...)
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d,%s,%d", helperEnv, spans, r.mode, r.seed))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v %s: %v\n%s", r.env, r.mode, err, out)
		}
		var line string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "RESULT ") {
				line = l
			}
		}
		if line == "" {
			t.Fatalf("%v %s: no result in\n%s", r.env, r.mode, out)
		}
		t.Logf("%d spans, %s: %s", spans, r.mode, line)
		sum := strings.Fields(line)[1]
		if first == "" {
			first = sum
		} else if sum != first {
			t.Errorf("%v %s: event stream SHA-256 %s, want %s", r.env, r.mode, sum, first)
		}
	}
	// And in this process, against the children.
	if sum, _ := replayHash(t, spans, "chunked", 3); sum != first {
		t.Errorf("in-process chunked replay: %s, want %s", sum, first)
	}
}
