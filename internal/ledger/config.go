package ledger

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/bytesize"
)

// The defaults of Config, for the layers above to reuse.
const (
	DefaultOrigin             = "logline.local/ledger"
	DefaultSegmentBytes       = 64 << 20
	DefaultPreallocate        = 1 << 20 // a server's ledger.preallocate
	DefaultMaxBatchEntries    = 16384
	DefaultMaxBatchBytes      = 8 << 20
	DefaultMaxEntryBytes      = 1 << 20
	DefaultCheckpointEvery    = 1_000_000
	DefaultCheckpointInterval = 10 * time.Second
	DefaultIndexMemTableBytes = 16 << 20
	DefaultDedupFilterBytes   = 64 << 20
	DefaultCheckAtOpen        = 256 << 20
	DefaultHolder             = "logline"
)

// Config configures a ledger. The zero value works: data on the real file
// system, the defaults above. The fields an operator sets carry their YAML
// names: the server's configuration holds a Config as its ledger section.
type Config struct {
	// FS is the file system; nil means the real one. Tests pass an in-memory
	// or fault-injecting one.
	FS vfs.FS `yaml:"-"`
	// Origin names the ledger in its checkpoints and keys. It is used only
	// when the signing key is created, at first open. Default DefaultOrigin.
	Origin string `yaml:"origin"`
	// SegmentBytes is the size at which a segment is sealed and the next one
	// started. Default DefaultSegmentBytes (64 MiB).
	SegmentBytes bytesize.Size `yaml:"segment_bytes"`
	// Preallocate, when positive, has the segment being written extended
	// with zeros that many bytes ahead of its records, so that a commit's
	// fdatasync overwrites space the file has instead of growing it (no
	// file-size change to journal at each commit). Padding is cut when a
	// segment is sealed and at Close; padding left by a crash is
	// recognized at the next open. Zero: segments grow with their records
	// (a server's default is DefaultPreallocate).
	Preallocate bytesize.Size `yaml:"preallocate"`
	// MaxBatchEntries and MaxBatchBytes bound one group commit (its
	// records' lines exceed MaxBatchBytes by one record at most). Defaults
	// DefaultMaxBatchEntries (16384 records) and DefaultMaxBatchBytes
	// (8 MiB).
	MaxBatchEntries int           `yaml:"max_batch_entries"`
	MaxBatchBytes   bytesize.Size `yaml:"max_batch_bytes"`
	// MaxDelay lets a commit wait this long for more appenders once it has
	// one. Zero (the default) never waits: an idle ledger commits at once.
	MaxDelay time.Duration `yaml:"max_delay"`
	// MaxEntryBytes bounds one record's body. Default DefaultMaxEntryBytes
	// (1 MiB).
	MaxEntryBytes int `yaml:"-"`
	// CheckpointEvery and CheckpointInterval say how often a signed
	// checkpoint is written: after that many records, or that much time with
	// new records, whichever comes first; and always at Close. Defaults
	// DefaultCheckpointEvery (1,000,000 records) and
	// DefaultCheckpointInterval (10 s).
	CheckpointEvery    uint64        `yaml:"checkpoint_every"`
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// IndexCacheBytes is ignored: the index files are read through the
	// operating system's page cache. It is kept so that old configurations
	// still compile.
	IndexCacheBytes int64 `yaml:"-"`
	// IndexMemTableBytes bounds the in-memory part of the lookup indexes
	// (the newest spans' entries, about 96 bytes a span) before it is written
	// to disk; two such parts exist while one is being written. It also
	// bounds what a crash leaves to re-index at open. Default
	// DefaultIndexMemTableBytes (16 MiB, about 175,000 spans).
	IndexMemTableBytes int64 `yaml:"-"`
	// DedupFilterBytes sizes the filter that tells new span ids from stored
	// ones without reading the index. It is allocated at open whatever the
	// ledger's size; past about 50 million spans per 64 MiB its false
	// positives (each costing an index lookup) grow. Default
	// DefaultDedupFilterBytes (64 MiB).
	DedupFilterBytes int `yaml:"-"`
	// ReadOnly opens the ledger for inspection: nothing is written or
	// repaired, corruption is reported by Verify rather than refused. Beside
	// a running writer (another process holding the data directory), a
	// read-only ledger sees the records of the writer's latest signed
	// checkpoint and nothing after it: the rest may still be in flight.
	ReadOnly bool `yaml:"read_only"`
	// CheckAtOpen: when the segments hold at most this many bytes, Open
	// checks every record (framing, CRC, sequence, time) before it returns,
	// so that a damaged record stops the start. A larger ledger is checked
	// by Scrub once open (its records are checked as they are read, too).
	// Default DefaultCheckAtOpen (256 MiB); negative never checks
	// everything at open, unless Scrub found damage before (ledger/DAMAGED).
	CheckAtOpen bytesize.Size `yaml:"check_at_open"`
	// DirLocked says the caller holds the data directory's lock
	// (datadir.Acquire) itself. Otherwise a writable Open on the operating
	// system's file system takes it, naming itself Holder, and gives it up
	// at Close; a second writer then fails at once with datadir.ErrLocked.
	DirLocked bool `yaml:"-"`
	// Holder names this process in the lock file. Default DefaultHolder.
	Holder string `yaml:"-"`
	// Now and Rand replace the clock and the randomness (for the key).
	Now  func() time.Time `yaml:"-"`
	Rand io.Reader        `yaml:"-"`
	// Logger receives recovery notes and index messages.
	Logger *slog.Logger `yaml:"-"`
	// OnRepair, if set, is called when derived files (what: "index",
	// "tree") are found damaged and rebuilt from the segments at open, or
	// found damaged while the ledger runs (they are then rebuilt at the
	// next open). It may be called from several goroutines at once.
	OnRepair func(what, reason string) `yaml:"-"`
	// OnCommit, if set, is called after every durable group commit with its
	// record count, byte count and the time its write and sync took.
	OnCommit func(records, bytes int, sync time.Duration) `yaml:"-"`
	// Publish, if set, is called with every group commit once it is
	// durable, one at a time in commit order, before any request of the
	// commit is answered (it must not call the ledger's Append, Close or
	// WriteCheckpoint): receipts are withheld until it returns nil, and
	// until then the commit is not visible to readers (Next, reads,
	// proofs), not indexed and not covered by a checkpoint. The context is
	// never canceled by the ledger; Publish bounds its own waits. An error
	// fails the commit's requests and every later one (none of them is
	// acknowledged; the error wraps ErrPublish) and makes the ledger
	// read-only: the commits written but not published stay in its
	// segments until TruncateAfter moves them aside. A ledger opened with
	// Publish takes no Apply. It does not know, at open, which of its
	// records were published: bring it to the published log first
	// (TruncateAfter, or Apply on a ledger opened without Publish).
	Publish func(ctx context.Context, c Commit) error `yaml:"-"`
	// Progress, if set, is called during long scans at open, every
	// progressEvery records, with the bytes done and the bytes in all.
	Progress func(done, total int64) `yaml:"-"`
}

func (c *Config) setDefaults() {
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.Origin == "" {
		c.Origin = DefaultOrigin
	}
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.MaxBatchEntries <= 0 {
		c.MaxBatchEntries = DefaultMaxBatchEntries
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxEntryBytes <= 0 {
		c.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = DefaultCheckpointEvery
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.IndexMemTableBytes <= 0 {
		c.IndexMemTableBytes = DefaultIndexMemTableBytes
	}
	if c.DedupFilterBytes <= 0 {
		c.DedupFilterBytes = DefaultDedupFilterBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Holder == "" {
		c.Holder = DefaultHolder
	}
	if c.CheckAtOpen == 0 {
		c.CheckAtOpen = DefaultCheckAtOpen
	}
}

// maxTornBytes bounds the unsynced bytes a crash can leave at the end of the
// last segment: one group commit is written and synced at a time.
func (c *Config) maxTornBytes() int64 {
	return max(16<<20, 2*(int64(c.MaxBatchBytes)+int64(c.MaxEntryBytes)+1024))
}
