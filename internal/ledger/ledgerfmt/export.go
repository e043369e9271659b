package ledgerfmt

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"

	"github.com/loglineos/loglineos/internal/jsonstr"
)

// An export holds the span records of one tenant over a range [from, to)
// of sequence numbers, in a file anyone verifies offline with the ledger's
// verifier key. It is NDJSON: one JSON object a line, each line ending in
// "\n", in three parts:
//
//	{"logline_export":1,"tenant":"t_a","from":0,"to":42,"checkpoint":"logline.local/ledger\n42\nROOT=\n\n— logline.local/ledger SIG=\n"}
//	{"seq":3,"ts":"2025-10-05T22:18:07.214000Z","leaf":"LEAF=","span":{…},"proof":["H1=","H2=",…]}
//	…one line per span of the tenant with from <= seq < to, in seq order…
//	{"manifest":"logline-export/1\ntenant t_a\nrange 0 42\nrecords 17\ncheckpoint 42 ROOT=\nsha256 9f…\n\n— logline.local/ledger SIG=\n"}
//
//   - The header names the tenant and the range, and carries the ledger's
//     signed checkpoint (a C2SP signed note, verbatim) of size S >= to.
//   - A record line is the record as the ledger's stream writes it, without
//     the segments' crc, plus "proof": the RFC 6962 inclusion proof of the
//     record's leaf (index seq) in the tree of S records, standard base64
//     hashes from the leaf upwards. The leaf hash is SHA-256(0x00 || leaf
//     input), the leaf input being {"seq":S,"ts":"T","span":BODY} built from
//     the line's seq, ts and span bytes as written (see AppendLeafInput).
//   - The trailer is a signed note, signed with the ledger's key, whose text
//     is exactly six lines: the format, the tenant, the range, the number of
//     record lines, the checkpoint's size and root, and the lowercase hex
//     SHA-256 of every byte of the file before the trailer line.
//
// JSON strings are escaped as encoding/json escapes them. An export of
// [from, E) is chained by the next one of [E, …).

// ExportVersion is the value of the header's "logline_export" member.
const ExportVersion = 1

// ExportFormat is the first line of an export's manifest.
const ExportFormat = "logline-export/1"

// ExportMaxLineBytes bounds one line of an export that VerifyExport
// accepts: a record's body (at most the ledger's max_entry_bytes), its
// framing and a proof of at most 64 hashes fit many times over.
const ExportMaxLineBytes = 64 << 20

// ErrBadExport is the error of an export that does not verify; it is wrapped
// in an *ExportError that names the line.
var ErrBadExport = errors.New("ledgerfmt: bad export")

// ExportError says which line of an export does not verify, and why.
type ExportError struct {
	Line   int // 1-based
	Reason string
}

func (e *ExportError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// Unwrap makes an ExportError match ErrBadExport.
func (e *ExportError) Unwrap() error { return ErrBadExport }

// ExportManifest is what an export's trailer states.
type ExportManifest struct {
	Tenant   string
	From, To uint64
	Records  uint64
	Size     uint64 // the checkpoint's tree size
	Root     Hash   // the checkpoint's root
	SHA256   [sha256.Size]byte
}

// text returns the manifest's note text:
//
//	logline-export/1
//	tenant t_a
//	range 0 42
//	records 17
//	checkpoint 42 ROOT=
//	sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
func (m *ExportManifest) text() string {
	return fmt.Sprintf("%s\ntenant %s\nrange %d %d\nrecords %d\ncheckpoint %d %s\nsha256 %s\n",
		ExportFormat, m.Tenant, m.From, m.To, m.Records, m.Size, m.Root, hex.EncodeToString(m.SHA256[:]))
}

// parseExportManifest parses a manifest's text strictly: the text must be
// exactly what text() writes for the values parsed.
func parseExportManifest(text string) (ExportManifest, error) {
	var m ExportManifest
	lines := strings.Split(text, "\n")
	if len(lines) != 7 || lines[0] != ExportFormat || lines[6] != "" {
		return m, fmt.Errorf("not a %s manifest", ExportFormat)
	}
	words := func(i int, key string, n int) ([]string, error) {
		f := strings.Split(lines[i], " ")
		if len(f) != n+1 || f[0] != key {
			return nil, fmt.Errorf("manifest line %d: want %q and %d values", i+1, key, n)
		}
		return f[1:], nil
	}
	num := func(s string) (uint64, error) {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil || strconv.FormatUint(v, 10) != s {
			return 0, fmt.Errorf("manifest: bad number %q", s)
		}
		return v, nil
	}
	var err error
	var f []string
	if f, err = words(1, "tenant", 1); err != nil {
		return m, err
	}
	m.Tenant = f[0]
	if f, err = words(2, "range", 2); err != nil {
		return m, err
	}
	if m.From, err = num(f[0]); err != nil {
		return m, err
	}
	if m.To, err = num(f[1]); err != nil {
		return m, err
	}
	if f, err = words(3, "records", 1); err != nil {
		return m, err
	}
	if m.Records, err = num(f[0]); err != nil {
		return m, err
	}
	if f, err = words(4, "checkpoint", 2); err != nil {
		return m, err
	}
	if m.Size, err = num(f[0]); err != nil {
		return m, err
	}
	if err := m.Root.UnmarshalText([]byte(f[1])); err != nil {
		return m, fmt.Errorf("manifest: %w", err)
	}
	if f, err = words(5, "sha256", 1); err != nil {
		return m, err
	}
	if b, err := hex.DecodeString(f[0]); err != nil || len(b) != sha256.Size {
		return m, fmt.Errorf("manifest: bad sha256 %q", f[0])
	} else {
		copy(m.SHA256[:], b)
	}
	if m.text() != text {
		return m, errors.New("manifest: not in canonical form")
	}
	return m, nil
}

// CheckExportTenant reports whether a tenant can be named in an export's
// manifest: valid UTF-8, not empty, no space or control character.
func CheckExportTenant(tenant string) error {
	if tenant == "" || !utf8.ValidString(tenant) || strings.ContainsFunc(tenant, func(r rune) bool {
		return r <= ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError
	}) {
		return fmt.Errorf("ledgerfmt: tenant %q cannot be exported: want a name without spaces or control characters", tenant)
	}
	return nil
}

// SignExportManifest signs an export's manifest with the ledger's key.
func (s *Signer) SignExportManifest(m ExportManifest) ([]byte, error) {
	if err := CheckExportTenant(m.Tenant); err != nil {
		return nil, err
	}
	msg, err := note.Sign(&note.Note{Text: m.text()}, s.note)
	if err != nil {
		return nil, fmt.Errorf("ledgerfmt: sign export manifest: %w", err)
	}
	return msg, nil
}

// OpenExportManifest verifies a signed export manifest with the key and
// parses it.
func (v *Verifier) OpenExportManifest(msg []byte) (ExportManifest, error) {
	n, err := note.Open(msg, note.VerifierList(v.note))
	if err != nil {
		return ExportManifest{}, fmt.Errorf("manifest: %w", err)
	}
	if err := strictSigs(n); err != nil {
		return ExportManifest{}, fmt.Errorf("manifest: %w", err)
	}
	return parseExportManifest(n.Text)
}

// strictSigs refuses signatures whose base64 is not canonical (note.Open
// decodes leniently, ignoring the padding bits).
func strictSigs(n *note.Note) error {
	for _, s := range n.Sigs {
		if _, err := base64.StdEncoding.Strict().DecodeString(s.Base64); err != nil {
			return fmt.Errorf("signature of %s: not canonical base64", s.Name)
		}
	}
	return nil
}

// AppendExportHeader appends an export's header line (with its newline).
func AppendExportHeader(dst []byte, tenant string, from, to uint64, checkpoint []byte) []byte {
	dst = append(dst, `{"logline_export":`...)
	dst = strconv.AppendUint(dst, ExportVersion, 10)
	dst = append(dst, `,"tenant":`...)
	dst = jsonstr.Append(dst, tenant)
	dst = append(dst, `,"from":`...)
	dst = strconv.AppendUint(dst, from, 10)
	dst = append(dst, `,"to":`...)
	dst = strconv.AppendUint(dst, to, 10)
	dst = append(dst, `,"checkpoint":`...)
	dst = jsonstr.Append(dst, string(checkpoint))
	return append(dst, "}\n"...)
}

// AppendExportRecord appends the line of a span record (with its newline):
// its seq, ts, leaf hash and canonical body, and the audit path of its
// inclusion proof.
func AppendExportRecord(dst []byte, seq uint64, ts time.Time, leaf Hash, body []byte, path []Hash) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"ts":"`...)
	dst = ts.UTC().AppendFormat(dst, TimeLayout)
	dst = append(dst, `","leaf":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, leaf[:])
	dst = append(dst, `","`+KindSpan+`":`...)
	dst = append(dst, body...)
	dst = append(dst, `,"proof":[`...)
	for i := range path {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, path[i][:])
		dst = append(dst, '"')
	}
	return append(dst, "]}\n"...)
}

const exportTrailerStart = `{"manifest":`

// AppendExportTrailer appends the trailer line (with its newline) that
// carries the signed manifest.
func AppendExportTrailer(dst []byte, manifest []byte) []byte {
	dst = append(dst, exportTrailerStart...)
	dst = jsonstr.Append(dst, string(manifest))
	return append(dst, "}\n"...)
}

type exportHeaderJSON struct {
	Version    *int    `json:"logline_export"`
	Tenant     string  `json:"tenant"`
	From       *uint64 `json:"from"`
	To         *uint64 `json:"to"`
	Checkpoint string  `json:"checkpoint"`
}

type exportRecordJSON struct {
	Seq   *uint64         `json:"seq"`
	TS    string          `json:"ts"`
	Leaf  Hash            `json:"leaf"`
	Span  json.RawMessage `json:"span"`
	Proof []Hash          `json:"proof"`
}

// exportVerifier checks an export line by line.
type exportVerifier struct {
	v       *Verifier
	line    int
	sum     hash.Hash
	head    exportHeaderJSON
	ckpt    *Checkpoint
	records uint64
	next    uint64 // the least seq the next record may have
	scratch []byte
}

func (x *exportVerifier) fail(format string, args ...any) error {
	return &ExportError{Line: x.line, Reason: fmt.Sprintf(format, args...)}
}

// VerifyExport checks an export with the key, reading it once: both signed
// notes, the header against the manifest, each record's leaf hash and its
// inclusion proof against the checkpoint's root, the records' tenant, range
// and order, their count, and the SHA-256 of the file. It returns the
// manifest of an export that verifies; otherwise an *ExportError naming the
// line, or the reader's error.
func (v *Verifier) VerifyExport(r io.Reader) (ExportManifest, error) {
	x := &exportVerifier{v: v, sum: sha256.New()}
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for {
		line, err := readExportLine(br, buf[:0])
		buf = line
		if err == io.EOF && len(line) == 0 {
			if x.line == 0 {
				return ExportManifest{}, &ExportError{Line: 1, Reason: "empty file: not an export"}
			}
			x.line++
			return ExportManifest{}, x.fail("the file ends without a manifest: cut short")
		}
		x.line++
		if err == errLineTooLong {
			return ExportManifest{}, x.fail("line longer than %d bytes", ExportMaxLineBytes)
		}
		if err != nil && err != io.EOF {
			return ExportManifest{}, fmt.Errorf("ledgerfmt: export: read: %w", err)
		}
		if line[len(line)-1] != '\n' {
			return ExportManifest{}, x.fail("the line does not end in a newline: the file is cut short")
		}
		body := line[:len(line)-1]
		switch {
		case x.line == 1:
			err = x.header(body)
		case bytes.HasPrefix(body, []byte(exportTrailerStart)):
			m, err := x.trailer(body)
			if err != nil {
				return m, err
			}
			if _, err := br.ReadByte(); err != io.EOF {
				x.line++
				return ExportManifest{}, x.fail("bytes after the manifest")
			}
			return m, nil
		default:
			err = x.record(body)
		}
		if err != nil {
			return ExportManifest{}, err
		}
		x.sum.Write(line)
	}
}

var errLineTooLong = errors.New("line too long")

// readExportLine appends the next line, with its newline, to dst.
func readExportLine(br *bufio.Reader, dst []byte) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice('\n')
		dst = append(dst, chunk...)
		if len(dst) > ExportMaxLineBytes {
			return dst, errLineTooLong
		}
		if err != bufio.ErrBufferFull {
			return dst, err
		}
	}
}

func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

func (x *exportVerifier) header(b []byte) error {
	h := &x.head
	if err := strictJSON(b, h); err != nil {
		return x.fail("not an export header: %v", err)
	}
	if h.Version == nil || *h.Version != ExportVersion {
		return x.fail("not an export of version %d", ExportVersion)
	}
	if h.From == nil || h.To == nil || *h.From > *h.To {
		return x.fail("the header's range is missing, or from is past to")
	}
	if err := CheckExportTenant(h.Tenant); err != nil {
		return x.fail("%v", err)
	}
	c, err := x.v.OpenCheckpoint([]byte(h.Checkpoint))
	if err != nil {
		return x.fail("%v", err)
	}
	if c.Size < *h.To {
		return x.fail("the range ends at %d, past the checkpoint's %d records", *h.To, c.Size)
	}
	x.ckpt, x.next = c, *h.From
	return nil
}

func (x *exportVerifier) record(b []byte) error {
	var r exportRecordJSON
	if err := strictJSON(b, &r); err != nil {
		return x.fail("not a span record: %v", err)
	}
	if r.Seq == nil || r.Span == nil || r.Proof == nil {
		return x.fail("a record needs seq, ts, leaf, span and proof")
	}
	seq := *r.Seq
	switch {
	case seq < x.next:
		return x.fail("seq %d: out of order or before the range (want %d or more)", seq, x.next)
	case seq >= *x.head.To:
		return x.fail("seq %d: past the range's end %d", seq, *x.head.To)
	}
	x.scratch = AppendLeafInput(append(x.scratch[:0], 0), seq, []byte(r.TS), KindSpan, r.Span)
	if leaf := Hash(sha256.Sum256(x.scratch)); leaf != r.Leaf {
		return x.fail("seq %d: leaf %s is not the hash of the record (%s)", seq, r.Leaf, leaf)
	}
	var keys struct {
		Tenant string `json:"tenant"`
	}
	if err := json.Unmarshal(r.Span, &keys); err != nil || keys.Tenant != x.head.Tenant {
		return x.fail("seq %d: a span of tenant %q in an export of %q", seq, keys.Tenant, x.head.Tenant)
	}
	if err := VerifyInclusion(seq, x.ckpt.Size, r.Leaf, r.Proof, x.ckpt.Root); err != nil {
		return x.fail("seq %d: the proof does not lead to the checkpoint's root: %v", seq, err)
	}
	x.next = seq + 1
	x.records++
	return nil
}

func (x *exportVerifier) trailer(b []byte) (ExportManifest, error) {
	if x.ckpt == nil {
		return ExportManifest{}, x.fail("a manifest without a header")
	}
	var msg string
	raw := b[len(exportTrailerStart):]
	if len(raw) < 3 || raw[len(raw)-1] != '}' || json.Unmarshal(raw[:len(raw)-1], &msg) != nil ||
		!bytes.Equal(jsonstr.Append(nil, msg), raw[:len(raw)-1]) {
		return ExportManifest{}, x.fail(`the manifest line is not {"manifest":"<signed note>"}`)
	}
	m, err := x.v.OpenExportManifest([]byte(msg))
	if err != nil {
		return m, x.fail("%v", err)
	}
	h := &x.head
	var sum [sha256.Size]byte
	x.sum.Sum(sum[:0])
	switch {
	case m.Tenant != h.Tenant || m.From != *h.From || m.To != *h.To:
		return m, x.fail("the manifest is of tenant %s range %d..%d, the header of %s range %d..%d", m.Tenant, m.From, m.To, h.Tenant, *h.From, *h.To)
	case m.Size != x.ckpt.Size || m.Root != x.ckpt.Root:
		return m, x.fail("the manifest names checkpoint %d %s, the header carries %d %s", m.Size, m.Root, x.ckpt.Size, x.ckpt.Root)
	case m.Records != x.records:
		return m, x.fail("the manifest counts %d records, the file holds %d", m.Records, x.records)
	case m.SHA256 != sum:
		return m, x.fail("the file's SHA-256 is %x, the manifest says %x: the lines before it were changed", sum, m.SHA256)
	}
	return m, nil
}
