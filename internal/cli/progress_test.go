package cli

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// TestIsTerminal: a file, a pipe and /dev/null (a character device, but
// no terminal) are not terminals, and get no progress (nor histogram).
func TestIsTerminal(t *testing.T) {
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
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, f := range map[string]*os.File{"/dev/null": devnull, "file": file, "pipe": w} {
		if isTerminal(f) {
			t.Errorf("isTerminal(%s) = true, want false", name)
		}
	}
}

// TestNewReporter: LOGLINE_PROGRESS forces the progress line on or off,
// --no-progress turns it off whatever the variable says, and a value that
// means neither is a usage error. (On a terminal: TestProgressOnTerminal.)
func TestNewReporter(t *testing.T) {
	for _, tc := range []struct {
		env     string
		off     bool
		want    bool
		wantErr bool
	}{
		{env: "", want: false},
		{env: "auto", want: false},
		{env: "1", want: true},
		{env: "true", want: true},
		{env: "1", off: true, want: false},
		{env: "0", want: false},
		{env: "yes", wantErr: true},
	} {
		stdio := Stdio{Err: &bytes.Buffer{}, Env: func(k string) string {
			if k == progressEnv {
				return tc.env
			}
			return ""
		}}
		p, err := newReporter(stdio, tc.off)
		var ee *exitError
		if tc.wantErr != (err != nil) || (err != nil && (!errors.As(err, &ee) || ee.code != ExitUsage)) {
			t.Errorf("%s=%q: err %v, want a usage error: %v", progressEnv, tc.env, err, tc.wantErr)
		}
		if got := p != nil; got != tc.want {
			t.Errorf("%s=%q --no-progress=%v: progress shown %v, want %v", progressEnv, tc.env, tc.off, got, tc.want)
		}
	}
}
