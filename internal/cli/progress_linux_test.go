package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal of cols columns and returns its master
// side, whose reads return what is written to the terminal, and the
// terminal. It skips the test where there is none.
func openPTY(t *testing.T, cols int) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pseudo-terminal number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open the pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: uint16(cols), Row: 24}); err != nil {
		t.Fatal(err)
	}
	return m, s
}

// TestProgressOnTerminal: on a terminal (of 40 columns), a long command
// shows its progress without being asked: lines rewritten in place, cut
// to the terminal's width, cleared at the end; with --no-progress or
// LOGLINE_PROGRESS=0 it writes nothing there.
func TestProgressOnTerminal(t *testing.T) {
	dir := t.TempDir()
	var spans bytes.Buffer
	for i := range 50 {
		fmt.Fprintf(&spans, `{"id":"s_%d","tenant":"t_bakery","who":"dan","did":"sale.post","this":"order:%d","when":"2025-10-05T22:18:07Z","status":"confirmed"}`+"\n", i, i%7)
	}
	in := filepath.Join(dir, "spans.ndjson")
	if err := os.WriteFile(in, spans.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	const cols = 40
	run := func(env string, args ...string) string {
		master, tty := openPTY(t, cols)
		if !isTerminal(tty) {
			t.Fatal("isTerminal(a pseudo-terminal) = false")
		}
		read := make(chan string)
		go func() {
			b, _ := io.ReadAll(master) // ends with EIO once tty is closed
			read <- string(b)
		}()
		var out bytes.Buffer
		args = append([]string{"quality", "simulate", "--spans", in, "--out", filepath.Join(dir, "events.ndjson")}, args...)
		code := Main(context.Background(), args, Stdio{Out: &out, Err: tty, Env: func(k string) string {
			if k == progressEnv {
				return env
			}
			return ""
		}})
		tty.Close()
		got := <-read
		if code != 0 || !strings.Contains(out.String(), "spans: 50 ") {
			t.Fatalf("%v: exit %d, stdout %q, terminal %q", args, code, out.String(), got)
		}
		return got
	}

	got := run("")
	if !regexp.MustCompile(`^\rreading spans: [^\r]*\x1b\[K`).MatchString(got) || !strings.HasSuffix(got, "\r\x1b[K") {
		t.Errorf("terminal: %q, want progress lines, cleared at the end", got)
	}
	for line := range strings.SplitSeq(got, "\r") {
		if line = strings.TrimSuffix(line, "\x1b[K"); len(line) >= cols {
			t.Errorf("line %q is %d columns wide on a terminal of %d", line, len(line), cols)
		}
	}
	if got := run("", "--no-progress"); got != "" {
		t.Errorf("--no-progress: terminal %q, want nothing", got)
	}
	if got := run("0"); got != "" {
		t.Errorf("%s=0: terminal %q, want nothing", progressEnv, got)
	}
}
