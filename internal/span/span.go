// Package span defines the span, the unit of fact LogLineOS stores: who did
// what to which thing, when, confirmed by whom.
//
// A span travels as one JSON object (NDJSON: one per line):
//
//	{"id":"s_01JD8X3K2M4N5P6Q7R8S9T0V1W","tenant":"t_voulezvous","who":"dan",
//	 "did":"sale.post","this":"order:12345","when":"2025-10-05T22:18:07Z",
//	 "confirmed_by":["pos://register-7"],"status":"confirmed",
//	 "data":{"gross":19.90,"items":3}}
//
// Parse decodes such an object strictly (RFC 8259, valid UTF-8, no duplicate
// members, bounded size, member count and depth) and keeps its canonical form
// (RFC 8785, JSON Canonicalization Scheme), the exact bytes the ledger stores
// and hashes. Parse checks syntax, limits and the wire types of the known
// members; whether a member is required, and what its value must look like, is
// the span contract's business (the validator), not the decoder's.
// Canonicalize and AppendCanonical give the canonical form of any JSON text.
//
// Decoding is the ingest hot path: one pass over the input, no reflection,
// the canonical form written as the input is read. Parse makes three
// allocations (the Span, its canonical bytes, and one string that every
// field of the Span is a substring of), Canonicalize one, AppendCanonical
// none when its buffer is reused. The benchmarks in bench_test.go measure
// them against decoding and re-encoding with encoding/json.
//
// # Input
//
// Input must be strict RFC 8259 JSON: no comments, trailing commas, single
// quotes, leading zeros, NaN or Infinity, no byte order mark, nothing but
// whitespace after the value. On top of that, as RFC 8785 (I-JSON, RFC 7493)
// requires: the whole text is valid UTF-8, \u escapes pair their
// surrogates, member names are unique within an object once unescaped, and
// every number is within float64 (1E400 is an error; 1E-400 is 0).
//
// # Canonical form
//
// The canonical form (RFC 8785 §3.2) of the example above is
//
//		{"confirmed_by":["pos://register-7"],"data":{"gross":19.9,"items":3},"did":"sale.post","id":"s_01JD8X3K2M4N5P6Q7R8S9T0V1W","status":"confirmed","tenant":"t_voulezvous","this":"order:12345","when":"2025-10-05T22:18:07Z","who":"dan"}
//
//	  - no whitespace between tokens;
//	  - object members sorted by the UTF-16 code units of their unescaped
//	    names (so U+1F600 sorts before U+FB33, unlike in UTF-8 byte order),
//	    arrays kept in order;
//	  - strings escape only what JSON requires: \" \\ \b \f \n \r \t, other
//	    control characters as \u00xx in lower-case hex; everything else,
//	    "/", U+007F, U+2028 and U+2029 included, is literal UTF-8; no Unicode
//	    normalization;
//	  - numbers are written as ECMAScript's Number.prototype.toString writes
//	    the float64 nearest to them: the shortest digits that read back to
//	    the same float64, in fixed notation when the decimal exponent is in
//	    [-6, 21) (0.000001, 100, 123456789012345680000) and as 1e+21, 1e-7,
//	    1.5e+300 otherwise; -0 is 0;
//	  - true, false, null as they are.
//
// The canonical form is a fixed point: canonicalizing it again yields it.
//
// # Errors
//
// Errors are values. A *SyntaxError has the 0-based byte Offset of the
// problem and a Msg; its Error() is Msg + " at byte " + Offset. The messages,
// stable, are:
//
//	empty input
//	unexpected end of input (truncated?)
//	invalid UTF-8
//	invalid character 'x' looking for beginning of value
//	invalid character 'x' looking for beginning of object key string
//	invalid character 'x' after object key
//	invalid character 'x' after object key:value pair
//	invalid character 'x' after array element
//	invalid character 'x' after top-level value
//	invalid character 'x' in literal true (expecting 'r')
//	invalid character 'x' in numeric literal
//	invalid character 'x' after decimal point in numeric literal
//	invalid character 'x' in exponent of numeric literal
//	invalid character U+000A in string literal
//	invalid character 'x' in string escape code
//	invalid character 'x' in \u hexadecimal character escape
//	trailing comma in object
//	trailing comma in array
//	leading zero in number
//	lone surrogate \ud83d in string literal
//	number 1E400 overflows float64
//	duplicate member "id"
//	nesting deeper than 32                     (Canonicalize only)
//	span must be a JSON object, not an array   (Parse only)
//
// A character is shown as 'x' when printable, as U+XXXX otherwise. A
// duplicate member is reported when its object closes, at the offset of its
// second occurrence, so a syntax error later in the same object is reported
// first.
//
// Parse also returns a *LimitError (Limit "bytes", "members" or "depth";
// "span is 70000 bytes, over the limit of 65536", "span has more than 1024
// members", "span nests deeper than 16 levels") and a *FieldError for a known
// member of the wrong type (`field "id" must be a string, not a number`,
// `field "confirmed_by" must be an array of strings; element 1 is a number`,
// `field "data" must be an object, not an array`).
package span

import "time"

// Span is one decoded span. The string fields hold the decoded values of the
// members of the same name ("" when absent). Canonical returns the RFC 8785
// form of the whole object, members sorted, which is what the ledger stores.
type Span struct {
	ID     string
	Tenant string
	Who    string
	Did    string
	This   string
	// WhenRaw is the "when" member as sent; When is its value when WhenRaw is
	// a valid RFC 3339 timestamp (WhenOK reports which), in UTC. See
	// ValidRFC3339.
	WhenRaw string
	When    time.Time
	WhenOK  bool
	Status  string
	// ConfirmedBy is the "confirmed_by" member, nil when absent.
	ConfirmedBy []string
	// Data is the canonical form of the "data" member, nil when absent. It
	// shares memory with Canonical and must not be modified.
	Data []byte
	// Members lists the top-level member names present, in canonical order.
	Members []string

	canonical []byte

	// Backing arrays for Members and ConfirmedBy, so that a typical span
	// costs one allocation less each.
	membersBuf   [10]string
	confirmedBuf [2]string
}

// Canonical returns the RFC 8785 canonical JSON form of the span. The slice
// must not be modified.
func (s *Span) Canonical() []byte { return s.canonical }
