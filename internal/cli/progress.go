package cli

import (
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/loglineos/loglineos/internal/progress"
)

// progressEnv forces the progress line of the long commands on (1) or off
// (0) whatever stderr is; unset (or "auto"), it is shown when stderr is a
// terminal. --no-progress turns it off whatever the variable says.
const progressEnv = "LOGLINE_PROGRESS"

// addNoProgressFlag adds --no-progress to a long command.
func addNoProgressFlag(cmd *cobra.Command, off *bool) {
	cmd.Flags().BoolVar(off, "no-progress", false,
		"show no progress line on stderr (env "+progressEnv+"=0; "+progressEnv+"=1 shows it even when stderr is not a terminal)")
}

// newReporter returns where a long command shows how far it has got: a
// progress line on stderr when stderr is a terminal or LOGLINE_PROGRESS=1;
// nil (nothing shown, no byte written) with --no-progress (off),
// LOGLINE_PROGRESS=0, or when stderr is a pipe or a file.
func newReporter(stdio Stdio, off bool) (*progress.Reporter, error) {
	width, on := progress.Terminal(stdio.Err)
	switch v := stdio.getenv(progressEnv); v {
	case "", "auto":
	default:
		force, err := strconv.ParseBool(v)
		if err != nil {
			return nil, usageErr("%s=%q: want 1 (show progress), 0 (never) or auto (on a terminal)", progressEnv, v)
		}
		on = force
	}
	if off || !on {
		return nil, nil
	}
	return progress.New(stdio.Err, progress.Config{Width: width}), nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	_, ok := progress.Terminal(w)
	return ok
}

// stagedProgress adapts p to the callback of server.Reindex and
// snapshot.Restore, naming their stages on the progress line; nil when p
// is, so that they do not report.
func stagedProgress(p *progress.Reporter) func(stage string, done, total int64) {
	if p == nil {
		return nil
	}
	return func(stage string, done, total int64) {
		switch stage {
		case "copy":
			p.Update("copying the snapshot", progress.Bytes, done, total)
		case "ledger":
			p.Update("indexing the ledger", progress.Bytes, done, total)
		case "derived":
			p.Update("deriving", progress.Records, done, total)
		case "verify":
			p.Update("verifying the ledger", progress.Bytes, done, total)
		default:
			p.Update(stage, progress.Records, done, total)
		}
	}
}

// progressReader reports the bytes read through it, of total (0 when not
// known).
type progressReader struct {
	r           io.Reader
	done, total int64
	report      func(done, total int64)
}

// newProgressReader returns r, reporting to report when it is not nil.
func newProgressReader(r io.Reader, total int64, report func(done, total int64)) io.Reader {
	if report == nil {
		return r
	}
	return &progressReader{r: r, total: total, report: report}
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.done += int64(n)
	r.report(r.done, r.total)
	return n, err
}

// fileSize is the size of the regular file f, 0 when f is not one (stdin
// from a pipe) or cannot tell.
func fileSize(f *os.File) int64 {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0
	}
	return st.Size()
}
