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
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Segments   int
	Records    uint64
	Bytes      int64
	Commits    uint64
	Root       Hash        // root of the tree of all records
	Checkpoint *Checkpoint // the latest signed checkpoint, if any
	// Journal is the number of receipts journal lines checked.
	Journal uint64
	// Problem is the first problem found, nil when the ledger is intact.
	Problem *CorruptError
}

// Verify reads every record of the ledger in dir (the data directory) and
// checks, without writing anything: each record's framing, CRC and leaf
// hash; sequence numbers without gaps; ts never decreasing; the signed
// checkpoint's signature and that its root is the root of the records it
// covers; and every line of the receipts journal against the commit it
// describes (signature, batch root). It stops at the first problem, which it
// reports with its segment, offset and sequence number. The error is for
// failures to read at all.
func Verify(dir string, opts VerifyOptions) (*VerifyReport, error) {
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	ledgerDir := fs.PathJoin(dir, "ledger")
	vkey := opts.VerifierKey
	if vkey == "" {
		b, err := readFile(fs, fs.PathJoin(ledgerDir, "key.pub"))
		if err != nil {
			return nil, fmt.Errorf("ledger: read verifier key: %w", err)
		}
		vkey = strings.TrimSpace(string(b))
	}
	v, err := NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	segDir := fs.PathJoin(ledgerDir, "segments")
	rep := &VerifyReport{}
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
			rep.Problem = &CorruptError{Segment: "checkpoint", Reason: err.Error()}
			return rep, nil
		}
		rep.Checkpoint = c
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}

	jr, err := newJournalReader(fs, fs.PathJoin(dir, "receipts"))
	if err != nil {
		return nil, err
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
		runLeaves []Hash
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
		line, ok, err := jr.next()
		switch {
		case err != nil:
			fail("receipts", 0, runFirst, "%v", err)
		case !ok:
			// The journal may trail the segments; the rest is unchecked.
		default:
			rep.Journal++
			var br BatchReceipt
			root := newBatchTree(runLeaves).root()
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
	var done int64
	checkCkpt(segmentName(1), 0)
	for i, n := range segs {
		name := segmentName(n)
		f, err := fs.Open(fs.PathJoin(segDir, name), vfs.SequentialReadsOption)
		if err != nil {
			return nil, fmt.Errorf("ledger: open %s: %w", name, err)
		}
		sc := newLineScanner(f, 0)
		var lines int
		for problem == nil {
			line, at, err := sc.next()
			if errors.Is(err, io.EOF) {
				if p := sc.partial(); len(p) > 0 {
					why := "partial record"
					if i == len(segs)-1 {
						why += " (a torn tail: opening the ledger moves it aside)"
					}
					fail(name, at, next, "%s of %d bytes", why, len(p))
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
				fail(name, at, next, "%v", err)
			case r.Seq != next:
				fail(name, at, next, "sequence %d where %d was expected", r.Seq, next)
			case r.TS.Before(lastTS):
				fail(name, at, next, "ts %s before the previous record's", r.TS.Format(tsLayout))
			}
			if problem != nil {
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
			runLeaves = append(runLeaves, r.Leaf)
			rng.append(r.Leaf, nil)
			checkCkpt(name, at)
			next++
			lastTS = r.TS
			rep.Bytes += int64(len(line)) + 1
			if lines++; lines%65536 == 0 && opts.Progress != nil {
				opts.Progress(done+at, total)
			}
		}
		f.Close()
		if problem != nil {
			break
		}
	}
	endRun("end", 0)
	if problem == nil {
		if c := rep.Checkpoint; c != nil && c.Size > next {
			fail(segmentName(uint32(len(segs))), 0, next, "the signed checkpoint covers %d records but the segments hold %d", c.Size, next)
		}
	}
	if problem == nil {
		if line, ok, err := jr.next(); err != nil || ok {
			fail("receipts", 0, next, "the receipts journal lists commits past the last record: %.80s", line)
		}
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
