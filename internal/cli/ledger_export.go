package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/loglineos/loglineos/internal/ledger/export"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/progress"
)

func newLedgerExportCmd(stdio Stdio, data *string) *cobra.Command {
	var tenant, out string
	var from, to int64
	var noProgress bool
	cmd := &cobra.Command{
		Use:   "export --tenant T --out FILE [--from SEQ] [--to SEQ]",
		Short: "Write a signed export of one tenant's spans, verifiable offline",
		Long: `export writes the spans of one tenant whose sequence numbers are in
[--from, --to), each with its inclusion proof in the ledger's latest signed
checkpoint, and a manifest signed with the ledger's key (docs/exports.md).
--to defaults to the checkpoint's size. It opens the data directory
read-only, so it runs beside a running server, on what that server's signed
checkpoint covers.

Exports chain: start the next one --from the previous one's end (its
header's "to"). 'logline ledger verify-export' checks a file offline.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case tenant == "":
				return usageErr("--tenant is required")
			case out == "":
				return usageErr("--out is required (- for stdout)")
			case from < 0 || to < 0:
				return usageErr("--from and --to must not be negative")
			}
			p, err := newReporter(stdio, noProgress)
			if err != nil {
				return err
			}
			l, err := openReadOnly(*data)
			if err != nil {
				return err
			}
			defer l.Close()
			e, err := export.New(l, tenant, uint64(from), uint64(to))
			if err != nil {
				return badErr("%v", err)
			}
			first, end := e.Range()
			var report func(seq uint64)
			if p != nil {
				what := "exporting tenant " + tenant
				report = func(seq uint64) { p.Update(what, progress.Records, int64(seq-first), int64(end-first)) }
			}
			var sum export.Summary
			err = writeOut(out, stdio.Out, func(w io.Writer) error {
				var err error
				sum, err = e.Write(cmd.Context(), w, report)
				return err
			})
			p.Clear()
			if err != nil {
				return badErr("%v", err)
			}
			fmt.Fprintf(stdio.Err, "exported %d records of tenant %s, seqs %d..%d, checkpoint %d (%d bytes)\n",
				sum.Records, tenant, first, end, e.Checkpoint().Size, sum.Bytes)
			return nil
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "the tenant to export")
	cmd.Flags().StringVar(&out, "out", "", "the file to write (- for stdout); written whole or not at all")
	cmd.Flags().Int64Var(&from, "from", 0, "the first sequence number (the previous export's end)")
	cmd.Flags().Int64Var(&to, "to", 0, "the sequence number to stop before (default: the latest checkpoint's size)")
	addNoProgressFlag(cmd, &noProgress)
	return cmd
}

// writeOut runs write on stdout for "-", else on a temporary file beside
// name that replaces name only once write succeeded and the file is synced.
func writeOut(name string, stdout io.Writer, write func(io.Writer) error) (err error) {
	if name == "-" {
		bw := bufio.NewWriter(stdout)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	f, err := os.CreateTemp(filepath.Dir(name), filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

func newLedgerVerifyExportCmd(stdio Stdio, data *string) *cobra.Command {
	var key string
	var noProgress bool
	cmd := &cobra.Command{
		Use:   "verify-export FILE [--key KEY]",
		Short: "Check a signed tenant export, offline",
		Long: `verify-export checks, with nothing but the file and the ledger's public key,
an export written by 'logline ledger export' or GET /exports/{tenant}: the
signed checkpoint and the signed manifest, the file's SHA-256, each record's
leaf hash and inclusion proof, that every record is a span of the tenant,
within the range and in order, and their count. Use "-" to read stdin.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("want one export file")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := verifierFor(key, *data)
			if err != nil {
				return err
			}
			p, err := newReporter(stdio, noProgress)
			if err != nil {
				return err
			}
			var r io.Reader = stdio.In
			var size int64
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return usageErr("%v", err)
				}
				defer f.Close()
				r, size = f, fileSize(f)
			}
			m, err := v.VerifyExport(newProgressReader(r, size, p.Func("verifying the export", progress.Bytes)))
			p.Clear()
			var ee *ledgerfmt.ExportError
			switch {
			case errors.As(err, &ee):
				return badErr("%s: %v", args[0], ee)
			case err != nil:
				return badErr("%v", err)
			}
			fmt.Fprintf(stdio.Out, "ok: %d records of tenant %s, seqs %d..%d, checkpoint %d\n", m.Records, m.Tenant, m.From, m.To, m.Size)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", keyFlagHelp)
	addNoProgressFlag(cmd, &noProgress)
	return cmd
}
