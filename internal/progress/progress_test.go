package progress

import (
	"bytes"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// step is one call on a Reporter, at some time after the previous one,
// and what it writes.
type step struct {
	after time.Duration
	call  func(r *Reporter)
	want  string
}

func update(what string, unit Unit, done, total int64) func(*Reporter) {
	return func(r *Reporter) { r.Update(what, unit, done, total) }
}

func clear(r *Reporter) { r.Clear() }

func note(s string) func(*Reporter) { return func(r *Reporter) { r.SetNote(s) } }

// run plays steps on a Reporter with a fake clock, checking what each
// writes.
func run(t *testing.T, cfg Config, steps []step) {
	t.Helper()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg.Now = func() time.Time { return now }
	var buf bytes.Buffer
	r := New(&buf, cfg)
	for i, s := range steps {
		now = now.Add(s.after)
		buf.Reset()
		s.call(r)
		if diff := cmp.Diff(s.want, buf.String()); diff != "" {
			t.Errorf("step %d (after %s): wrote (-want +got):\n%s", i, s.after, diff)
		}
	}
}

const el = "\033[K"

func TestReporterKnownTotal(t *testing.T) {
	run(t, Config{}, []step{
		// The first update of a stage is drawn at once, without a rate.
		{0, update("verifying records", Bytes, 0, 100<<20), "\rverifying records: 0 B of 100.0 MiB (0%)" + el},
		// Within the interval: dropped.
		{50 * time.Millisecond, update("verifying records", Bytes, 1<<20, 100<<20), ""},
		{49 * time.Millisecond, update("verifying records", Bytes, 2<<20, 100<<20), ""},
		// 100 ms after the last drawing: drawn, with the rate since the
		// stage began (10 MiB in 1 s) and the ETA.
		{901 * time.Millisecond, update("verifying records", Bytes, 10<<20, 100<<20),
			"\rverifying records: 10.0 MiB of 100.0 MiB (10%), 10.0 MiB/s, ETA 9s" + el},
		{100 * time.Millisecond, update("verifying records", Bytes, 11<<20, 100<<20),
			"\rverifying records: 11.0 MiB of 100.0 MiB (11%), 10.0 MiB/s, ETA 9s" + el},
		// Done: no ETA.
		{900 * time.Millisecond, update("verifying records", Bytes, 100<<20, 100<<20),
			"\rverifying records: 100.0 MiB of 100.0 MiB (100%), 50.0 MiB/s" + el},
		// A new stage is drawn at once; its rate starts again.
		{time.Millisecond, update("verifying derived streams", Records, 0, 5000), "\rverifying derived streams: 0 of 5000 records (0%)" + el},
		{2 * time.Second, update("verifying derived streams", Records, 1000, 5000),
			"\rverifying derived streams: 1000 of 5000 records (20%), 500 records/s, ETA 8s" + el},
		// Past the total (a total that grew): capped at 100%.
		{time.Second, update("verifying derived streams", Records, 6000, 5000),
			"\rverifying derived streams: 6000 of 5000 records (100%), 2000 records/s" + el},
		{0, clear, "\r" + el},
		// Cleared: nothing left to clear.
		{0, clear, ""},
		// After Clear, the next update starts its stage afresh, at once.
		{time.Millisecond, update("verifying derived streams", Records, 6000, 6000), "\rverifying derived streams: 6000 of 6000 records (100%)" + el},
	})
}

func TestReporterUnknownTotal(t *testing.T) {
	run(t, Config{Interval: time.Second}, []step{
		{0, update("reading spans", Spans, 10, 0), "\rreading spans: 10 spans" + el},
		{500 * time.Millisecond, update("reading spans", Spans, 20, 0), ""},
		{500 * time.Millisecond, update("reading spans", Spans, 110, -1), "\rreading spans: 110 spans, 100 spans/s" + el},
		{time.Second, update("reading spans", Bytes, 3<<10, 0), "\rreading spans: 3.0 KiB" + el},
		{2 * time.Second, update("reading spans", Bytes, 7<<10, 0), "\rreading spans: 7.0 KiB, 2.0 KiB/s" + el},
		// Nothing done since the stage began: a rate of 0 and no ETA.
		{0, update("sending", Spans, 0, 100), "\rsending: 0 of 100 spans (0%)" + el},
		{time.Second, update("sending", Spans, 0, 100), "\rsending: 0 of 100 spans (0%), 0 spans/s" + el},
		{0, clear, "\r" + el},
	})
}

func TestReporterNote(t *testing.T) {
	run(t, Config{}, []step{
		{0, note("2 requests failed"), ""},
		{0, update("bench ingest", Spans, 0, 100), "\rbench ingest: 0 of 100 spans (0%), 2 requests failed" + el},
		{0, note(""), ""},
		{time.Second, update("bench ingest", Spans, 50, 100), "\rbench ingest: 50 of 100 spans (50%), 50 spans/s, ETA 1s" + el},
	})
}

// TestReporterWidth: a line wider than the terminal is cut to one column
// less, counting characters, not bytes.
func TestReporterWidth(t *testing.T) {
	run(t, Config{Width: 20}, []step{
		{0, update("exporting tenant t_é", Records, 0, 10), "\rexporting tenant t_" + el},
		{0, update("x", Records, 1, 10), "\rx: 1 of 10 records " + el},
		{0, update("short", Records, 1, 0), "\rshort: 1 records" + el},
	})
}

func TestReporterETA(t *testing.T) {
	run(t, Config{}, []step{
		{0, update("copying", Bytes, 0, 1<<30), "\rcopying: 0 B of 1.0 GiB (0%)" + el},
		// 1 MiB in a second, 1023 MiB to go.
		{time.Second, update("copying", Bytes, 1<<20, 1<<30), "\rcopying: 1.0 MiB of 1.0 GiB (0%), 1.0 MiB/s, ETA 17m3s" + el},
		// Almost done: at least a second.
		{time.Second, update("copying", Bytes, 1<<30-1, 1<<30), "\rcopying: 1024.0 MiB of 1.0 GiB (99%), 512.0 MiB/s, ETA 1s" + el},
	})
}

// TestNilReporter: a command that shows no progress holds a nil Reporter.
func TestNilReporter(t *testing.T) {
	var r *Reporter
	r.Update("x", Records, 1, 2)
	r.SetNote("n")
	r.Clear()
	if f := r.Func("x", Records); f != nil {
		t.Error("Func on a nil Reporter is not nil")
	}
}

func TestFunc(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, Config{}).Func("verifying records", Bytes)(1024, 2048)
	if got, want := buf.String(), "\rverifying records: 1.0 KiB of 2.0 KiB (50%)"+el; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestReporterConcurrent: updates from several goroutines and a Clear
// race with nothing (go test -race) and leave whole lines.
func TestReporterConcurrent(t *testing.T) {
	var buf bytes.Buffer
	r := New(&buf, Config{Interval: time.Nanosecond})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				r.Update("sending", Spans, int64(g*100+i), 400)
			}
		})
	}
	wg.Wait()
	r.Clear()
	out := buf.String()
	if !strings.HasSuffix(out, "\r"+el) {
		t.Errorf("output does not end cleared: %q", out[max(0, len(out)-40):])
	}
	for line := range strings.SplitSeq(strings.TrimSuffix(out, "\r"+el), "\r") {
		if line != "" && (!strings.HasPrefix(line, "sending: ") || !strings.HasSuffix(line, el)) {
			t.Fatalf("torn line %q", line)
		}
	}
}

// TestTerminal: a pipe, a file and /dev/null (a character device) are no
// terminals. A terminal is checked by the command's test on a pseudo
// terminal (internal/cli).
func TestTerminal(t *testing.T) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	file, err := os.Create(t.TempDir() + "/f")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	for _, tc := range []struct {
		name string
		w    io.Writer
	}{{"/dev/null", devnull}, {"file", file}, {"pipe", pw}, {"buffer", &bytes.Buffer{}}} {
		if width, ok := Terminal(tc.w); ok || width != 0 {
			t.Errorf("Terminal(%s) = %d, %v; want 0, false", tc.name, width, ok)
		}
	}
}
