package ledger

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/datadir"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// VerifyConfig configures Verify.
type VerifyConfig struct {
	// FS is the file system; nil means the real one.
	FS vfs.FS
	// VerifierKey is the ledger's public key in signed-note form. Empty
	// means the ledger's own ledger/key.pub; an auditor passes the key they
	// trust instead.
	VerifierKey string
	// CheckBody, if set, is called with every record's kind and body, e.g.
	// to check that a span body is in canonical form.
	CheckBody func(kind string, body []byte) error
	// Progress, if set, is called every progressEvery records and at the
	// end with the segment bytes done and their total.
	Progress func(done, total int64)
	// Live says a writer holds the data directory: only what its latest
	// signed checkpoint covers is checked. On the real file system Verify
	// finds that out itself (package datadir).
	Live bool
	// MaxTornBytes is how far from the end of the last segment an
	// unreadable record may start and still be a torn tail (an
	// unacknowledged write cut short by a crash). Default: what a ledger
	// with default Config can leave.
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
//
// The checks are split by what they check: records (verify_records.go),
// commits and the receipts journal (verify_commits.go), the checkpoint
// (verify_checkpoint.go) and the derived files (verify_index.go).
func Verify(dir string, cfg VerifyConfig) (*VerifyReport, error) {
	v := &verification{fs: cfg.FS, cfg: cfg, rep: &VerifyReport{Index: map[string]uint64{}}}
	if v.fs == nil {
		v.fs = vfs.Default
	}
	if v.cfg.MaxTornBytes <= 0 {
		var c Config
		c.setDefaults()
		v.cfg.MaxTornBytes = c.maxTornBytes()
	}
	err := v.open(dir)
	if v.ix != nil {
		defer v.ix.close()
	}
	if err != nil {
		return nil, err
	}
	if v.rep.Problem != nil {
		return v.rep, nil
	}
	if err := v.checkSegments(); err != nil {
		return nil, err
	}
	v.finish()
	return v.rep, nil
}

// verification is one run of Verify.
type verification struct {
	fs     vfs.FS
	cfg    VerifyConfig
	rep    *VerifyReport
	segDir string
	segs   []uint32
	key    *ledgerfmt.Verifier
	jr     *journalReader
	ix     *indexCheck
	// limit: records from this one on are not checked (beside a writer,
	// what its signed checkpoint does not cover).
	limit uint64
	// damagedBelow: the server found damage while this many records were
	// durable; a bad record below it is no torn tail.
	damagedBelow uint64
	total, done  int64 // bytes of the segments, and read so far
	lines        int   // records read, for progress

	// The records checked so far.
	rng     compactRange
	next    uint64
	lastTS  time.Time
	scratch []byte
	// The commit being read: a run of records with the same ts.
	runTS     time.Time
	runFirst  uint64
	runLeaves []ledgerfmt.Hash

	problem *CorruptError // the first problem found in the records
}

// open reads what the checks start from: the keys, the segments' names,
// the signed checkpoint, the receipts journal, the index files and the
// marks. A problem found there goes to v.rep.Problem.
func (v *verification) open(dir string) error {
	fs := v.fs
	if fs == vfs.Default {
		h, err := datadir.Probe(dir)
		if err != nil {
			return err
		}
		if h != nil {
			v.rep.Live, v.cfg.Live = h, true
		}
	}
	ledgerDir := fs.PathJoin(dir, "ledger")
	hasher, err := v.openKeys(ledgerDir)
	if err != nil || v.rep.Problem != nil {
		return err
	}
	// The checkpoint before the segments' names: beside a live writer, a
	// segment begun after the listing would hold records the checkpoint
	// read later covers.
	if err := v.openCheckpoint(ledgerDir); err != nil || v.rep.Problem != nil {
		return err
	}
	v.segDir = fs.PathJoin(ledgerDir, "segments")
	if v.segs, err = listSegments(fs, v.segDir); err != nil {
		if errors.Is(err, ErrCorrupt) {
			v.rep.Problem = &CorruptError{Reason: err.Error()}
			return nil
		}
		return err
	}
	v.rep.Segments = len(v.segs)
	v.limit = ^uint64(0)
	if v.cfg.Live {
		v.limit = 0
		if v.rep.Checkpoint != nil {
			v.limit = v.rep.Checkpoint.Size
		}
	}
	if v.jr, err = newJournalReader(fs, fs.PathJoin(dir, "receipts")); err != nil {
		return err
	}
	if v.ix, err = openIndexCheck(fs, ledgerDir, hasher, v.limit, v.cfg.Live); err != nil {
		return err
	}
	if v.ix.problem != nil {
		v.rep.Problem = v.ix.problem
		return nil
	}
	for _, n := range v.segs {
		if st, err := fs.Stat(fs.PathJoin(v.segDir, segmentName(n))); err == nil {
			v.total += st.Size()
		}
	}
	v.readMarks(ledgerDir)
	return nil
}

// openKeys reads the verifier key (the configured one, or ledger/key.pub)
// and, when this copy has it, the signing key, which must be the one that
// key.pub names: it keys the index hashes, returned for the index checks.
func (v *verification) openKeys(ledgerDir string) (*keyHasher, error) {
	fs := v.fs
	vkey := v.cfg.VerifierKey
	pub, err := readFile(fs, fs.PathJoin(ledgerDir, "key.pub"))
	if vkey == "" {
		if err != nil {
			return nil, fmt.Errorf("ledger: read verifier key: %w", err)
		}
		vkey = strings.TrimSpace(string(pub))
	}
	if v.key, err = ledgerfmt.NewVerifier(vkey); err != nil {
		if v.cfg.VerifierKey == "" {
			v.rep.Problem = &CorruptError{File: "ledger/key.pub", Reason: err.Error()}
			return nil, nil
		}
		return nil, err
	}
	signer, err := loadOrCreateKey(fs, ledgerDir, "", nil, false)
	switch {
	case err == nil:
		if len(pub) > 0 && signer.VerifierKey() != strings.TrimSpace(string(pub)) {
			v.rep.Problem = &CorruptError{File: "ledger/key", Reason: "the signing key does not match ledger/key.pub"}
			return nil, nil
		}
		h := newKeyHasher(signer)
		return &h, nil
	case !errors.Is(err, os.ErrNotExist):
		v.rep.Problem = &CorruptError{File: "ledger/key", Reason: err.Error()}
	}
	return nil, nil
}

// readMarks reports what a server left for its next start. A bad record
// is a torn tail only past what was durable when it found damage.
func (v *verification) readMarks(ledgerDir string) {
	fs := v.fs
	why, damagedBelow, damaged := readDamageMark(fs, fs.PathJoin(ledgerDir, damageMarkName))
	if damaged {
		v.damagedBelow = damagedBelow
		v.rep.Marks = append(v.rep.Marks, "the server found damage in the records ("+why+"); it refuses to start until they are restored")
	}
	if b, err := readFile(fs, fs.PathJoin(ledgerDir, "index", rebuildMarkName)); err == nil {
		v.rep.Marks = append(v.rep.Marks, "the server found its index damaged ("+strings.TrimSpace(string(b))+"); it rebuilds it at the next start")
	}
}
