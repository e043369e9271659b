package ledgerfmt

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"
)

// Hash is a SHA-256 hash: a record's leaf hash or a node of the Merkle tree.
// It is standard base64 on the wire.
type Hash [32]byte

// String returns the standard base64 form used on the wire.
func (h Hash) String() string { return base64.StdEncoding.EncodeToString(h[:]) }

// MarshalText implements encoding.TextMarshaler (base64).
func (h Hash) MarshalText() ([]byte, error) {
	return base64.StdEncoding.AppendEncode(nil, h[:]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (base64).
func (h *Hash) UnmarshalText(b []byte) error {
	var buf [33]byte
	n, err := base64.StdEncoding.Decode(buf[:], b)
	if err != nil || n != len(h) {
		return fmt.Errorf("ledgerfmt: bad hash %q: want base64 of 32 bytes", b)
	}
	copy(h[:], buf[:len(h)])
	return nil
}

// Record kinds: the member name that holds a record's body.
const (
	KindSpan   = "span"   // a span an app appended
	KindTick   = "tick"   // a record the server appends itself
	KindConfig = "config" // a tenant configuration the server recorded
)

// TimeLayout is how the ledger writes a time (a record's ts, a receipt's
// ts): RFC 3339 in UTC with exactly six fractional digits, 27 bytes.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// Timestamp is a ledger time, written as TimeLayout.
type Timestamp struct{ time.Time }

// MarshalJSON implements json.Marshaler.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(TimeLayout)+2)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, TimeLayout)
	return append(b, '"'), nil
}

// UnmarshalJSON implements json.Unmarshaler; it accepts any RFC 3339 time.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("ledgerfmt: bad timestamp %s", b)
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("ledgerfmt: bad timestamp %s", b)
	}
	t.Time = v
	return nil
}

// LeafHash returns the RFC 6962 leaf hash of a record: SHA-256 of 0x00 and
// the leaf input {"seq":S,"ts":"T","KIND":BODY} (see AppendLeafInput).
func LeafHash(seq uint64, ts time.Time, kind string, body []byte) Hash {
	b := make([]byte, 1, 1+64+len(kind)+len(body))
	return sha256.Sum256(AppendLeafInput(b, seq, ts.UTC().AppendFormat(nil, TimeLayout), kind, body))
}

// AppendLeafInput appends a record's leaf input to dst:
//
//	{"seq":41,"ts":"2025-10-05T22:18:07.214000Z","span":{…}}
//
// seq in decimal, ts formatted with TimeLayout, then the kind as the member
// name of the body, which is canonical JSON (RFC 8785) as stored.
func AppendLeafInput(dst []byte, seq uint64, ts []byte, kind string, body []byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"ts":"`...)
	dst = append(dst, ts...)
	dst = append(dst, `","`...)
	dst = append(dst, kind...)
	dst = append(dst, `":`...)
	dst = append(dst, body...)
	return append(dst, '}')
}
