package runtime

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loglineos/loglineos/client/webhook"
	"github.com/loglineos/loglineos/internal/atomicfile"
	"github.com/loglineos/loglineos/internal/jsonstr"
)

// The outbox is the runtime's durable log, <data>/runtime/outbox. Each line
// is one entry, written as
//
//	<crc32c of the JSON, 8 hex digits> <JSON>\n
//
// and the JSON is one of:
//
//	{"t":"q","id":"msg_…","seq":12,"tenant":"acme","router":"tills","call":"http.request",
//	 "url":"https://…","body":"…","depth":0,"at":"…"}    an action queued
//	{"t":"a","id":"msg_…","n":1,"status":200,"error":"","at":"…"}   an attempt's outcome
//	{"t":"d","id":"msg_…","at":"…"}                                  delivered (final)
//	{"t":"x","id":"msg_…","error":"…","at":"…"}                      given up (final)
//	{"t":"k","id":"msg_…","seq":12,"tenant":"acme","router":"tills","call":"kv.set",
//	 "key":"…","body":"<the value's JSON>"}                         a kv.set performed (kv.go)
//	{"t":"r","seq":12}                                               every record below seq is routed
//
// The actions of a record are followed by an "r" mark naming the record
// after it, so the records below the last mark are routed whole. Marks and
// actions are synced before the cycle's cursor moves past their record
// (Sink.Sync), and the span itself was durable in the ledger before it was
// acknowledged, so an action is never lost: after a crash, the records
// past the last mark are routed again, and the actions already queued are
// recognised by their id (derived from the record and the route) and not
// queued twice.
//
// A torn last line (a crash mid-write) is cut at open. The file is
// compacted at open when it is large: the entries of pending actions and
// the recent history are kept.
type outbox struct {
	path string

	syncMu  sync.Mutex // held by sync, rewrite and close
	mu      sync.Mutex // guards the rest
	f       *os.File
	w       *bufio.Writer
	size    int64
	dirty   bool
	scratch []byte
	routed  uint64 // every record below this seq is routed (durably)
	maxSeen uint64 // 1 + the highest seq of a queued action, 0 if none
}

// entry is one outbox line.
type entry struct {
	T      string    `json:"t"`
	ID     string    `json:"id,omitempty"`
	Seq    uint64    `json:"seq,omitempty"`
	Tenant string    `json:"tenant,omitempty"`
	Router string    `json:"router,omitempty"`
	Call   string    `json:"call,omitempty"`
	URL    string    `json:"url,omitempty"`
	Key    string    `json:"key,omitempty"`
	Body   string    `json:"body,omitempty"`
	Depth  int       `json:"depth,omitempty"`
	N      int       `json:"n,omitempty"`
	Status int       `json:"status,omitempty"`
	Error  string    `json:"error,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// compactAt is the size past which the outbox is compacted at open.
const compactAt = 64 << 20

// openOutbox reads the outbox at path (creating it), calls replay with each
// intact entry in order, and cuts a torn tail.
func openOutbox(path string, replay func(e *entry)) (*outbox, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	ob := &outbox{path: path, f: f}
	good, err := ob.read(replay)
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	ob.size = good
	ob.w = bufio.NewWriterSize(f, 64<<10)
	return ob, nil
}

// read replays the intact entries and returns the length of the intact
// prefix.
func (ob *outbox) read(replay func(e *entry)) (int64, error) {
	r := bufio.NewReaderSize(ob.f, 64<<10)
	var good int64
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return good, nil // a line without its newline is torn
		}
		if err != nil {
			return 0, err
		}
		e, ok := decodeEntry(line)
		if !ok {
			return good, nil
		}
		good += int64(len(line))
		ob.note(e)
		replay(e)
	}
}

func decodeEntry(line []byte) (*entry, bool) {
	if len(line) < 10 || line[8] != ' ' {
		return nil, false
	}
	var sum [4]byte
	if _, err := hex.Decode(sum[:], line[:8]); err != nil {
		return nil, false
	}
	js := line[9 : len(line)-1]
	if crc32.Checksum(js, castagnoli) != uint32(sum[0])<<24|uint32(sum[1])<<16|uint32(sum[2])<<8|uint32(sum[3]) {
		return nil, false
	}
	var e entry
	if json.Unmarshal(js, &e) != nil {
		return nil, false
	}
	return &e, true
}

// encodeEntry appends e's line. It writes what encoding/json would
// (without reflection: this is on the routing path), so that decodeEntry
// reads it back with json.Unmarshal.
func encodeEntry(dst []byte, e *entry) []byte {
	start := len(dst)
	dst = append(dst, "00000000 "...)
	js := len(dst)
	dst = append(dst, `{"t":`...)
	dst = jsonstr.Append(dst, e.T)
	str := func(name, v string) {
		if v != "" {
			dst = append(dst, `,"`...)
			dst = append(dst, name...)
			dst = append(dst, `":`...)
			dst = jsonstr.Append(dst, v)
		}
	}
	num := func(name string, v uint64) {
		if v != 0 {
			dst = append(dst, `,"`...)
			dst = append(dst, name...)
			dst = append(dst, `":`...)
			dst = strconv.AppendUint(dst, v, 10)
		}
	}
	str("id", e.ID)
	num("seq", e.Seq)
	str("tenant", e.Tenant)
	str("router", e.Router)
	str("call", e.Call)
	str("url", e.URL)
	str("key", e.Key)
	str("body", e.Body)
	num("depth", uint64(e.Depth))
	num("n", uint64(e.N))
	num("status", uint64(e.Status))
	str("error", e.Error)
	if !e.At.IsZero() {
		dst = append(dst, `,"at":"`...)
		dst = e.At.AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	dst = append(dst, '}')
	sum := crc32.Checksum(dst[js:], castagnoli)
	const hexd = "0123456789abcdef"
	for i := range 8 {
		dst[start+i] = hexd[(sum>>(28-4*i))&0xf]
	}
	return append(dst, '\n')
}

// note keeps the marks an entry moves.
func (ob *outbox) note(e *entry) {
	switch e.T {
	case "r":
		ob.routed = max(ob.routed, e.Seq)
	case "q", "k":
		ob.maxSeen = max(ob.maxSeen, e.Seq+1)
	}
}

// add appends entries (buffered; Sync makes them durable).
func (ob *outbox) add(es ...*entry) error {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.f == nil {
		return errClosed
	}
	for _, e := range es {
		ob.scratch = encodeEntry(ob.scratch[:0], e)
		if _, err := ob.w.Write(ob.scratch); err != nil {
			return err
		}
		ob.size += int64(len(ob.scratch))
		ob.note(e)
	}
	ob.dirty = true
	return nil
}

// sync flushes and fsyncs what was added. The fsync runs outside mu, so
// that routing and deliveries go on adding while the disk catches up;
// syncMu keeps one sync (and close) at a time.
func (ob *outbox) sync() error {
	ob.syncMu.Lock()
	defer ob.syncMu.Unlock()
	ob.mu.Lock()
	if ob.f == nil {
		ob.mu.Unlock()
		return errClosed
	}
	if !ob.dirty {
		ob.mu.Unlock()
		return nil
	}
	err := ob.w.Flush()
	ob.dirty = err != nil
	f := ob.f
	ob.mu.Unlock()
	if err != nil {
		return err
	}
	return f.Sync()
}

// marks returns the routed mark and 1 + the highest queued seq.
func (ob *outbox) marks() (routed, seen uint64) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return ob.routed, ob.maxSeen
}

// rewrite replaces the file with keep (compaction), atomically.
func (ob *outbox) rewrite(keep []*entry) error {
	ob.syncMu.Lock()
	defer ob.syncMu.Unlock()
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if err := ob.w.Flush(); err != nil {
		return err
	}
	var buf bytes.Buffer
	var line []byte
	for _, e := range keep {
		line = encodeEntry(line[:0], e)
		buf.Write(line)
	}
	if err := atomicfile.Write(ob.path, buf.Bytes(), 0o600); err != nil {
		return err
	}
	f, err := os.OpenFile(ob.path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	ob.f.Close()
	ob.f, ob.w, ob.size, ob.dirty = f, bufio.NewWriterSize(f, 64<<10), int64(buf.Len()), false
	return nil
}

func (ob *outbox) close() error {
	ob.syncMu.Lock()
	defer ob.syncMu.Unlock()
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.f == nil {
		return nil
	}
	err := ob.w.Flush()
	if e := ob.f.Sync(); err == nil {
		err = e
	}
	if e := ob.f.Close(); err == nil {
		err = e
	}
	ob.f = nil
	return err
}

var errClosed = errors.New("runtime: closed")

// A Finding is what CheckDir found wrong with one of the runtime's files.
type Finding struct {
	File    string // a path under the runtime's directory
	Reason  string
	Damaged bool // false: a note (a torn tail, a file a start makes anew)
}

// CheckDir checks the runtime's files in dir, as logline ledger verify
// does: the webhook signing key as the runtime writes it, and the checksum
// of every outbox line (a torn last line is a note: the next start cuts
// it). It returns the outbox lines checked.
func CheckDir(dir string) (lines int, found []Finding) {
	keyPath := filepath.Join(dir, "webhook.key")
	switch b, err := os.ReadFile(keyPath); {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		found = append(found, Finding{keyPath, err.Error(), true})
	default:
		k, err := webhook.ParsePrivateKey(strings.TrimSpace(string(b)))
		if err != nil {
			found = append(found, Finding{keyPath, err.Error(), true})
		} else if string(b) != webhook.FormatPrivateKey(k)+"\n" {
			found = append(found, Finding{keyPath, "not as the runtime writes it", true})
		}
	}
	obPath := filepath.Join(dir, "outbox")
	f, err := os.Open(obPath)
	if errors.Is(err, os.ErrNotExist) {
		return 0, found
	}
	if err != nil {
		return 0, append(found, Finding{obPath, err.Error(), true})
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var bad []int // lines whose checksum fails
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if len(line) > 0 {
				found = append(found, Finding{obPath, fmt.Sprintf("line %d is torn (the next start cuts it)", lines+1), false})
			}
			break
		}
		if err != nil {
			return lines, append(found, Finding{obPath, err.Error(), true})
		}
		lines++
		if _, ok := decodeEntry(line); !ok {
			bad = append(bad, lines)
		}
	}
	switch {
	case len(bad) == 1 && bad[0] == lines:
		found = append(found, Finding{obPath, fmt.Sprintf("line %d, the last, does not check (a torn write: the next start cuts it)", lines), false})
	case len(bad) > 0:
		found = append(found, Finding{obPath, fmt.Sprintf("line %d of %d does not check (%d such lines): the next start keeps only the lines before it, and the actions after it are lost", bad[0], lines, len(bad)), true})
	}
	return lines, found
}

// RoutedMark returns the routed mark of the outbox in dir: every record
// below it was routed (0 without an outbox).
func RoutedMark(dir string) (uint64, error) {
	f, err := os.Open(filepath.Join(dir, "outbox"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	ob := &outbox{f: f}
	if _, err := ob.read(func(*entry) {}); err != nil {
		return 0, err
	}
	return ob.routed, nil
}
