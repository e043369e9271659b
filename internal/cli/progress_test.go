package cli

import (
	"bytes"
	"errors"
	"testing"
)

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
