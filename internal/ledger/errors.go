package ledger

import (
	"errors"
	"fmt"
)

var (
	// ErrCorrupt means the stored records are not what was written: a bad
	// checksum or hash inside a sealed segment, a gap, or a checkpoint that
	// the records no longer match. Open returns it (as a *CorruptError when
	// the place is known) unless Config.ReadOnly is set.
	ErrCorrupt = errors.New("ledger: corrupt")
	// ErrReadOnly is returned by Append after a write or sync error made the
	// ledger read-only, or when it was opened read-only. The error that
	// caused it is wrapped too.
	ErrReadOnly = errors.New("ledger: read-only")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("ledger: closed")
	// ErrNotFound is returned by lookups that find nothing.
	ErrNotFound = errors.New("ledger: not found")
	// ErrInvalidEntry is returned by Append for an entry it cannot store
	// (missing tenant or id, body not a JSON object, too large).
	ErrInvalidEntry = errors.New("ledger: invalid entry")
	// ErrPublish wraps the error of Config.Publish: the commit it was given
	// and every later one were not acknowledged, and the ledger turned
	// read-only (errors.Is(err, ErrReadOnly) holds too).
	ErrPublish = errors.New("ledger: publish")
	// ErrBadCommit is returned by Apply for a commit it refuses: not the
	// next one, damaged, not signed by this ledger's key, or holding a span
	// already stored. Nothing was written; the ledger goes on.
	ErrBadCommit = errors.New("ledger: commit refused")
	// ErrRole is returned by Append on a ledger that applies commits, and
	// by Apply on one that appends or publishes: a ledger takes its
	// records from one side only until it is reopened.
	ErrRole = errors.New("ledger: wrong role")
)

// CorruptError says where corruption was found: in a segment (Segment,
// the offset of the bad record and the sequence number expected there), or
// in another file of the data directory (File, a path relative to it, and
// the offset in it).
type CorruptError struct {
	Segment string // segment file name
	File    string // or another file, e.g. ledger/index/positions
	Offset  int64  // byte offset of the bad record or entry
	Seq     uint64 // sequence number expected there (segments)
	Reason  string
	// Derived says the damaged file is derived from the segments (under
	// ledger/index): rebuilt at the next open, or by a reindex.
	Derived bool
	// inRecords: a read met this damage in a record itself (not through a
	// damaged index), and the ledger turned read-only.
	inRecords bool
}

func (e *CorruptError) Error() string {
	if e.File != "" {
		return fmt.Sprintf("ledger: corrupt: %s offset %d: %s", e.File, e.Offset, e.Reason)
	}
	return fmt.Sprintf("ledger: corrupt: segment %s offset %d seq %d: %s", e.Segment, e.Offset, e.Seq, e.Reason)
}

// Where names the place: "segment S offset O seq N" or "F offset O".
func (e *CorruptError) Where() string {
	if e.File != "" {
		return fmt.Sprintf("%s offset %d", e.File, e.Offset)
	}
	return fmt.Sprintf("segment %s offset %d seq %d", e.Segment, e.Offset, e.Seq)
}

// Is makes errors.Is(err, ErrCorrupt) true for a *CorruptError.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }
