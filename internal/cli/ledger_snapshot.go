package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loglineos/loglineos/internal/bytesize"
	"github.com/loglineos/loglineos/internal/progress"
	"github.com/loglineos/loglineos/internal/snapshot"
)

func newLedgerSnapshotCmd(stdio Stdio, data *string) *cobra.Command {
	var out string
	var wait time.Duration
	var noProgress bool
	cmd := &cobra.Command{
		Use:   "snapshot --out SNAPDIR",
		Short: "Copy the data directory as of its latest signed checkpoint, beside a running server",
		Long: `snapshot writes a consistent point-in-time copy of the data directory into
--out (which must not exist or be empty): the records of the latest signed
checkpoint exactly (sealed segments hard-linked, copied across file
systems; the active one copied up to the checkpoint's last record), the
checkpoint, the ledger's keys, and the state files a restored server needs
(bundle/, identity/, jwks/, cfg/tenants/, runtime/ but kv.json,
billing.json), with a SNAPSHOT manifest of their sizes and SHA-256 hashes
(docs/backups.md). What derives from the records is left out: restore
rebuilds it.

It only reads, and runs beside a running server, which keeps its lock and
goes on ingesting. It copies the state files first, then waits (at most
--wait) for a signed checkpoint covering every record written by then.

The snapshot holds the ledger's signing key and the token signing keys:
keep it as secret as the data directory.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageErr("--out is required")
			}
			if err := checkData(*data); err != nil {
				return err
			}
			p, err := newReporter(stdio, noProgress)
			if err != nil {
				return err
			}
			start := time.Now()
			t, err := snapshot.Take(cmd.Context(), snapshot.TakeConfig{Data: *data, Out: out, Wait: wait,
				Progress: p.Func("copying the ledger", progress.Bytes)})
			p.Clear()
			if err != nil {
				return snapshotErr(err)
			}
			for _, n := range t.Notes {
				fmt.Fprintf(stdio.Err, "note: %s\n", n)
			}
			m := t.Manifest
			fmt.Fprintf(stdio.Out, "snapshot: %d records, root %s, %d files (%d segments linked, %s copied) in %s\n",
				m.Size, m.Root, len(m.Files), t.Linked, bytesize.Format(t.Copied), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the snapshot directory (must not exist or be empty)")
	cmd.Flags().DurationVar(&wait, "wait", snapshot.DefaultWait, "how long to wait for a signed checkpoint that covers the state files")
	addNoProgressFlag(cmd, &noProgress)
	return cmd
}

func newLedgerRestoreCmd(stdio Stdio, data *string) *cobra.Command {
	var from, key, config string
	var noProgress bool
	cmd := &cobra.Command{
		Use:   "restore --from SNAPDIR --data NEWDIR [--key KEY]",
		Short: "Rebuild a data directory from a snapshot, and verify it",
		Long: `restore checks the snapshot in --from (its checkpoint's signature, with --key
if given, else with the snapshot's own key; every file's SHA-256 against
its SNAPSHOT manifest), copies it into --data (which must not exist or be
empty), rebuilds the indexes, the receipts journal and the derived streams
as 'logline ledger reindex' does (--config names the configuration of the
server that will run there, for its bundle), and verifies the ledger: it
must hold the snapshot checkpoint's tree. A snapshot that fails a check is
refused, exit status 1, and --data is left empty.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" {
				return usageErr("--from is required")
			}
			vkey := ""
			if key != "" {
				var err error
				if vkey, err = readKey(key, *data); err != nil {
					return err
				}
			}
			cfg, err := serverConfig(stdio, config, *data)
			if err != nil {
				return err
			}
			p, err := newReporter(stdio, noProgress)
			if err != nil {
				return err
			}
			start := time.Now()
			r, err := snapshot.Restore(cmd.Context(), snapshot.RestoreConfig{From: from, Server: cfg, Key: vkey,
				Logger: newLogger(stdio.Err, "text", "warn"), Progress: stagedProgress(p)})
			p.Clear()
			if err != nil {
				return snapshotErr(err)
			}
			m := r.Manifest
			fmt.Fprintf(stdio.Out, "restored: %d records, root %s, verified; %d derived events rebuilt in %s\n",
				m.Size, m.Root, r.Events, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the snapshot directory")
	cmd.Flags().StringVar(&key, "key", "", strings.Replace(keyFlagHelp, "(default: the ledger's key.pub in --data)", "(default: the snapshot's ledger/key.pub)", 1))
	cmd.Flags().StringVar(&config, "config", "", "the server's YAML configuration (for its bundle)")
	addNoProgressFlag(cmd, &noProgress)
	return cmd
}

// snapshotErr gives a refused snapshot exit status 1, on one line.
func snapshotErr(err error) error {
	if errors.Is(err, snapshot.ErrBad) {
		return badErr("%v", err)
	}
	return err
}
