package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"hash/crc32"
	"strconv"
	"time"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// The record framing. Each record of a segment is one line:
//
//		{"seq":41,"ts":"2025-10-05T22:18:07.214000Z","leaf":"3q2+7w…=","crc":"a1b2c3d4","span":{…}}\n
//		 └─ seq ─┘ └────────── ts (27 bytes) ─────┘ └─ leaf (44) ─┘ └─ crc (8) ┘ └─ kind ┘ └ body ┘
//
//	  - seq: the record's sequence number, its leaf index in the Merkle tree,
//	    decimal without leading zeros. The first record is 0.
//	  - ts: the server's append time, UTC, always six fractional digits. All
//	    records of one group commit carry the same ts; ts strictly increases
//	    from one commit to the next, so commits can be told apart in a segment.
//	  - leaf: standard base64 of the RFC 6962 leaf hash,
//	    SHA-256(0x00 || leaf input), where the leaf input is the line without
//	    its "leaf" and "crc" members:
//	    {"seq":41,"ts":"2025-10-05T22:18:07.214000Z","span":{…}}
//	  - crc: CRC-32C (Castagnoli) as eight lowercase hex digits, computed over
//	    every byte of the line except those eight digits and the final newline.
//	    Any change of one byte of a line changes its CRC or breaks its framing.
//	  - kind and body: the member name says what the record is ("span", or
//	    "tick" and "config" for records the server appends itself) and the
//	    value is the record's body in canonical JSON (RFC 8785).
//
// A segment is such lines back to back and nothing else, so grep and jq read
// it as it is.
const (
	tsLayout  = ledgerfmt.TimeLayout
	tsLen     = len(tsLayout)
	leafB64   = 44 // base64 of 32 bytes
	crcLen    = 8
	maxSeqLen = 20
	// maxFrameBytes bounds the framing around a body: seq, ts, leaf, crc
	// and a kind of at most 64 letters.
	maxFrameBytes = 256
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one decoded ledger record.
type Record struct {
	Seq  uint64
	TS   time.Time
	Leaf ledgerfmt.Hash
	Kind string
	// Body is the canonical JSON body. It aliases the buffer the record was
	// read from unless the record came from the ledger's read API, which
	// returns owned copies.
	Body []byte
}

// leafHash computes a leaf hash, building the input in *scratch.
func leafHash(scratch *[]byte, seq uint64, ts []byte, kind string, body []byte) ledgerfmt.Hash {
	b := ledgerfmt.AppendLeafInput(append((*scratch)[:0], 0), seq, ts, kind, body)
	*scratch = b
	return sha256.Sum256(b)
}

// encoder frames and seals records, reusing its hash state.
type encoder struct {
	sha  hash.Hash
	zero [1]byte
	sum  [sha256.Size]byte
}

// Offsets in a framed line, after the seq's d digits.
const (
	frameStart  = `{"seq":`
	framePrefix = len(frameStart)
	frameTSAt   = framePrefix + len(`,"ts":"`)             // + d
	frameLeafAt = frameTSAt + tsLen + len(`","leaf":"`)    // + d
	frameCRCAt  = frameLeafAt + leafB64 + len(`","crc":"`) // + d
	frameKindAt = frameCRCAt + crcLen + len(`","`)         // + d
	leafInput1  = frameTSAt + tsLen + len(`"`)             // + d: {"seq":S,"ts":"T"
	leafInput2  = frameCRCAt + crcLen + len(`"`)           // + d: ,"KIND":BODY}
	zeroLeaf    = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)

// appendFrame appends the line of a record (and its newline) with the leaf
// and crc left blank, for sealLine to fill in. ts must be formatted with
// tsLayout.
func appendFrame(dst []byte, seq uint64, ts []byte, kind string, body []byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"ts":"`...)
	dst = append(dst, ts...)
	dst = append(dst, `","leaf":"`...)
	dst = append(dst, zeroLeaf...)
	dst = append(dst, `","crc":"00000000","`...)
	dst = append(dst, kind...)
	dst = append(dst, `":`...)
	dst = append(dst, body...)
	return append(dst, '}', '\n')
}

// sealLine computes the leaf hash of a line made by appendFrame (without
// its newline) and writes the leaf and the crc into it.
func (e *encoder) sealLine(line []byte) ledgerfmt.Hash {
	leaf := e.leafOf(line)
	fillLine(line, &leaf)
	return leaf
}

// lineSeq reads the seq of a framed line without decoding the rest.
func lineSeq(line []byte) (uint64, bool) {
	if len(line) <= framePrefix || string(line[:framePrefix]) != frameStart {
		return 0, false
	}
	d := 0
	for ; framePrefix+d < len(line) && line[framePrefix+d] != ','; d++ {
		c := line[framePrefix+d]
		if c < '0' || c > '9' || d >= maxSeqLen || (d == 1 && line[framePrefix] == '0') {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(string(line[framePrefix:framePrefix+d]), 10, 64)
	return v, d > 0 && err == nil
}

// seqDigits returns the number of digits of a framed line's seq.
func seqDigits(line []byte) int {
	d := 0
	for line[framePrefix+d] != ',' {
		d++
	}
	return d
}

// leafOf computes the leaf hash of a framed line, sealed or not: the leaf
// input is the line without its leaf and crc members, two slices of it.
// It only reads the line.
func (e *encoder) leafOf(line []byte) ledgerfmt.Hash {
	d := seqDigits(line)
	if e.sha == nil {
		e.sha = sha256.New()
	}
	e.sha.Reset()
	e.sha.Write(e.zero[:])
	e.sha.Write(line[:leafInput1+d])
	e.sha.Write(line[leafInput2+d:])
	return ledgerfmt.Hash(e.sha.Sum(e.sum[:0]))
}

// fillLine writes a framed line's leaf and crc.
func fillLine(line []byte, leaf *ledgerfmt.Hash) {
	d := seqDigits(line)
	base64.StdEncoding.Encode(line[frameLeafAt+d:frameLeafAt+d+leafB64], leaf[:])
	crcAt := frameCRCAt + d
	c := crc32.Update(0, castagnoli, line[:crcAt])
	c = crc32.Update(c, castagnoli, line[crcAt+crcLen:])
	putHex32(line[crcAt:crcAt+crcLen], c)
}

// appendRecord appends the framed line of a record to dst and returns the
// extended buffer and the record's leaf hash. ts must be formatted with
// tsLayout.
func (e *encoder) appendRecord(dst []byte, seq uint64, ts []byte, kind string, body []byte) ([]byte, ledgerfmt.Hash) {
	start := len(dst)
	dst = appendFrame(dst, seq, ts, kind, body)
	return dst, e.sealLine(dst[start : len(dst)-1])
}

const hexDigits = "0123456789abcdef"

func putHex32(b []byte, v uint32) {
	for i := 7; i >= 0; i-- {
		b[i] = hexDigits[v&0xf]
		v >>= 4
	}
}

func parseHex32(b []byte) (uint32, bool) {
	if len(b) != 8 {
		return 0, false
	}
	var v uint32
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint32(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint32(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// FrameError describes a line that is not a well-formed record. Offset is
// relative to the start of the line.
type FrameError struct {
	Offset int
	Msg    string
}

func (e *FrameError) Error() string { return fmt.Sprintf("byte %d of record: %s", e.Offset, e.Msg) }

func frameErr(off int, format string, args ...any) error {
	return &FrameError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// decodeRecord decodes one line (without its newline) and checks its framing,
// CRC and leaf hash. The returned record's Body aliases line. *scratch is
// reused for the leaf computation.
func decodeRecord(line []byte, scratch *[]byte) (Record, error) {
	return decodeRecordCheck(line, scratch, true)
}

// decodeRecordCheck is decodeRecord, checking the leaf hash only when
// checkLeaf is set (the CRC is always checked).
func decodeRecordCheck(line []byte, scratch *[]byte, checkLeaf bool) (Record, error) {
	var r Record
	p := 0
	expect := func(lit string) bool {
		if !bytes.HasPrefix(line[p:], []byte(lit)) {
			return false
		}
		p += len(lit)
		return true
	}
	if !expect(`{"seq":`) {
		return r, frameErr(p, `want {"seq":`)
	}
	ds := p
	for p < len(line) && line[p] >= '0' && line[p] <= '9' && p-ds <= maxSeqLen {
		p++
	}
	if p == ds || p-ds > maxSeqLen || (line[ds] == '0' && p-ds > 1) {
		return r, frameErr(ds, "bad sequence number")
	}
	seq, err := strconv.ParseUint(string(line[ds:p]), 10, 64)
	if err != nil {
		return r, frameErr(ds, "bad sequence number")
	}
	r.Seq = seq
	if !expect(`,"ts":"`) {
		return r, frameErr(p, `want ,"ts":"`)
	}
	if len(line)-p < tsLen {
		return r, frameErr(p, "truncated ts")
	}
	tsb := line[p : p+tsLen]
	ts, err := time.Parse(tsLayout, string(tsb))
	if err != nil || !bytes.Equal(ts.AppendFormat(nil, tsLayout), tsb) {
		return r, frameErr(p, "bad ts %q", tsb)
	}
	r.TS = ts
	p += tsLen
	if !expect(`","leaf":"`) {
		return r, frameErr(p, `want ","leaf":"`)
	}
	if len(line)-p < leafB64 {
		return r, frameErr(p, "truncated leaf")
	}
	leafb := line[p : p+leafB64]
	if err := r.Leaf.UnmarshalText(leafb); err != nil {
		return r, frameErr(p, "bad leaf")
	}
	p += leafB64
	if !expect(`","crc":"`) {
		return r, frameErr(p, `want ","crc":"`)
	}
	if len(line)-p < crcLen {
		return r, frameErr(p, "truncated crc")
	}
	crcAt := p
	want, ok := parseHex32(line[p : p+crcLen])
	if !ok {
		return r, frameErr(p, "bad crc digits")
	}
	p += crcLen
	if !expect(`","`) {
		return r, frameErr(p, `want ","`)
	}
	ks := p
	for p < len(line) && line[p] >= 'a' && line[p] <= 'z' {
		p++
	}
	if p == ks {
		return r, frameErr(p, "missing record kind")
	}
	kind := line[ks:p]
	if !expect(`":`) {
		return r, frameErr(p, `want ":`)
	}
	if len(line) < p+2 || line[len(line)-1] != '}' {
		return r, frameErr(len(line), "record not closed")
	}
	body := line[p : len(line)-1]
	if body[0] != '{' {
		return r, frameErr(p, "body is not an object")
	}
	got := crc32.Update(0, castagnoli, line[:crcAt])
	got = crc32.Update(got, castagnoli, line[crcAt+crcLen:])
	if got != want {
		return r, frameErr(crcAt, "checksum mismatch: stored %08x, computed %08x", want, got)
	}
	r.Kind = internKind(kind)
	r.Body = body
	if !checkLeaf {
		return r, nil
	}
	if l := leafHash(scratch, seq, tsb, r.Kind, body); l != r.Leaf {
		return r, frameErr(ds, "leaf hash mismatch")
	}
	return r, nil
}

// internKind avoids allocating the kind string for the known kinds.
func internKind(b []byte) string {
	switch string(b) {
	case ledgerfmt.KindSpan:
		return ledgerfmt.KindSpan
	case ledgerfmt.KindTick:
		return ledgerfmt.KindTick
	case ledgerfmt.KindConfig:
		return ledgerfmt.KindConfig
	}
	return string(b)
}
