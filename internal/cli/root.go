// Package cli implements the logline command: one file per subcommand, each
// building a cobra command whose flags are locals of its constructor.
//
// Exit status follows the command-line contract: 0 on success, 1 when the
// thing checked is bad (a tampered ledger, an invalid bundle, a failed
// benchmark), 2 on usage errors. Errors are printed as one line on stderr,
// "logline: ...", never as a stack trace.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Stdio is where a command reads and writes.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
	// Env looks up environment variables; nil means os.Getenv.
	Env func(string) string
}

func (s Stdio) getenv(k string) string {
	if s.Env == nil {
		return os.Getenv(k)
	}
	return s.Env(k)
}

// Exit codes.
const (
	ExitOK    = 0
	ExitBad   = 1 // the thing checked is bad, or the command failed
	ExitUsage = 2
)

// exitError carries an exit status other than the default for an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr reports a usage error (exit 2).
func usageErr(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// badErr reports that the thing checked is bad (exit 1) with a message.
func badErr(format string, args ...any) error {
	return &exitError{code: ExitBad, err: fmt.Errorf(format, args...)}
}

// silentExit ends with a status after the command printed its own report.
type silentExit int

func (e silentExit) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// Main runs the logline command with args (without the program name) and
// returns the exit status.
func Main(ctx context.Context, args []string, stdio Stdio) int {
	root := newRoot(stdio)
	root.SetArgs(args)
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var se silentExit
	if errors.As(err, &se) {
		return int(se)
	}
	code := ExitBad
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	} else if isFlagError(err) {
		code = ExitUsage
	}
	msg := strings.TrimSpace(err.Error())
	fmt.Fprintf(stdio.Err, "logline: %s\n", msg)
	if code == ExitUsage {
		fmt.Fprintf(stdio.Err, "Run 'logline --help' for usage.\n")
	}
	return code
}

// isFlagError recognises cobra's and pflag's usage errors.
func isFlagError(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument",
		"invalid argument", "accepts ", "requires at least", "requires at most", "required flag"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func newRoot(stdio Stdio) *cobra.Command {
	root := &cobra.Command{
		Use:   "logline",
		Short: "LogLineOS: an auditable core for spans",
		Long: `LogLineOS takes spans (who did what to which thing, when, confirmed by whom),
validates them, appends them to a tamper-evident ledger with signed receipts,
and derives trajectories, quality scores and diamond candidates.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: ExitUsage, err: err}
	})
	root.AddCommand(
		newServeCmd(stdio),
		newPostCmd(stdio),
		newWatchCmd(stdio),
		newLedgerCmd(stdio),
		newBenchCmd(stdio),
		newQualityCmd(stdio),
		newTokenCmd(stdio),
		newKeysCmd(stdio),
		newAccountsCmd(stdio),
		newOpenAPICmd(stdio),
	)
	root.CompletionOptions.DisableDefaultCmd = true
	return root
}

// group makes a command that only holds subcommands: bare, it prints its
// help; with an unknown subcommand, it is a usage error.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(subs...)
	return cmd
}

// noArgs rejects positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr("%s takes no arguments, got %q", cmd.CommandPath(), args[0])
	}
	return nil
}

// printJSON writes v to w as indented JSON, the output of --json and of
// the commands that print a document.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
