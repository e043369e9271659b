package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// The indexes live in a pebble database under ledger/index/db. Keys start
// with one byte naming the index; strings are length-prefixed (uvarint),
// numbers are 8-byte big-endian so that keys sort by sequence:
//
//	'i' tenant id           -> seq, position     (tenant, id) lookup and idempotency
//	'h' tenant this seq     -> position          the spans of one thing, in order
//	't' tenant seq          -> position          the records of one tenant, in order
//	'q' seq                 -> position          every 256th record and each segment's first
//	'b' first               -> batch receipt     one per group commit (its JSON line)
//	'm' "wm"                -> watermark         next seq and its position
//
// A position is segment number (4 bytes), offset (8) and line length (4).
// The database is written without its own WAL: every index batch carries the
// watermark, pebble persists batches in order when it flushes, and at open
// the records after the watermark are read from the segments and indexed
// again. Deleting ledger/index rebuilds everything from the segments.
const (
	prefixID     = 'i'
	prefixThing  = 'h'
	prefixTenant = 't'
	prefixSeq    = 'q'
	prefixBatch  = 'b'
	prefixMeta   = 'm'

	seqIndexEvery = 256
)

// pos is where a record's line is: segment number, byte offset, length
// without the newline.
type pos struct {
	seg uint32
	off int64
	n   uint32
}

func (p pos) end() int64 { return p.off + int64(p.n) + 1 }

func appendPos(b []byte, p pos) []byte {
	b = binary.BigEndian.AppendUint32(b, p.seg)
	b = binary.BigEndian.AppendUint64(b, uint64(p.off))
	return binary.BigEndian.AppendUint32(b, p.n)
}

func decodePos(b []byte) (pos, error) {
	if len(b) < 16 {
		return pos{}, errors.New("ledger: index: short position")
	}
	return pos{
		seg: binary.BigEndian.Uint32(b),
		off: int64(binary.BigEndian.Uint64(b[4:])),
		n:   binary.BigEndian.Uint32(b[12:]),
	}, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func idKey(dst []byte, tenant, id string) []byte {
	dst = append(dst, prefixID)
	dst = appendString(dst, tenant)
	return appendString(dst, id)
}

func thingPrefix(dst []byte, tenant, this string) []byte {
	dst = append(dst, prefixThing)
	dst = appendString(dst, tenant)
	return appendString(dst, this)
}

func tenantPrefix(dst []byte, tenant string) []byte {
	dst = append(dst, prefixTenant)
	return appendString(dst, tenant)
}

func seqKey(dst []byte, prefix byte, seq uint64) []byte {
	dst = append(dst, prefix)
	return binary.BigEndian.AppendUint64(dst, seq)
}

var watermarkKey = []byte{prefixMeta, 'w', 'm'}

// watermark says how far the indexes have been brought: every record before
// next is indexed, and record next starts at position at.
type watermark struct {
	next uint64
	at   pos
}

func (w watermark) encode() []byte {
	return appendPos(binary.BigEndian.AppendUint64(nil, w.next), w.at)
}

func decodeWatermark(b []byte) (watermark, error) {
	if len(b) != 8+16 {
		return watermark{}, errors.New("ledger: index: bad watermark")
	}
	p, err := decodePos(b[8:])
	return watermark{next: binary.BigEndian.Uint64(b), at: p}, err
}

// indexDB wraps the pebble database of the indexes.
type indexDB struct {
	db    *pebble.DB
	cache interface{ Unref() }
}

type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("index: " + fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Warn("index: " + fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error("index: " + fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}

func openIndexDB(fs vfs.FS, dir string, cacheBytes, memtableBytes int64, readOnly bool, log *slog.Logger) (*indexDB, error) {
	cache := pebble.NewCache(cacheBytes)
	opts := &pebble.Options{
		FS:           fs,
		Cache:        cache,
		DisableWAL:   true,
		MemTableSize: uint64(memtableBytes),
		ReadOnly:     readOnly,
		Logger:       pebbleLogger{log},
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	opts.EnsureDefaults()
	db, err := pebble.Open(dir, opts)
	if err != nil {
		cache.Unref()
		return nil, err
	}
	return &indexDB{db: db, cache: cache}, nil
}

func (x *indexDB) close(flush bool) error {
	var err error
	if flush {
		err = x.db.Flush()
	}
	if cerr := x.db.Close(); err == nil {
		err = cerr
	}
	x.cache.Unref()
	return err
}

// get returns a copy of the value of key, or nil, false.
func (x *indexDB) get(key []byte) ([]byte, bool, error) {
	v, closer, err := x.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, true, nil
}

// has reports whether key exists, without copying the value.
func (x *indexDB) lookupID(key []byte) (seq uint64, p pos, ok bool, err error) {
	v, closer, err := x.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, pos{}, false, nil
	}
	if err != nil {
		return 0, pos{}, false, err
	}
	defer closer.Close()
	if len(v) < 24 {
		return 0, pos{}, false, errors.New("ledger: index: short id entry")
	}
	p, err = decodePos(v[8:])
	return binary.BigEndian.Uint64(v), p, err == nil, err
}

func (x *indexDB) watermark() (watermark, bool, error) {
	v, ok, err := x.get(watermarkKey)
	if err != nil || !ok {
		return watermark{}, false, err
	}
	w, err := decodeWatermark(v)
	return w, err == nil, err
}

// seqPos finds the indexed position at or before seq: the greatest 'q' key
// not after seq.
func (x *indexDB) seqPos(seq uint64) (uint64, pos, bool, error) {
	it, err := x.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixSeq},
		UpperBound: seqKey(nil, prefixSeq, seq+1),
	})
	if err != nil {
		return 0, pos{}, false, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, pos{}, false, it.Error()
	}
	k := it.Key()
	p, err := decodePos(it.Value())
	if err != nil {
		return 0, pos{}, false, err
	}
	return binary.BigEndian.Uint64(k[1:]), p, true, nil
}

// batchFor returns the batch receipt of the commit holding seq.
func (x *indexDB) batchFor(seq uint64) ([]byte, error) {
	it, err := x.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixBatch},
		UpperBound: seqKey(nil, prefixBatch, seq+1),
	})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if !it.Last() {
		if err := it.Error(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
	return append([]byte(nil), it.Value()...), nil
}

// scanPositions calls fn with the seq and position of the entries under
// prefix (a 'h' or 't' prefix), in sequence order, from seq after on.
func (x *indexDB) scanPositions(prefix []byte, after uint64, fn func(seq uint64, p pos) bool) error {
	lower := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), after)
	upper := append(append([]byte(nil), prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+8 {
			continue
		}
		p, err := decodePos(it.Value())
		if err != nil {
			return err
		}
		if !fn(binary.BigEndian.Uint64(k[len(prefix):]), p) {
			break
		}
	}
	return it.Error()
}
