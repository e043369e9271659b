package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/datadir"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// FS is the file system; nil means the real one.
	FS vfs.FS
	// VerifierKey is the ledger's public key in signed-note form. Empty
	// means the ledger's own ledger/key.pub; an auditor passes the key they
	// trust instead.
	VerifierKey string
	// CheckBody, if set, is called with every record's kind and body, e.g.
	// to check that a span body is in canonical form.
	CheckBody func(kind string, body []byte) error
	// Progress, if set, is called now and then with bytes done and total.
	Progress func(done, total int64)
	// Live says a writer holds the data directory: only what its latest
	// signed checkpoint covers is checked. On the real file system Verify
	// finds that out itself (package datadir).
	Live bool
	// MaxTornBytes is how far from the end of the last segment an
	// unreadable record may start and still be a torn tail (an
	// unacknowledged write cut short by a crash). Default: what a ledger
	// with default Options can leave.
	MaxTornBytes int64
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Segments   int
	Records    uint64
	Bytes      int64
	Commits    uint64
	Root       ledgerfmt.Hash        // root of the tree of the records checked
	Checkpoint *ledgerfmt.Checkpoint // the latest signed checkpoint, if any
	// Journal is the number of receipts journal lines checked.
	Journal uint64
	// Index counts the entries of the derived files checked against the
	// records: "positions", "batches", "runs" (lookup entries), "tree"
	// (stored nodes). IndexNote says why a part was not checked.
	Index     map[string]uint64
	IndexNote string
	// Live names the writer that held the directory during the check; the
	// check then ended at its signed checkpoint.
	Live *datadir.Holder
	// Marks are what a server left for its next start: damage it found in
	// the records (ledger/DAMAGED) or in the index (ledger/index/REBUILD).
	Marks []string
	// TornTail is a partial or unreadable record at the end of the last
	// segment, after the signed checkpoint and within what a crash can
	// leave unsynced: an unacknowledged write, which the next open moves
	// aside. It is not counted as a problem.
	TornTail *CorruptError
	// Problem is the first problem found, nil when the ledger is intact.
	Problem *CorruptError
}

// Verify reads every byte of the ledger in dir (the data directory) that a
// server trusts, without writing anything, and checks:
//
//   - each record's framing, CRC and leaf hash; sequence numbers without
//     gaps; ts never decreasing;
//   - the signed checkpoint's signature, and that its root is the root of
//     the records it covers; that the signing key matches key.pub;
//   - every line of the receipts journal against the commit it describes
//     (signature, batch root);
//   - the derived files under ledger/index as far as their state files say
//     they are complete: every position and commit entry against the
//     records, every stored Merkle tree node against the tree recomputed
//     from the records, every lookup run's checksums, order and entries
//     (counted and summed against the records' keys), and the state files'
//     checksums. Damage there is reported like damage to the records; the
//     report says it is repaired by a rebuild.
//
// It stops at the first problem, which it reports with its file, offset and
// (for records) sequence number. A torn tail is reported in TornTail, not
// as a problem. The error is for failures to read at all.
func Verify(dir string, opts VerifyOptions) (*VerifyReport, error) {
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	if opts.MaxTornBytes <= 0 {
		var o Options
		o.setDefaults()
		opts.MaxTornBytes = o.maxTornBytes()
	}
	rep := &VerifyReport{Index: map[string]uint64{}}
	if fs == vfs.Default {
		h, err := datadir.Probe(dir)
		if err != nil {
			return nil, err
		}
		if h != nil {
			rep.Live, opts.Live = h, true
		}
	}
	ledgerDir := fs.PathJoin(dir, "ledger")
	vkey := opts.VerifierKey
	pub, err := readFile(fs, fs.PathJoin(ledgerDir, "key.pub"))
	if vkey == "" {
		if err != nil {
			return nil, fmt.Errorf("ledger: read verifier key: %w", err)
		}
		vkey = strings.TrimSpace(string(pub))
	}
	v, err := ledgerfmt.NewVerifier(vkey)
	if err != nil {
		if opts.VerifierKey == "" {
			rep.Problem = &CorruptError{File: "ledger/key.pub", Reason: err.Error()}
			return rep, nil
		}
		return nil, err
	}
	// The signing key, when this copy has it, must be the one that key.pub
	// names: it keys the index hashes and signs what comes next.
	var hasher *keyHasher
	if signer, err := loadOrCreateKey(fs, ledgerDir, "", nil, false); err == nil {
		if len(pub) > 0 && signer.VerifierKey() != strings.TrimSpace(string(pub)) {
			rep.Problem = &CorruptError{File: "ledger/key", Reason: "the signing key does not match ledger/key.pub"}
			return rep, nil
		}
		h := newKeyHasher(signer)
		hasher = &h
	} else if !errors.Is(err, os.ErrNotExist) {
		rep.Problem = &CorruptError{File: "ledger/key", Reason: err.Error()}
		return rep, nil
	}

	segDir := fs.PathJoin(ledgerDir, "segments")
	segs, err := listSegments(fs, segDir)
	if err != nil {
		var ce *CorruptError
		if errors.Is(err, ErrCorrupt) {
			rep.Problem = &CorruptError{Reason: err.Error()}
			return rep, nil
		} else if errors.As(err, &ce) {
			rep.Problem = ce
			return rep, nil
		}
		return nil, err
	}
	rep.Segments = len(segs)

	if b, err := readFile(fs, fs.PathJoin(ledgerDir, "checkpoint")); err == nil {
		c, err := v.OpenCheckpoint(b)
		if err != nil {
			rep.Problem = &CorruptError{File: "ledger/checkpoint", Reason: err.Error()}
			return rep, nil
		}
		rep.Checkpoint = c
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	limit := ^uint64(0)
	if opts.Live {
		limit = 0
		if rep.Checkpoint != nil {
			limit = rep.Checkpoint.Size
		}
	}

	jr, err := newJournalReader(fs, fs.PathJoin(dir, "receipts"))
	if err != nil {
		return nil, err
	}
	ix, err := openIndexCheck(fs, ledgerDir, hasher, limit, opts.Live)
	if err != nil {
		return nil, err
	}
	defer ix.close()
	if ix.problem != nil {
		rep.Problem = ix.problem
		return rep, nil
	}
	var total int64
	for _, n := range segs {
		if st, err := fs.Stat(fs.PathJoin(segDir, segmentName(n))); err == nil {
			total += st.Size()
		}
	}

	var (
		rng       compactRange
		next      uint64
		lastTS    time.Time
		runTS     time.Time
		runFirst  uint64
		runLeaves []ledgerfmt.Hash
		scratch   []byte
		problem   *CorruptError
	)
	fail := func(seg string, off int64, seq uint64, format string, args ...any) {
		if problem == nil {
			problem = &CorruptError{Segment: seg, Offset: off, Seq: seq, Reason: fmt.Sprintf(format, args...)}
		}
	}
	endRun := func(seg string, off int64) {
		if len(runLeaves) == 0 || problem != nil {
			return
		}
		rep.Commits++
		root := newBatchTree(runLeaves).root()
		if p := ix.commit(runFirst, uint64(len(runLeaves)), runTS, root); p != nil {
			problem = p
			return
		}
		line, ok, err := jr.next()
		switch {
		case err != nil:
			fail("receipts", 0, runFirst, "%v", err)
		case !ok:
			// The journal may trail the segments; the rest is unchecked.
		default:
			rep.Journal++
			var br ledgerfmt.BatchReceipt
			switch {
			case json.Unmarshal(line, &br) != nil:
				fail("receipts", 0, runFirst, "journal line is not a batch receipt: %.80s", line)
			case br.Batch.First != runFirst || br.Batch.Size != uint64(len(runLeaves)):
				fail(seg, off, runFirst, "journal has commit [%d,+%d), segments have [%d,+%d)", br.Batch.First, br.Batch.Size, runFirst, len(runLeaves))
			case br.Batch.Root != root:
				fail(seg, off, runFirst, "commit %d: journal root does not match the records", runFirst)
			case !br.TS.Equal(runTS):
				fail(seg, off, runFirst, "commit %d: journal ts does not match the records", runFirst)
			default:
				if err := v.VerifyBatch(&br); err != nil {
					fail(seg, off, runFirst, "commit %d: %v", runFirst, err)
				}
			}
		}
		runLeaves = runLeaves[:0]
	}
	checkCkpt := func(seg string, off int64) {
		if c := rep.Checkpoint; c != nil && c.Size == rng.size && problem == nil && rng.root() != c.Root {
			fail(seg, off, c.Size, "the records do not match the signed checkpoint of size %d", c.Size)
		}
	}
	// A bad record is a torn tail when it lies where a crash can leave an
	// unsynced write: the last segment's last bytes, after the checkpoint,
	// and past what was durable when the server found damage, if it did.
	why, damagedBelow, damaged := readDamageMark(fs, fs.PathJoin(ledgerDir, damageMarkName))
	if damaged {
		rep.Marks = append(rep.Marks, "the server found damage in the records ("+why+"); it refuses to start until they are restored")
	}
	if b, err := readFile(fs, fs.PathJoin(ledgerDir, "index", rebuildMarkName)); err == nil {
		rep.Marks = append(rep.Marks, "the server found its index damaged ("+strings.TrimSpace(string(b))+"); it rebuilds it at the next start")
	}
	bad := func(i int, name string, at, size int64, format string, args ...any) {
		if problem != nil {
			return
		}
		reason := fmt.Sprintf(format, args...)
		torn := i == len(segs)-1 && size-at <= opts.MaxTornBytes && (rep.Checkpoint == nil || next >= rep.Checkpoint.Size) && next >= damagedBelow
		if torn {
			rep.TornTail = &CorruptError{Segment: name, Offset: at, Seq: next, Reason: reason + "; a write cut short before it was acknowledged: the next open moves it aside"}
			return
		}
		fail(name, at, next, "%s", reason)
	}
	var done int64
	checkCkpt(segmentName(1), 0)
	for i, n := range segs {
		name := segmentName(n)
		f, err := fs.Open(fs.PathJoin(segDir, name), vfs.SequentialReadsOption)
		if err != nil {
			return nil, fmt.Errorf("ledger: open %s: %w", name, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		size := st.Size()
		sc := newLineScanner(f, 0)
		var lines int
		for problem == nil && rep.TornTail == nil && next < limit {
			line, at, err := sc.next()
			if errors.Is(err, io.EOF) {
				if p := sc.partial(); len(p) > 0 {
					bad(i, name, at, size, "partial record of %d bytes", len(p))
				}
				done += at
				break
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("ledger: read %s: %w", name, err)
			}
			r, err := decodeRecord(line, &scratch)
			switch {
			case err != nil:
				bad(i, name, at, size, "%v", err)
			case r.Seq != next:
				bad(i, name, at, size, "sequence %d where %d was expected", r.Seq, next)
			case r.TS.Before(lastTS):
				bad(i, name, at, size, "ts %s before the previous record's", r.TS.Format(tsLayout))
			}
			if problem != nil || rep.TornTail != nil {
				break
			}
			if opts.CheckBody != nil {
				if err := opts.CheckBody(r.Kind, r.Body); err != nil {
					fail(name, at, next, "%s body: %v", r.Kind, err)
					break
				}
			}
			if !r.TS.Equal(runTS) {
				endRun(name, at)
				runTS, runFirst = r.TS, r.Seq
			}
			if problem != nil {
				break
			}
			if p := ix.record(&r, pos{seg: n, off: at, n: uint32(len(line))}); p != nil {
				problem = p
				break
			}
			runLeaves = append(runLeaves, r.Leaf)
			rng.append(r.Leaf, ix.node)
			if p := ix.treeProblem(); p != nil {
				problem = p
				break
			}
			checkCkpt(name, at)
			next++
			lastTS = r.TS
			rep.Bytes += int64(len(line)) + 1
			if lines++; lines%65536 == 0 && opts.Progress != nil {
				opts.Progress(done+at, total)
			}
		}
		f.Close()
		if problem != nil || rep.TornTail != nil || next >= limit {
			break
		}
	}
	endRun("end", 0)
	if problem == nil {
		if c := rep.Checkpoint; c != nil && c.Size > next {
			fail(segmentName(uint32(len(segs))), 0, next, "the signed checkpoint covers %d records but the segments hold %d", c.Size, next)
		}
	}
	if problem == nil && !opts.Live {
		if line, ok, err := jr.next(); err != nil || ok {
			fail("receipts", 0, next, "the receipts journal lists commits past the last record: %.80s", line)
		}
	}
	if problem == nil {
		problem = ix.finish(next, rep)
	}
	if opts.Progress != nil {
		opts.Progress(total, total)
	}
	rep.Records = next
	rep.Root = rng.root()
	rep.Problem = problem
	return rep, nil
}

// journalReader reads the receipts journal's lines in order across files.
type journalReader struct {
	fs    vfs.FS
	dir   string
	names []string
	data  []byte
}

func newJournalReader(fs vfs.FS, dir string) (*journalReader, error) {
	names, err := fs.List(dir)
	if errors.Is(err, os.ErrNotExist) {
		return &journalReader{fs: fs, dir: dir}, nil
	}
	if err != nil {
		return nil, err
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !isJournalName(n) })
	slices.Sort(names)
	return &journalReader{fs: fs, dir: dir, names: names}, nil
}

func (j *journalReader) next() ([]byte, bool, error) {
	for len(j.data) == 0 {
		if len(j.names) == 0 {
			return nil, false, nil
		}
		b, err := readFile(j.fs, j.fs.PathJoin(j.dir, j.names[0]))
		if err != nil {
			return nil, false, err
		}
		j.names = j.names[1:]
		j.data = b
	}
	i := bytes.IndexByte(j.data, '\n')
	if i < 0 {
		line := j.data
		j.data = nil
		return line, true, nil
	}
	line := j.data[:i]
	j.data = j.data[i+1:]
	return line, true, nil
}
