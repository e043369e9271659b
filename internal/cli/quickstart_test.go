//go:build unix

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The quick start of docs/apps.md is performed by TestQuickstart, block by
// block. A fenced block is part of it when the line before it is one of:
//
//	<!-- quickstart: file NAME -->  the block is the content of the file NAME
//	<!-- quickstart: server -->     a shell block that starts the server: it
//	                                runs in the background, and the blocks
//	                                after it once the server is ready
//	<!-- quickstart -->             a shell block that must exit 0
//	<!-- quickstart: output -->     what the shell block before it prints,
//	                                "…" standing for what varies
const quickstartDoc = "../../docs/apps.md"

// Bounds of the quick start: the server's start, and each block after it.
const (
	quickstartStart = 30 * time.Second
	quickstartBlock = 30 * time.Second
)

// quickstartStep is one marked block of the guide.
type quickstartStep struct {
	kind string // "file", "server", "run" or "output"
	name string // the file's name, for "file"
	text string // the block's content
	line int    // the line of its marker in the guide
}

var quickstartMarker = regexp.MustCompile(`^<!-- quickstart(?:: (file \S+|server|output))? -->$`)

// quickstartSteps returns the marked blocks of a markdown text, in order.
func quickstartSteps(doc string) ([]quickstartStep, error) {
	lines := strings.Split(doc, "\n")
	var steps []quickstartStep
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(line, "<!-- quickstart") {
			continue
		}
		m := quickstartMarker.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("line %d: malformed marker %q", i+1, line)
		}
		st := quickstartStep{kind: "run", line: i + 1}
		switch {
		case strings.HasPrefix(m[1], "file "):
			st.kind, st.name = "file", strings.TrimPrefix(m[1], "file ")
		case m[1] != "":
			st.kind = m[1]
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			return nil, fmt.Errorf("line %d: the marker is not followed by a fenced block", i+1)
		}
		info := strings.TrimPrefix(lines[i+1], "```")
		if (st.kind == "run" || st.kind == "server") && info != "sh" {
			return nil, fmt.Errorf("line %d: a %s block must be ```sh, not ```%s", i+1, st.kind, info)
		}
		end := i + 2
		for end < len(lines) && lines[end] != "```" {
			end++
		}
		if end == len(lines) {
			return nil, fmt.Errorf("line %d: the block is not closed", i+1)
		}
		st.text = strings.Join(lines[i+2:end], "\n") + "\n"
		steps = append(steps, st)
		i = end
	}
	return steps, nil
}

// unmarkedBlocks returns the fenced blocks of the "## Quick start" section
// of a markdown text that no marker precedes.
func unmarkedBlocks(doc string) []string {
	lines := strings.Split(doc, "\n")
	var out []string
	in := false
	for i := 0; i < len(lines); i++ {
		switch {
		case lines[i] == "## Quick start":
			in = true
		case strings.HasPrefix(lines[i], "## "):
			in = false
		case in && strings.HasPrefix(lines[i], "```"):
			end := i + 1
			for end < len(lines) && lines[end] != "```" {
				end++
			}
			if i == 0 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "<!-- quickstart") {
				out = append(out, strings.Join(lines[i+1:min(end, len(lines))], "\n")+"\n")
			}
			i = end
		}
	}
	return out
}

// matchOutput reports whether got (a block's output) is what want (the
// guide's output block) shows, "…" standing for anything within a line.
func matchOutput(want, got string) bool {
	pat := strings.ReplaceAll(regexp.QuoteMeta(strings.TrimSpace(want)), "…", `[^\n]*`)
	return regexp.MustCompile(`^` + pat + `$`).MatchString(strings.TrimSpace(got))
}

// TestQuickstart follows the quick start of docs/apps.md literally, from an
// empty directory: it writes the files the guide says to save, runs each
// shell block with sh -e (any command failing fails the test) and holds each
// block's output to the one the guide shows. Then the receipt must have
// verified and the derived event of the span must have been received.
//
// Two things differ from a reader's machine, and only these: the `logline`
// on PATH is this test binary (testscript.Main, in TestMain, puts it there)
// standing in for the one `go install ./cmd/logline` installs; and the
// server listens on a free port of 127.0.0.1 instead of 127.0.0.1:8080, given
// to every command by the environment (LOGLINE_LISTEN for the server,
// LOGLINE_URL for the commands that call it), so no command of the guide is
// rewritten.
func TestQuickstart(t *testing.T) {
	doc, err := os.ReadFile(quickstartDoc)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := quickstartSteps(string(doc))
	if err != nil {
		t.Fatalf("%s: %v", quickstartDoc, err)
	}
	// The one block the test does not run is the one it stands in for.
	if got, want := unmarkedBlocks(string(doc)), []string{"go install ./cmd/logline\n"}; !slices.Equal(got, want) {
		t.Fatalf("%s: the quick start's blocks that are not performed are %q, want only %q: mark the others", quickstartDoc, got, want)
	}
	if _, err := exec.LookPath("logline"); err != nil {
		t.Fatalf("logline is not on PATH (TestMain puts it there): %v", err)
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skipf("no sh to run the guide's blocks: %v", err)
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	env := []string{"LOGLINE_LISTEN=" + addr, "LOGLINE_URL=http://" + addr}
	for _, kv := range os.Environ() {
		// The reader's environment holds no LOGLINE_ setting either.
		if !strings.HasPrefix(kv, "LOGLINE_") {
			env = append(env, kv)
		}
	}

	var (
		span     struct{ ID, Tenant string }
		last     string // the output of the last shell block
		outputs  []string
		servers  int
		shown    int
		verified bool
		received bool
	)
	for i, st := range steps {
		where := fmt.Sprintf("%s:%d", quickstartDoc, st.line)
		switch st.kind {
		case "file":
			if err := os.WriteFile(filepath.Join(dir, st.name), []byte(st.text), 0o644); err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(st.name, ".json") {
				json.Unmarshal([]byte(st.text), &span)
			}
		case "server":
			servers++
			startQuickstartServer(t, where, st.text, dir, env, "http://"+addr)
		case "run":
			if servers == 0 {
				t.Fatalf("%s: a block runs before the server block", where)
			}
			last = runQuickstartBlock(t, where, st.text, dir, env)
			outputs = append(outputs, last)
		case "output":
			if i == 0 || steps[i-1].kind != "run" {
				t.Fatalf("%s: an output block follows no shell block", where)
			}
			shown++
			if !matchOutput(st.text, last) {
				t.Errorf("%s: the guide shows\n%s\nthe block printed\n%s", where, strings.TrimSpace(st.text), strings.TrimSpace(last))
			}
		}
		if strings.Contains(st.text, "127.0.0.1:8080") || strings.Contains(st.text, "localhost:8080") {
			t.Errorf("%s: the block names the default address; the test gives the server's by the environment, so this block would reach another server", where)
		}
	}
	if span.ID == "" || span.Tenant == "" {
		t.Fatalf("the guide saves no span (a file block of a JSON span with id and tenant)")
	}
	if servers != 1 || shown == 0 {
		t.Fatalf("the guide has %d server blocks and %d output blocks; want one server and the outputs shown", servers, shown)
	}
	for _, out := range outputs {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, fmt.Sprintf("ok: span %s of %s is record ", span.ID, span.Tenant)) {
				verified = true
			}
			var ev struct {
				Type      string `json:"type"`
				SrcSpanID string `json:"src_span_id"`
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Type == "trajectory_edge" && ev.SrcSpanID == span.ID {
				received = true
			}
		}
	}
	if !verified {
		t.Errorf("no block verified the receipt of span %s (want a line \"ok: span %s of %s is record …\")", span.ID, span.ID, span.Tenant)
	}
	if !received {
		t.Errorf("no block received the span's derived event (want a trajectory_edge line with \"src_span_id\":%q)", span.ID)
	}
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// shellCmd runs a block with sh -e in its own process group, so that the
// group is what is signalled: the commands the shell started with it.
func shellCmd(ctx context.Context, block, dir string, env []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "sh", "-ec", block)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// startQuickstartServer starts the server block in the background and waits
// until base answers /readyz; at the end of the test it stops it as Ctrl-C
// in its terminal would.
func startQuickstartServer(t *testing.T, where, block, dir string, env []string, base string) {
	t.Helper()
	var out bytes.Buffer
	cmd := shellCmd(context.Background(), block, dir, env)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			t.Errorf("%s: the server did not stop within 15s of SIGINT", where)
		}
		if t.Failed() {
			t.Logf("%s: the server's output:\n%s", where, out.String())
		}
	})
	deadline := time.Now().Add(quickstartStart)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s: the server exited before it was ready (%v):\n%s", where, err, out.String())
		default:
		}
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: the server was not ready after %v", where, quickstartStart)
}

// runQuickstartBlock runs a block and returns its output; it fails the
// test when the block fails or outlasts quickstartBlock.
func runQuickstartBlock(t *testing.T, where, block, dir string, env []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), quickstartBlock)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := shellCmd(ctx, block, dir, env)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s: the block ran over %v:\n%s\nstdout:\n%s\nstderr:\n%s", where, quickstartBlock, block, stdout.String(), stderr.String())
	}
	if err != nil {
		t.Fatalf("%s: the block failed (%v):\n%s\nstdout:\n%s\nstderr:\n%s", where, err, block, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// TestQuickstartSteps holds the reading of the markers to what the comment
// above quickstartMarker says, and refuses a marker it could misread.
func TestQuickstartSteps(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []quickstartStep
		err       string
	}{
		{name: "every kind", doc: "text\n<!-- quickstart: file a.json -->\n```json\n{}\n```\n<!-- quickstart: server -->\n```sh\nlogline serve --dev\n```\n" +
			"<!-- quickstart -->\n```sh\nlogline post a.json\nlogline ledger key\n```\n<!-- quickstart: output -->\n```text\nok …\n```\n```sh\nnot marked\n```\n",
			want: []quickstartStep{
				{kind: "file", name: "a.json", text: "{}\n", line: 2},
				{kind: "server", text: "logline serve --dev\n", line: 6},
				{kind: "run", text: "logline post a.json\nlogline ledger key\n", line: 10},
				{kind: "output", text: "ok …\n", line: 15},
			}},
		{name: "unknown marker", doc: "<!-- quickstart: serve -->\n```sh\nx\n```\n", err: `line 1: malformed marker "<!-- quickstart: serve -->"`},
		{name: "no block", doc: "<!-- quickstart -->\n\n```sh\nx\n```\n", err: "line 1: the marker is not followed by a fenced block"},
		{name: "not shell", doc: "<!-- quickstart -->\n```console\n$ x\n```\n", err: "line 1: a run block must be ```sh, not ```console"},
		{name: "not closed", doc: "<!-- quickstart -->\n```sh\nx\n", err: "line 1: the block is not closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := quickstartSteps(tc.doc)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tc.err {
				t.Fatalf("error %q, want %q", gotErr, tc.err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(quickstartStep{})); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMatchOutput(t *testing.T) {
	for _, tc := range []struct {
		want, got string
		ok        bool
	}{
		{"ok: span s_1 of t is record 0, signed by … at …", "ok: span s_1 of t is record 0, signed by 1a2b at 2026-01-01T00:00:00Z\n", true},
		{"ok: span s_1 of t is record 0, signed by … at …", "ok: span s_1 of t is record 1, signed by 1a2b at now\n", false},
		{"ok: span s_1 of t is record 0, signed by … at …", "ok: span s_1 of t is record 0, signed by 1a2b at now\nmore\n", false},
		{`{"a":"…","b":1}`, `{"a":"x.y+z","b":1}`, true},
		{"one …", "one\ntwo", false},
	} {
		if got := matchOutput(tc.want, tc.got); got != tc.ok {
			t.Errorf("matchOutput(%q, %q) = %v, want %v", tc.want, tc.got, got, tc.ok)
		}
	}
}
