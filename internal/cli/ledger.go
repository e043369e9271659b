package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/loglineos/loglineos/internal/bytesize"
	"github.com/loglineos/loglineos/internal/cycle"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/progress"
	"github.com/loglineos/loglineos/internal/server"
	"github.com/loglineos/loglineos/internal/span"
)

func newLedgerCmd(stdio Stdio) *cobra.Command {
	var data string
	cmd := group("ledger", "Inspect, verify and rebuild the span ledger")
	def := stdio.getenv("LOGLINE_DATA")
	if def == "" {
		def = server.DefaultConfig().Data
	}
	cmd.PersistentFlags().StringVar(&data, "data", def, "data directory (env LOGLINE_DATA)")
	cmd.AddCommand(
		newLedgerVerifyCmd(stdio, &data),
		newLedgerTailCmd(stdio, &data),
		newLedgerProofCmd(stdio, &data),
		newLedgerCheckpointCmd(stdio, &data),
		newLedgerKeyCmd(stdio, &data),
		newLedgerReindexCmd(stdio, &data),
		newLedgerVerifyReceiptCmd(stdio, &data),
		newLedgerVerifyProofCmd(stdio, &data),
		newLedgerExportCmd(stdio, &data),
		newLedgerVerifyExportCmd(stdio, &data),
		newLedgerSnapshotCmd(stdio, &data),
		newLedgerRestoreCmd(stdio, &data),
	)
	return cmd
}

// checkData fails with a usage error when dir holds no ledger.
func checkData(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "ledger", "key.pub")); err != nil {
		return usageErr("no ledger in %s (--data)", dir)
	}
	return nil
}

// openReadOnly opens the ledger in dir read-only, as the commands that
// inspect it beside a running server do.
func openReadOnly(dir string) (*ledger.Ledger, error) {
	if err := checkData(dir); err != nil {
		return nil, err
	}
	return ledger.Open(dir, ledger.Config{ReadOnly: true})
}

// canonicalBody checks that a record body is in canonical form.
func canonicalBody(kind string, body []byte) error {
	c, err := span.Canonicalize(body)
	if err != nil {
		return err
	}
	if !bytes.Equal(c, body) {
		return errors.New("not in canonical form")
	}
	return nil
}

// keyFlagHelp documents --key of the commands that check the ledger, receipts
// and proofs.
const keyFlagHelp = `the ledger's verifier key, as 'logline ledger key' prints it (name+hash+key,
e.g. logline.local/ledger+1a2b3c4d+AbC...), or a file holding one: a value
that parses as a verifier key is the key, any other names a file
(default: the ledger's key.pub in --data)`

// signingKeyPrefix starts a signed-note private key, which --key refuses
// without repeating it.
const signingKeyPrefix = "PRIVATE+KEY+"

// readKey returns the verifier key that --key gives: the value itself when it
// parses as a verifier key (name+hash+key; the name usually has a '/', the
// base64 key may have '/' and '+'), otherwise the key held by the file the
// value names. The empty value means the ledger's own key.pub in dir.
func readKey(arg, dir string) (string, error) {
	if arg == "" {
		b, err := os.ReadFile(filepath.Join(dir, "ledger", "key.pub"))
		if err != nil {
			return "", usageErr("no verifier key: pass --key (%v)", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if strings.HasPrefix(arg, signingKeyPrefix) {
		return "", usageErr("--key is a signing (private) key; pass its verifier key (logline ledger key prints it)")
	}
	key := strings.TrimSpace(arg)
	_, keyErr := ledgerfmt.NewVerifier(key)
	if keyErr == nil {
		return key, nil
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", usageErr("--key %q is neither a verifier key (%v) nor a readable file (%v)", arg, keyErr, err)
	}
	key = strings.TrimSpace(string(b))
	if strings.HasPrefix(key, signingKeyPrefix) {
		return "", usageErr("--key %q: the file holds a signing (private) key; pass its verifier key (logline ledger key prints it)", arg)
	}
	if _, err := ledgerfmt.NewVerifier(key); err != nil {
		return "", usageErr("--key %q: the file holds no verifier key (%v)", arg, err)
	}
	return key, nil
}

func newLedgerVerifyCmd(stdio Stdio, data *string) *cobra.Command {
	var key, config string
	var asJSON, strict, noProgress bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every byte the server trusts: records, Merkle tree, checkpoint, receipts journal and indexes",
		Long: `verify reads every record of the ledger and checks its framing, CRC and leaf
hash, that sequence numbers have no gaps and times never go backwards, that
each span is in canonical form, that the signed checkpoint verifies and
matches the records, that the signing key matches key.pub, and that every
receipts journal line matches its commit. It then checks the files derived
from the records as far as the server trusts them: every position and commit
entry of the indexes, every stored node of the Merkle tree (recomputed from
the records), every lookup run (checksums, order, and entries against the
records' keys), and the index and tree state files. Last, it derives the
ledger again under the bundle the server runs (--config names the server's
configuration if it sets one) and compares the derived streams, their
indexes and the derivation snapshot with the stored ones, byte for byte.
Then it checks the other files the server keeps: the standard bundle's key
pair; the token signing keys and jwks/ring.json, the service accounts and
the redaction key against the audit records of the ledger (which describe
each of them); the bootstrap operator's credentials against its account;
the tenant watcher's sealed state. A tenant file (cfg/tenants) that differs
from what the ledger last recorded for its tenant is operator input, not
damage: a note says so.

It exits 0 when everything is intact, and 1 naming the first bad file,
offset (and, in a segment, sequence number) and what was expected otherwise
(every damaged state file, one line each: corrupt: FILE: what is wrong).
A torn tail (a partial record at the end of the last segment, after the
signed checkpoint: a write a crash cut short, never acknowledged) is
reported but is not damage: the next open moves it aside. --strict makes it
exit 1 too. Damage to the derived files says so; the next start (or
'logline ledger reindex') rebuilds them from the segments.

It only reads, and works beside a running server: it then checks what the
server's latest signed checkpoint covers, and says so.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkData(*data); err != nil {
				return err
			}
			vkey := ""
			if key != "" {
				var err error
				if vkey, err = readKey(key, *data); err != nil {
					return err
				}
			}
			p, err := newReporter(stdio, noProgress)
			if err != nil {
				return err
			}
			start := time.Now()
			recs := server.NewStateRecords(*data)
			rep, err := ledger.Verify(*data, ledger.VerifyConfig{
				VerifierKey: vkey,
				CheckBody: func(kind string, body []byte) error {
					recs.Observe(kind, body)
					return canonicalBody(kind, body)
				},
				Progress: p.Func("verifying records", progress.Bytes),
			})
			p.Clear()
			if err != nil {
				return err
			}
			var drep *cycle.VerifyReport
			var srep *server.StateReport
			if rep.Problem == nil {
				cfg, err := serverConfig(stdio, config, *data)
				if err != nil {
					return err
				}
				drep, err = verifyDerived(cfg, rep.Live != nil, p.Func("verifying derived streams", progress.Records))
				p.Clear()
				if err != nil {
					return err
				}
				srep = server.VerifyState(cfg, recs, rep.Live != nil)
			}
			bad := rep.Problem != nil || (strict && rep.TornTail != nil) || (drep != nil && drep.Problem != nil) || (srep != nil && !srep.OK())
			if asJSON {
				writeVerifyJSON(stdio.Out, rep, drep, srep)
			} else {
				writeVerifyText(stdio.Out, rep, drep, time.Since(start))
				writeStateText(stdio.Out, srep)
			}
			if bad {
				return silentExit(ExitBad)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "the server's YAML configuration (for its bundle)")
	cmd.Flags().StringVar(&key, "key", "", keyFlagHelp)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&strict, "strict", false, "exit 1 on a torn tail too")
	addNoProgressFlag(cmd, &noProgress)
	return cmd
}

func corruptJSON(c *ledger.CorruptError) map[string]any {
	m := map[string]any{"offset": c.Offset, "reason": c.Reason, "where": c.Where(), "derived": c.Derived}
	if c.File != "" {
		m["file"] = c.File
	} else {
		m["segment"], m["seq"] = c.Segment, c.Seq
	}
	return m
}

// verifyDerived compares the derived store with a fresh derivation of the
// ledger, opened read-only, reporting how far it got (if report is not nil).
func verifyDerived(cfg server.Config, live bool, report func(done, total int64)) (*cycle.VerifyReport, error) {
	l, err := ledger.Open(cfg.Data, ledger.Config{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	return server.VerifyDerived(cfg, l, live, report)
}

func derivedJSON(d *cycle.VerifyReport) map[string]any {
	m := map[string]any{"ok": d.Problem == nil, "cursor": d.Cursor, "tenants": d.Tenants, "events": d.Events, "files": d.Files, "bytes": d.Bytes}
	if d.Stale != "" {
		m["not_checked"] = d.Stale
	}
	if p := d.Problem; p != nil {
		m["problem"] = map[string]any{"file": "derived/" + p.File, "tenant": p.Tenant, "offset": p.Offset, "want": p.Want, "found": p.Found}
	}
	return m
}

func writeVerifyJSON(w io.Writer, rep *ledger.VerifyReport, drep *cycle.VerifyReport, srep *server.StateReport) {
	out := map[string]any{"ok": rep.Problem == nil, "records": rep.Records, "segments": rep.Segments,
		"commits": rep.Commits, "bytes": rep.Bytes, "root": rep.Root, "journal_lines": rep.Journal, "index": rep.Index}
	if rep.IndexNote != "" {
		out["index_note"] = rep.IndexNote
	}
	if len(rep.Marks) > 0 {
		out["marks"] = rep.Marks
	}
	if rep.Checkpoint != nil {
		out["checkpoint_size"] = rep.Checkpoint.Size
	}
	if h := rep.Live; h != nil {
		out["live"] = map[string]any{"pid": h.PID, "command": h.Command, "started": h.Started}
	}
	if rep.TornTail != nil {
		out["torn_tail"] = corruptJSON(rep.TornTail)
	}
	if rep.Problem != nil {
		out["problem"] = corruptJSON(rep.Problem)
	}
	if drep != nil {
		out["derived"] = derivedJSON(drep)
		out["ok"] = rep.Problem == nil && drep.Problem == nil
	}
	if srep != nil {
		out["state"] = stateJSON(srep)
		out["ok"] = out["ok"].(bool) && srep.OK()
	}
	printJSON(w, out)
}

func writeVerifyText(w io.Writer, rep *ledger.VerifyReport, drep *cycle.VerifyReport, took time.Duration) {
	if h := rep.Live; h != nil {
		size := uint64(0)
		if rep.Checkpoint != nil {
			size = rep.Checkpoint.Size
		}
		fmt.Fprintf(w, "note: %s holds the data directory; checked what its signed checkpoint of size %d covers\n", h, size)
	}
	for _, m := range rep.Marks {
		fmt.Fprintf(w, "note: %s\n", m)
	}
	if t := rep.TornTail; t != nil {
		fmt.Fprintf(w, "torn tail: %s: %s\n", t.Where(), t.Reason)
	}
	if pr := rep.Problem; pr != nil {
		if pr.Derived {
			fmt.Fprintf(w, "corrupt: %s: %s (derived from the segments: rebuilt at the next start, or by logline ledger reindex)\n", pr.Where(), pr.Reason)
		} else {
			fmt.Fprintf(w, "corrupt: %s: %s\n", pr.Where(), pr.Reason)
		}
		return
	}
	ck := "no checkpoint yet"
	if rep.Checkpoint != nil {
		ck = fmt.Sprintf("signed checkpoint of size %d verified", rep.Checkpoint.Size)
	}
	fmt.Fprintf(w, "ok: %d records in %d segments (%s), %d commits, root %s; %s; %d receipts journal lines checked; index: %d positions, %d commit entries, %d lookup entries, %d tree nodes checked (%s)\n",
		rep.Records, rep.Segments, bytesize.Format(rep.Bytes), rep.Commits, rep.Root, ck, rep.Journal,
		rep.Index["positions"], rep.Index["batches"], rep.Index["runs"], rep.Index["tree"], took.Round(time.Millisecond))
	if rep.IndexNote != "" {
		fmt.Fprintf(w, "note: %s\n", rep.IndexNote)
	}
	switch {
	case drep == nil:
	case drep.Problem != nil:
		fmt.Fprintf(w, "corrupt: derived/%s (derived from the ledger: rebuilt at the next start, or by logline ledger reindex)\n", drep.Problem)
	case drep.Stale != "":
		fmt.Fprintf(w, "derived: not checked: %s\n", drep.Stale)
	default:
		fmt.Fprintf(w, "derived: ok: %d events of %d tenants in %d files (%s) match a fresh derivation of the first %d records\n",
			drep.Events, drep.Tenants, drep.Files, bytesize.Format(drep.Bytes), drep.Cursor)
	}
}

// stateChecked lists what VerifyState checked.
func stateChecked(r *server.StateReport) []string {
	var out []string
	if r.BundleKey {
		out = append(out, "bundle key pair")
	}
	if id := r.Identity; id != nil {
		keys := fmt.Sprintf("%d signing keys", id.Keys)
		if id.Ring {
			keys += " and ring.json"
		}
		out = append(out, keys, fmt.Sprintf("%d service accounts (%d with their secret)", id.Accounts, id.Secrets))
		if id.Users > 0 {
			out = append(out, fmt.Sprintf("%d users", id.Users))
		}
	}
	if r.Operator {
		out = append(out, "operator.json")
	}
	if r.RedactKey {
		out = append(out, "redaction key")
	}
	if r.Applied {
		out = append(out, "tenant state")
	}
	if r.TenantFiles > 0 {
		out = append(out, fmt.Sprintf("%d tenant files", r.TenantFiles))
	}
	if r.Outbox > 0 {
		out = append(out, fmt.Sprintf("runtime/outbox (%d lines)", r.Outbox))
	}
	if r.KVKeys > 0 {
		out = append(out, fmt.Sprintf("runtime/kv.json (%d keys)", r.KVKeys))
	}
	return out
}

func stateJSON(r *server.StateReport) map[string]any {
	m := map[string]any{"ok": r.OK(), "checked": stateChecked(r), "audit_records": r.Audits}
	if len(r.Problems) > 0 {
		m["problems"] = r.Problems
	}
	if len(r.Notes) > 0 {
		m["notes"] = r.Notes
	}
	return m
}

// writeStateText prints VerifyState's findings: each damaged file, or what
// was checked; then the notes.
func writeStateText(w io.Writer, r *server.StateReport) {
	if r == nil {
		return
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "corrupt: %s: %s\n", p.File, p.Reason)
	}
	switch checked := stateChecked(r); {
	case !r.OK():
	case len(checked) == 0:
		fmt.Fprintf(w, "state: ok: no state files\n")
	default:
		fmt.Fprintf(w, "state: ok: %s checked against %d audit records\n", strings.Join(checked, ", "), r.Audits)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s: %s\n", n.File, n.Reason)
	}
}

func newLedgerTailCmd(stdio Stdio, data *string) *cobra.Command {
	var from int64
	var follow bool
	var poll time.Duration
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print records as stored, from a sequence number, optionally following new ones",
		Long: `tail prints the ledger's records, one line each, exactly as stored in the
segments. --from starts at a sequence number (negative: that many from the
end). --follow keeps printing records as they become durable.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkData(*data); err != nil {
				return err
			}
			ctx := cmd.Context()
			next := uint64(0)
			first := true
			for {
				l, err := ledger.Open(*data, ledger.Config{ReadOnly: true})
				if err != nil {
					return err
				}
				if first {
					first = false
					switch {
					case from < 0 && uint64(-from) <= l.Next():
						next = l.Next() - uint64(-from)
					case from < 0:
						next = 0
					default:
						next = uint64(from)
					}
				}
				n, err := printFrom(l, next, stdio.Out)
				l.Close()
				if err != nil {
					return err
				}
				next = n
				if !follow {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(poll):
				}
			}
		},
	}
	cmd.Flags().Int64Var(&from, "from", 0, "first sequence number (negative: from the end)")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing new records")
	cmd.Flags().DurationVar(&poll, "poll", 250*time.Millisecond, "how often --follow looks for new records")
	return cmd
}

// printFrom prints the records from seq next on and returns the cursor after
// the last one printed.
func printFrom(l *ledger.Ledger, next uint64, w io.Writer) (uint64, error) {
	if next >= l.Next() {
		return next, nil
	}
	r, err := l.NewReader(next)
	if err != nil {
		return next, err
	}
	defer r.Close()
	for {
		line, err := r.NextLine()
		if errors.Is(err, io.EOF) {
			return r.Cursor(), nil
		}
		if err != nil {
			return r.Cursor(), err
		}
		if _, err := fmt.Fprintf(w, "%s\n", line); err != nil {
			return r.Cursor(), err
		}
	}
}

func newLedgerProofCmd(stdio Stdio, data *string) *cobra.Command {
	var seq, size int64
	cmd := &cobra.Command{
		Use:   "proof",
		Short: "Print the RFC 6962 inclusion proof of a record",
		Long: `proof prints, as JSON, the inclusion proof of record --seq in the tree of
--size records (default: the latest signed checkpoint): leaf index, tree size,
leaf hash, the path hashes, and the root they lead to.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if seq < 0 {
				return usageErr("--seq is required and must be a record's sequence number")
			}
			if size < 0 {
				return usageErr("--size must not be negative")
			}
			l, err := openReadOnly(*data)
			if err != nil {
				return err
			}
			defer l.Close()
			p, err := l.Prove(cmd.Context(), uint64(seq), uint64(size))
			if err != nil {
				return badErr("%v", err)
			}
			root, err := l.RootAt(cmd.Context(), p.TreeSize)
			if err != nil {
				return err
			}
			return printJSON(stdio.Out, proofJSON{Proof: p, Root: root})
		},
	}
	cmd.Flags().Int64Var(&seq, "seq", -1, "sequence number of the record")
	cmd.Flags().Int64Var(&size, "size", 0, "tree size (default: the latest checkpoint's)")
	return cmd
}

type proofJSON struct {
	ledgerfmt.Proof
	Root ledgerfmt.Hash `json:"root"`
}

func newLedgerCheckpointCmd(stdio Stdio, data *string) *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint",
		Short: "Print the latest signed checkpoint (a C2SP signed note)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkData(*data); err != nil {
				return err
			}
			b, err := os.ReadFile(filepath.Join(*data, "ledger", "checkpoint"))
			if err != nil {
				return badErr("no checkpoint: %v", err)
			}
			vkey, err := readKey("", *data)
			if err != nil {
				return err
			}
			v, err := ledgerfmt.NewVerifier(vkey)
			if err != nil {
				return err
			}
			if _, err := v.OpenCheckpoint(b); err != nil {
				return badErr("checkpoint does not verify: %v", err)
			}
			_, err = stdio.Out.Write(b)
			return err
		},
	}
}

func newLedgerKeyCmd(stdio Stdio, data *string) *cobra.Command {
	return &cobra.Command{
		Use:   "key",
		Short: "Print the ledger's verifier key (signed-note name+hash+key form)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkData(*data); err != nil {
				return err
			}
			vkey, err := readKey("", *data)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdio.Out, vkey)
			return nil
		},
	}
}

func newLedgerReindexCmd(stdio Stdio, data *string) *cobra.Command {
	var config string
	var unroutedOK, noProgress bool
	cmd := &cobra.Command{
		Use:   "reindex",
		Short: "Rebuild the indexes, the Merkle tree files, the receipts journal and the derived streams",
		Long: `reindex deletes everything derived from the segments (ledger/index, the
receipts journal, and the derived streams in derived/) and rebuilds it from the
segments, replaying the ledger through the neutral cycle with the bundle the
server runs (--config names the server's configuration if it sets one). The
result is identical to what was there. The server must not be running.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkData(*data); err != nil {
				return err
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
			n, events, err := server.Reindex(cmd.Context(), cfg, newLogger(stdio.Err, "text", "warn"), unroutedOK, stagedProgress(p))
			p.Clear()
			if err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "reindexed %d records and derived %d events in %s\n", n, events, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "the server's YAML configuration (for its bundle)")
	cmd.Flags().BoolVar(&unroutedOK, "unrouted-ok", false, "reindex even if the bundle's routers have not seen every record (their actions are then never performed)")
	addNoProgressFlag(cmd, &noProgress)
	return cmd
}

func newLedgerVerifyReceiptCmd(stdio Stdio, data *string) *cobra.Command {
	var key, spanFile string
	cmd := &cobra.Command{
		Use:   "verify-receipt RECEIPT.json --span SPAN.json [--key KEY]",
		Short: "Check a receipt against the span it acknowledges, offline",
		Long: `verify-receipt checks, with nothing but the files and the ledger's public key,
that a receipt acknowledges exactly this span: the leaf hash, its place in the
signed group commit, the signature and the receipt id. The span may be in any
JSON form; it is canonicalized first. Use "-" to read either file from stdin.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("want one receipt file")
			}
			if spanFile == "" {
				return usageErr("--span is required")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := verifierFor(key, *data)
			if err != nil {
				return err
			}
			rb, err := readArg(args[0], stdio.In)
			if err != nil {
				return err
			}
			var r ledgerfmt.Receipt
			if err := unmarshalReceipt(rb, &r); err != nil {
				return badErr("receipt: %v", err)
			}
			sb, err := readArg(spanFile, stdio.In)
			if err != nil {
				return err
			}
			body, err := span.Canonicalize(bytes.TrimSpace(sb))
			if err != nil {
				return badErr("span: %v", err)
			}
			if err := v.VerifyReceipt(&r, ledgerfmt.KindSpan, body); err != nil {
				return badErr("%v", err)
			}
			fmt.Fprintf(stdio.Out, "ok: span %s of %s is record %d, signed by %s at %s\n",
				r.SpanID, r.Tenant, r.Seq, r.KID, r.TS.UTC().Format(time.RFC3339Nano))
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", keyFlagHelp)
	cmd.Flags().StringVar(&spanFile, "span", "", "the span the receipt acknowledges")
	return cmd
}

// verifierFor returns the verifier of the key given as --key (see readKey),
// or of the ledger in data.
func verifierFor(key, data string) (*ledgerfmt.Verifier, error) {
	vkey, err := readKey(key, data)
	if err != nil {
		return nil, err
	}
	v, err := ledgerfmt.NewVerifier(vkey)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return v, nil
}

// unmarshalReceipt accepts a receipt alone or wrapped in an ingest result
// ({"receipt":{...}}).
func unmarshalReceipt(b []byte, r *ledgerfmt.Receipt) error {
	var wrapped struct {
		Receipt *ledgerfmt.Receipt `json:"receipt"`
	}
	if err := json.Unmarshal(b, &wrapped); err == nil && wrapped.Receipt != nil {
		*r = *wrapped.Receipt
		return nil
	}
	return json.Unmarshal(b, r)
}

func readArg(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return b, nil
}

func newLedgerVerifyProofCmd(stdio Stdio, data *string) *cobra.Command {
	var key, ckptFile string
	cmd := &cobra.Command{
		Use:   "verify-proof PROOF.json --checkpoint CHECKPOINT [--key KEY]",
		Short: "Check an inclusion proof against a signed checkpoint, offline",
		Long: `verify-proof checks that the proof (as printed by 'logline ledger proof' or
GET /ledger/proof) leads from its leaf to the root of the signed checkpoint
of the same tree size, and that the checkpoint is signed by the key.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("want one proof file")
			}
			if ckptFile == "" {
				return usageErr("--checkpoint is required")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := verifierFor(key, *data)
			if err != nil {
				return err
			}
			pb, err := readArg(args[0], stdio.In)
			if err != nil {
				return err
			}
			var p proofJSON
			if err := json.Unmarshal(pb, &p); err != nil {
				return badErr("proof: %v", err)
			}
			cb, err := readArg(ckptFile, stdio.In)
			if err != nil {
				return err
			}
			c, err := v.OpenCheckpoint(cb)
			if err != nil {
				return badErr("%v", err)
			}
			if p.TreeSize != c.Size {
				return badErr("the proof is for a tree of %d records, the checkpoint for %d", p.TreeSize, c.Size)
			}
			path := make([][]byte, len(p.Path))
			for i := range p.Path {
				path[i] = p.Path[i][:]
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, p.TreeSize, p.Leaf[:], path, c.Root[:]); err != nil {
				return badErr("proof does not lead to the checkpoint's root: %v", err)
			}
			fmt.Fprintf(stdio.Out, "ok: leaf %d is in the signed tree of size %d\n", p.Index, c.Size)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", keyFlagHelp)
	cmd.Flags().StringVar(&ckptFile, "checkpoint", "", "the signed checkpoint (a file, or - for stdin)")
	return cmd
}

// serverConfig is the configuration the server on data runs with, as serve
// reads it: the defaults, the YAML file (config, or env LOGLINE_CONFIG),
// then the LOGLINE_* environment variables. Commands that replay the
// ledger with the server's bundle (verify, reindex) read it.
func serverConfig(stdio Stdio, config, data string) (server.Config, error) {
	cfg := server.DefaultConfig()
	if config == "" {
		config = stdio.getenv("LOGLINE_CONFIG")
	}
	if config != "" {
		if err := cfg.LoadFile(config); err != nil {
			return cfg, usageErr("config: %v", err)
		}
	}
	if err := cfg.LoadEnv(stdio.getenv); err != nil {
		return cfg, usageErr("environment: %v", err)
	}
	cfg.Data = data
	return cfg, nil
}
