package cli

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/server"
	"github.com/loglineos/loglineos/internal/server/servertest"
)

// TestWatcherRead holds watch to its stream: what it prints, when it stops,
// and the cursor it names to resume.
func TestWatcherRead(t *testing.T) {
	const (
		rec3 = `{"seq":3,"ts":"2025-10-05T22:18:07Z","leaf":"x","crc":"00000000","span":{"status":"confirmed"}}`
		rec7 = `{"seq":7,"ts":"2025-10-05T22:18:08Z","leaf":"y","crc":"00000000","span":{"status":"pending"}}`
		ev   = `{"position":0,"seq":3,"src_span_id":"s_1","tenant":"t","type":"trajectory_edge"}`
	)
	for _, tc := range []struct {
		name    string
		derived bool
		cursor  uint64
		count   int
		in      string
		out     string
		err     string // "" for success
	}{
		{name: "records, then the server ends", in: rec3 + "\n" + rec7 + "\n", out: rec3 + "\n" + rec7 + "\n",
			err: "the server ended the stream; resume with --cursor 8"},
		{name: "nothing, then the server ends", cursor: 5, in: "", err: "the server ended the stream; resume with --cursor 5"},
		{name: "count reached", count: 1, in: rec3 + "\n" + rec7 + "\n", out: rec3 + "\n"},
		{name: "count reached at the last line", count: 2, in: rec3 + "\n" + rec7 + "\n", out: rec3 + "\n" + rec7 + "\n"},
		{name: "a last line cut short is not printed", in: rec3 + "\n" + rec7[:20], out: rec3 + "\n",
			err: "the server ended the stream; resume with --cursor 4"},
		{name: "derived events count from the cursor", derived: true, cursor: 5, in: ev + "\n" + ev + "\n", out: ev + "\n" + ev + "\n",
			err: "the server ended the stream; resume with --cursor 7"},
		{name: "a problem ends the stream with its cursor", in: rec3 + "\n" + `{"type":"/problems/token-expired","title":"token expired","status":401,"detail":"the stream's token expired; reconnect with a new token and cursor=12","cursor":12}` + "\n",
			out: rec3 + "\n",
			err: "the server ended the stream: the stream's token expired; reconnect with a new token and cursor=12 (/problems/token-expired); resume with --cursor 12"},
		{name: "a malformed line", in: rec3 + "\n{\"seq\":\n", out: rec3 + "\n",
			err: "the stream sent a malformed line (unexpected end of JSON input); resume with --cursor 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			w := watcher{out: &out, derived: tc.derived, cursor: tc.cursor, count: tc.count}
			err := w.read(bufio.NewReader(strings.NewReader(tc.in)))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.err {
				t.Errorf("error %q, want %q", got, tc.err)
			}
			if diff := cmp.Diff(tc.out, out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWatchServerStops follows a real server's stream: a span posted is
// printed as it arrives, and when the server stops, watch exits 1 naming
// the cursor that resumes after it.
func TestWatchServerStops(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.Data, cfg.Dev = t.TempDir(), true
	srv := servertest.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	span := filepath.Join(t.TempDir(), "span.json")
	if err := os.WriteFile(span, []byte(`{"id":"s_1","tenant":"t_w","who":"dan","did":"sale.post","this":"order:1","when":"2025-10-05T22:18:07Z","status":"confirmed"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var postOut, postErr bytes.Buffer
	if code := Main(ctx, []string{"post", "--url", srv.URL, span}, Stdio{Out: &postOut, Err: &postErr}); code != 0 {
		t.Fatalf("post: exit %d: %s", code, postErr.String())
	}

	lines := make(chan string, 8)
	var watchErr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"watch", "--url", srv.URL, "--tenant", "t_w"}, Stdio{Out: lineWriter(lines), Err: &watchErr})
	}()
	select {
	case l := <-lines:
		if !strings.HasPrefix(l, `{"seq":0,`) || !strings.Contains(l, `"id":"s_1"`) {
			t.Fatalf("watch printed %q, want the record of s_1", l)
		}
	case code := <-done:
		t.Fatalf("watch exited %d before printing: %s", code, watchErr.String())
	case <-ctx.Done():
		t.Fatal("watch printed nothing in 30s")
	}
	srv.Stop()
	select {
	case code := <-done:
		if code != ExitBad {
			t.Errorf("watch exited %d after the server stopped, want %d", code, ExitBad)
		}
	case <-ctx.Done():
		t.Fatal("watch did not end in 30s after the server stopped")
	}
	if got, want := watchErr.String(), "logline: the server ended the stream; resume with --cursor 1\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
}

// lineWriter sends what is written to it, a line a write, to ch.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	w <- strings.TrimSuffix(string(p), "\n")
	return len(p), nil
}
