package cycle

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/loglineos/loglineos/internal/derive"
)

// VerifyReport is what Verify found.
type VerifyReport struct {
	// Stale, when not empty, says why the store was not compared although
	// nothing is damaged: there is no derived store yet, or it was derived
	// under other policies or by an earlier version. The server rebuilds it
	// at its next start.
	Stale string
	// Cursor is the snapshot's cursor: the records derived again.
	Cursor uint64
	// Tenants, Events, Files and Bytes count what was compared: the
	// tenants, their events, the files (the snapshot included) and the
	// bytes of those files.
	Tenants int
	Events  uint64
	Files   int
	Bytes   int64
	// Problem is the first difference found, nil if none.
	Problem *VerifyProblem
}

// VerifyProblem is a derived file that does not hold what deriving the
// ledger again gives.
type VerifyProblem struct {
	// File is the file's path relative to the store's directory, e.g.
	// "t/0f1e….ndjson", "j/ab.idx" or "snapshot".
	File string
	// Tenant is the tenant whose events the file holds (t/ files only).
	Tenant string
	// Offset is the byte offset of the first byte that differs; -1 when the
	// file's seal says it is damaged without saying where (the snapshot's
	// SHA-256).
	Offset int64
	// Want is what derivation gives there, Found what the file holds.
	Want, Found string
}

// Error describes the problem on one line.
func (p *VerifyProblem) Error() string {
	var b bytes.Buffer
	b.WriteString(p.File)
	if p.Tenant != "" {
		fmt.Fprintf(&b, " (tenant %q)", p.Tenant)
	}
	if p.Offset >= 0 {
		fmt.Fprintf(&b, " at byte %d", p.Offset)
	}
	fmt.Fprintf(&b, ": want %s, found %s", p.Want, p.Found)
	return b.String()
}

// errDiffers stops a verification at the first problem.
var errDiffers = errors.New("cycle: derived file differs from derivation")

// Verify checks the derived store in dir against the ledger src without
// changing any file, so it may run beside a server using the store: it
// derives the ledger again, from its first record up to the snapshot's
// cursor, with the policies def and the rules of the bundle (whose
// fingerprint the snapshot must carry; nil rules are the standard bundle's), and compares byte for byte every tenant's event
// file and event index, the 256 trajectory index files (up to the lengths
// the snapshot records: what follows is cut off at the next start) and the
// engine state the snapshot holds. It reports the first difference, or
// Stale when there is no store or it was derived under other policies; the
// error is for failures to read. live says src is a read-only view beside a
// running server, which ends at the server's signed checkpoint: a snapshot
// past that end is then not compared (Stale says so) rather than damage.
// progress, if not nil, is called every verifyProgressEvery records derived
// again and after the last, with their count and the cursor.
func Verify(src Source, dir string, def derive.TenantConfig, rules *derive.Rules, fingerprint string, live bool, progress func(done, total int64)) (*VerifyReport, error) {
	rep := &VerifyReport{}
	b, err := os.ReadFile(filepath.Join(dir, "snapshot"))
	if errors.Is(err, fs.ErrNotExist) {
		rep.Stale = "no derived store (derived from the start of the ledger at the next start)"
		return rep, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cycle: %w", err)
	}
	rep.Files, rep.Bytes = 1, int64(len(b))
	sn, err := decodeSnapshot(b)
	if errors.Is(err, errOldSnapshot) {
		rep.Stale = "derived by an earlier version (rebuilt at the next start)"
		return rep, nil
	}
	if err != nil {
		rep.Problem = &VerifyProblem{File: "snapshot", Offset: -1, Want: "a sealed derived snapshot", Found: err.Error()}
		return rep, nil
	}
	if sn.fingerprint != fingerprint {
		rep.Stale = "derived under other policies (rebuilt at the next start)"
		return rep, nil
	}
	rep.Cursor = sn.cursor
	if live && src != nil && src.Next() < sn.cursor {
		rep.Stale = fmt.Sprintf("not compared beside the running server: its derived snapshot (cursor %d) is past its signed checkpoint (%d records); run again", sn.cursor, src.Next())
		return rep, nil
	}
	eng, err := derive.New(derive.Config{Default: &def, Rules: rules})
	if err != nil {
		return nil, err
	}
	st, err := openStoreFiles(dir, DefaultMaxOpenFiles, &comparison{})
	if err != nil {
		return nil, fmt.Errorf("cycle: %w", err)
	}
	defer st.close()
	if err := rederive(src, sn.cursor, eng, st, rep, progress); err != nil {
		if errors.Is(err, errDiffers) {
			rep.Problem = st.cmp.problem
			return rep, nil
		}
		if p := missingFile(dir, err); p != nil {
			rep.Problem = p
			return rep, nil
		}
		return nil, fmt.Errorf("cycle: %w", err)
	}
	rep.Bytes += st.cmp.bytes
	rep.Tenants = len(st.tenants)
	rep.Files += 2 * len(st.tenants)
	for _, f := range st.buckets {
		if f != nil {
			rep.Files++
		}
	}
	rep.Problem = compareLengths(st, sn)
	if rep.Problem == nil {
		rep.Problem = compareEngine(eng, sn)
	}
	return rep, nil
}

// verifyProgressEvery is how many records Verify derives again between
// calls of its progress function.
const verifyProgressEvery = 1024

// rederive derives the records before cursor into the comparing store st,
// reporting to progress (if not nil) as it goes.
func rederive(src Source, cursor uint64, eng *derive.Engine, st *store, rep *VerifyReport, progress func(done, total int64)) error {
	if cursor == 0 {
		return nil
	}
	if next := src.Next(); next < cursor {
		st.cmp.problem = &VerifyProblem{File: "snapshot", Offset: -1,
			Want: fmt.Sprintf("a cursor within the ledger's %d records", next), Found: fmt.Sprintf("cursor %d", cursor)}
		return errDiffers
	}
	rd, err := src.NewReader(0)
	if err != nil {
		return err
	}
	defer rd.Close()
	rd.SkipLeafCheck()
	log := slog.New(slog.DiscardHandler)
	var (
		evs  []derive.Event
		line []byte
		n    int
	)
	for {
		rec, err := rd.Next()
		if err != nil {
			return err
		}
		if evs, err = step(eng, evs, rec, log); err != nil {
			return err
		}
		line = st.addEvents(evs, line)
		rep.Events += uint64(len(evs))
		last := rec.Seq+1 >= cursor
		if n++; n%4096 == 0 || last {
			if err := st.flush(); err != nil {
				return err
			}
		}
		if progress != nil && (n%verifyProgressEvery == 0 || last) {
			progress(int64(rec.Seq+1), int64(cursor))
		}
		if last {
			return nil
		}
	}
}

// compareLengths compares what derivation wrote with the lengths and
// checksums the snapshot records.
func compareLengths(st *store, sn *snapshot) *VerifyProblem {
	tenants, buckets := st.lengths()
	for i, j := 0, 0; i < len(tenants) || j < len(sn.tenants); {
		switch {
		case j == len(sn.tenants) || (i < len(tenants) && tenants[i].tenant < sn.tenants[j].tenant):
			return &VerifyProblem{File: "snapshot", Offset: -1, Want: fmt.Sprintf("tenant %q (%d events)", tenants[i].tenant, tenants[i].n), Found: "no such tenant"}
		case i == len(tenants) || sn.tenants[j].tenant < tenants[i].tenant:
			return &VerifyProblem{File: "snapshot", Offset: -1, Want: "no such tenant", Found: fmt.Sprintf("tenant %q (%d events)", sn.tenants[j].tenant, sn.tenants[j].n)}
		}
		if tenants[i] != sn.tenants[j] {
			return &VerifyProblem{File: "snapshot", Offset: -1, Tenant: tenants[i].tenant, Want: describeLengths(tenants[i]), Found: describeLengths(sn.tenants[j])}
		}
		i++
		j++
	}
	for i := range buckets {
		if buckets[i] != sn.buckets[i] {
			return &VerifyProblem{File: "snapshot", Offset: -1,
				Want:  fmt.Sprintf("j/%02x.idx of %d bytes, CRC-32C %08x", i, buckets[i].length, buckets[i].sum),
				Found: fmt.Sprintf("%d bytes, CRC-32C %08x", sn.buckets[i].length, sn.buckets[i].sum)}
		}
	}
	return nil
}

func describeLengths(t snapTenant) string {
	return fmt.Sprintf("%d events, %d bytes, CRC-32C %08x/%08x", t.n, t.evLen, t.evSum, t.ixSum)
}

// compareEngine compares the engine state derivation reached with the
// snapshot's.
func compareEngine(eng *derive.Engine, sn *snapshot) *VerifyProblem {
	want, err := eng.MarshalBinary()
	if err != nil {
		return &VerifyProblem{File: "snapshot", Offset: -1, Want: "an engine state", Found: err.Error()}
	}
	if i := firstDiff(want, sn.engine); i >= 0 {
		return &VerifyProblem{File: "snapshot", Offset: int64(sn.engineAt + i),
			Want:  fmt.Sprintf("engine state of %d bytes with %s", len(want), byteAt(want, i)),
			Found: fmt.Sprintf("%d bytes with %s", len(sn.engine), byteAt(sn.engine, i))}
	}
	return nil
}

func byteAt(b []byte, i int) string {
	if i >= len(b) {
		return "its end there"
	}
	return fmt.Sprintf("byte %#02x there", b[i])
}

// missingFile turns the error of a file that is not there into a problem.
func missingFile(dir string, err error) *VerifyProblem {
	var pe *fs.PathError
	if !errors.As(err, &pe) || !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	rel, rerr := filepath.Rel(dir, pe.Path)
	if rerr != nil {
		rel = pe.Path
	}
	return &VerifyProblem{File: filepath.ToSlash(rel), Want: "the file", Found: "no such file"}
}

// fileKind tells the derived files apart in problem reports.
type fileKind uint8

const (
	kindEvents fileKind = iota // t/<h>.ndjson
	kindIndex                  // t/<h>.idx
	kindBucket                 // j/<bb>.idx
)

// comparison is the state of a store that verifies instead of writing.
type comparison struct {
	buf     []byte
	bytes   int64 // bytes found equal
	problem *VerifyProblem
}

// compare compares want with what f holds at off. first is the number of
// the tenant's first event in want (event and index files).
func (c *comparison) compare(dir string, f *os.File, want []byte, off int64, kind fileKind, first uint64, tenant string) error {
	if cap(c.buf) < len(want) {
		c.buf = make([]byte, len(want))
	}
	got := c.buf[:len(want)]
	k, err := f.ReadAt(got, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	got = got[:k]
	i := firstDiff(want, got)
	if i < 0 {
		c.bytes += int64(len(want))
		return nil
	}
	c.bytes += int64(i)
	rel, rerr := filepath.Rel(dir, f.Name())
	if rerr != nil {
		rel = f.Name()
	}
	p := &VerifyProblem{File: filepath.ToSlash(rel), Tenant: tenant, Offset: off + int64(i)}
	switch kind {
	case kindEvents:
		start := bytes.LastIndexByte(want[:i], '\n') + 1
		n := first + uint64(bytes.Count(want[:start], []byte{'\n'}))
		p.Want = fmt.Sprintf("event %d %s", n, quoteLine(want[start:]))
		p.Found = quoteLine(got[min(start, len(got)):])
	case kindIndex:
		e := i / 8
		p.Offset = off + int64(e*8)
		p.Want = fmt.Sprintf("the offset of event %d, %d", first+uint64(e), binary.BigEndian.Uint64(want[e*8:]))
		p.Found = "the end of the file"
		if len(got) >= e*8+8 {
			p.Found = strconv.FormatUint(binary.BigEndian.Uint64(got[e*8:]), 10)
		}
	case kindBucket:
		e := i / 32
		p.Offset = off + int64(e*32)
		p.Want = describeEntry(want[e*32:])
		p.Found = "the end of the file"
		if len(got) >= e*32+32 {
			p.Found = describeEntry(got[e*32:])
		}
	}
	c.problem = p
	return errDiffers
}

// quoteLine quotes the first line of b, cut at 200 bytes.
func quoteLine(b []byte) string {
	if len(b) == 0 {
		return "the end of the file"
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 200 {
		return strconv.Quote(string(b[:200])) + "…"
	}
	return strconv.Quote(string(b))
}

// describeEntry describes a 32-byte trajectory index entry.
func describeEntry(e []byte) string {
	return fmt.Sprintf("entry (tenant hash %s, trajectory %s, event %d)",
		hex.EncodeToString(e[:8]), derive.TrajectoryID(e[8:23]), binary.BigEndian.Uint64(e[24:32]))
}

// firstDiff returns the index of the first byte where a and b differ (the
// shorter's length if one is a prefix of the other), or -1 if they are
// equal.
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
