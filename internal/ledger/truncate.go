package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/datadir"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// cutTail moves bytes [at, size) of the segment at path aside, into
// path.<at>.<why> (or path.<at>.<why>.N when that exists), and cuts the
// segment before them. It returns the name of the file they are kept in.
func cutTail(fs vfs.FS, path string, at, size int64, why string) (string, error) {
	aside := asideName(fs, path, at, why)
	if err := copyRange(fs, path, aside, at, size); err != nil {
		return "", err
	}
	if err := rewritePrefix(fs, path, at); err != nil {
		return "", err
	}
	return aside, nil
}

// asideName returns path.<at>.<why>, or path.<at>.<why>.N, whichever does
// not exist yet. Segment listings ignore such names.
func asideName(fs vfs.FS, path string, at int64, why string) string {
	name := fmt.Sprintf("%s.%d.%s", path, at, why)
	for i := 1; fileExists(fs, name); i++ {
		name = fmt.Sprintf("%s.%d.%s.%d", path, at, why, i)
	}
	return name
}

// TruncateAfter moves every record after the first size records of the
// closed ledger in dir aside, so that it opens holding exactly size records:
// what a writer whose Config.Publish failed wrote and never published. The
// bytes of the segment holding record size-1 past that record go to
// ledger/segments/NNNNNN.ndjson.<offset>.unpublished, whole later segments
// to NNNNNN.ndjson.0.unpublished, as Open does with a torn tail; a signed
// checkpoint covering more records goes to ledger/checkpoint.<size>.unpublished,
// and derived files covering more are dropped, to be rebuilt from the
// segments at the next open. It takes the data directory's lock as Open
// does (cfg.FS, cfg.DirLocked, cfg.Holder). Moving nothing aside (the
// ledger holds size records) is not an error; holding fewer is.
//
// The records are not checked beyond finding where record size starts:
// the next Open checks them as always.
func TruncateAfter(dir string, size uint64, cfg Config) error {
	cfg.setDefaults()
	fs := cfg.FS
	if fs == vfs.Default && !cfg.DirLocked {
		lk, err := datadir.Acquire(dir, cfg.Holder)
		if err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
		defer lk.Release()
	}
	ledgerDir := fs.PathJoin(dir, "ledger")
	segDir := fs.PathJoin(ledgerDir, "segments")
	segs, err := listSegments(fs, segDir)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return fmt.Errorf("ledger: truncate after %d records: no segments in %s", size, segDir)
	}
	cut, err := findCut(fs, segDir, segs, size)
	if err != nil {
		return fmt.Errorf("ledger: truncate after %d records: %w", size, err)
	}
	if cut.seg == segs[len(segs)-1] && cut.off == cut.segSize {
		return nil
	}
	if err := dropDerivedPast(fs, ledgerDir, size, cfg); err != nil {
		return err
	}
	// The last segments first: an interrupted truncation is finished by
	// running it again.
	for n := segs[len(segs)-1]; n > cut.seg; n-- {
		path := fs.PathJoin(segDir, segmentName(n))
		aside := asideName(fs, path, 0, "unpublished")
		if err := fs.Rename(path, aside); err != nil {
			return fmt.Errorf("ledger: move segment %s aside: %w", segmentName(n), err)
		}
		if err := syncDir(fs, segDir); err != nil {
			return err
		}
		cfg.Logger.Warn("unpublished records moved aside", "segment", segmentName(n), "kept_in", fs.PathBase(aside))
	}
	if cut.off < cut.segSize {
		aside, err := cutTail(fs, fs.PathJoin(segDir, segmentName(cut.seg)), cut.off, cut.segSize, "unpublished")
		if err != nil {
			return fmt.Errorf("ledger: move unpublished records aside: %w", err)
		}
		cfg.Logger.Warn("unpublished records moved aside", "segment", segmentName(cut.seg), "offset", cut.off,
			"bytes", cut.segSize-cut.off, "kept_in", fs.PathBase(aside))
	}
	return nil
}

// truncation is where record size starts: offset off of segment seg, which
// is segSize bytes long.
type truncation struct {
	seg          uint32
	off, segSize int64
}

// findCut finds where record size starts, or where record size-1 ends: in
// the last segment whose first record is before size (or the first
// segment).
func findCut(fs vfs.FS, segDir string, segs []uint32, size uint64) (truncation, error) {
	for i := len(segs) - 1; i >= 0; i-- {
		n := segs[i]
		sc, err := scanForCut(fs, fs.PathJoin(segDir, segmentName(n)), size)
		if err != nil {
			return truncation{}, err
		}
		if i > 0 && (sc.lines == 0 || sc.first >= size) {
			continue // only records after size, or none
		}
		t := truncation{seg: n, off: sc.at, segSize: sc.size}
		if sc.at < 0 {
			// Record size is not in this segment: it must end with record
			// size-1.
			if size > 0 && (sc.lines == 0 || sc.last != size-1) {
				held := uint64(0)
				if sc.lines > 0 {
					held = sc.last + 1
				}
				return t, fmt.Errorf("the ledger holds %d records", held)
			}
			t.off = sc.end
		}
		return t, nil
	}
	return truncation{}, errors.New("no segments")
}

// segmentScan is what scanForCut found in one segment.
type segmentScan struct {
	size        int64  // the segment's length
	at          int64  // where record size starts; -1 when it is not there
	end         int64  // where the last complete line read ends
	lines       int    // complete lines read
	first, last uint64 // the seq of the first and last of them
}

// scanForCut reads the segment at path up to the line of record size.
func scanForCut(fs vfs.FS, path string, size uint64) (segmentScan, error) {
	s := segmentScan{at: -1}
	f, err := fs.Open(path)
	if err != nil {
		return s, err
	}
	defer f.Close()
	if s.size, err = recordsEnd(f); err != nil {
		return s, fmt.Errorf("read %s: %w", fs.PathBase(path), err)
	}
	sc := newLineScanner(f, 0, s.size)
	var prevTS []byte
	for {
		line, at, err := sc.next()
		if errors.Is(err, io.EOF) {
			s.end = at
			return s, nil
		}
		if err != nil {
			return s, fmt.Errorf("read %s: %w", fs.PathBase(path), err)
		}
		seq, ok := lineSeq(line)
		if !ok {
			return s, &CorruptError{Segment: fs.PathBase(path), Offset: at, Reason: "no sequence number where a record starts"}
		}
		ts := lineTS(line)
		if seq == size {
			if s.lines > 0 && bytes.Equal(ts, prevTS) {
				return s, fmt.Errorf("record %d is inside a commit (it has the ts of record %d)", size, s.last)
			}
			s.at, s.end = at, at
			return s, nil
		}
		if s.lines == 0 {
			s.first = seq
		}
		s.lines++
		s.last = seq
		prevTS = append(prevTS[:0], ts...)
	}
}

// dropDerivedPast sets aside what covers more than size records: the
// signed checkpoint, and the tree and index states (the tree, the receipts
// journal and the index are then rebuilt from the segments at open).
func dropDerivedPast(fs vfs.FS, ledgerDir string, size uint64, cfg Config) error {
	idxDir := fs.PathJoin(ledgerDir, "index")
	ckptPath := fs.PathJoin(ledgerDir, "checkpoint")
	if b, err := readFile(fs, ckptPath); err == nil {
		ckpt, err := openCheckpointFile(fs, ledgerDir, b)
		if err != nil {
			return err
		}
		if ckpt.Size > size {
			aside := fmt.Sprintf("%s.%d.unpublished", ckptPath, ckpt.Size)
			if err := fs.Rename(ckptPath, aside); err != nil {
				return fmt.Errorf("ledger: move checkpoint aside: %w", err)
			}
			if err := syncDir(fs, ledgerDir); err != nil {
				return err
			}
			cfg.Logger.Warn("a checkpoint covering unpublished records moved aside", "size", ckpt.Size, "kept_in", fs.PathBase(aside))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("ledger: read checkpoint: %w", err)
	}
	state := stateFile{path: fs.PathJoin(idxDir, "tree", "state")}
	if ts, ok := state.read(fs); ok && ts.size > size {
		if err := fs.Remove(state.path); err != nil {
			return fmt.Errorf("ledger: drop tree state: %w", err)
		}
		if err := syncDir(fs, fs.PathDir(state.path)); err != nil {
			return err
		}
	}
	if b, err := readFile(fs, fs.PathJoin(idxDir, indexStateName)); err == nil {
		if s, err := parseIndexState(b); err == nil && s.next > size {
			return dropIndexState(fs, idxDir)
		}
	}
	return nil
}

// openCheckpointFile verifies the checkpoint b with the key in ledgerDir.
func openCheckpointFile(fs vfs.FS, ledgerDir string, b []byte) (*ledgerfmt.Checkpoint, error) {
	signer, err := loadOrCreateKey(fs, ledgerDir, "", nil, false)
	if err != nil {
		return nil, err
	}
	return openCheckpoint(signer, b)
}

// lineTS returns the ts of a framed line whose seq was read (nil when the
// line is too short to hold one).
func lineTS(line []byte) []byte {
	at := frameTSAt + seqDigits(line)
	if len(line) < at+tsLen {
		return nil
	}
	return line[at : at+tsLen]
}
