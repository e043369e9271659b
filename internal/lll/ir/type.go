package ir

import (
	"fmt"
	"strings"
)

// Kind is the kind of a type or a value.
type Kind uint8

// The kinds of the language. Invalid marks a type the checker could not
// determine (after an error); it is compatible with everything so one
// mistake is reported once.
const (
	Invalid Kind = iota
	Null
	Bool
	Number     // exact decimal, 6 fractional digits (fixed point)
	String     //
	Duration   // nanoseconds
	Percentile // "p96": a number in [0, 100]
	Timestamp  // an instant, from an RFC 3339 text
	List       // list<Elem>
	Map        // map<Elem>, string keys, sorted
	Any        // a JSON value whose type is known only at run time (data.*)
)

var kindNames = [...]string{"invalid", "null", "bool", "number", "string", "duration", "percentile", "timestamp", "list", "map", "any"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Type is a type of the language: a kind, with an element type for lists
// and maps. Its text form is "string", "list<string>", "map<number>".
type Type struct {
	Kind Kind
	Elem *Type
}

// Predeclared types.
var (
	TInvalid    = Type{Kind: Invalid}
	TNull       = Type{Kind: Null}
	TBool       = Type{Kind: Bool}
	TNumber     = Type{Kind: Number}
	TString     = Type{Kind: String}
	TDuration   = Type{Kind: Duration}
	TPercentile = Type{Kind: Percentile}
	TTimestamp  = Type{Kind: Timestamp}
	TAny        = Type{Kind: Any}
)

// ListOf returns list<elem>.
func ListOf(elem Type) Type { return Type{Kind: List, Elem: &elem} }

// MapOf returns map<elem>.
func MapOf(elem Type) Type { return Type{Kind: Map, Elem: &elem} }

// ElemType returns the element type of a list or map (any otherwise).
func (t Type) ElemType() Type {
	if t.Elem == nil {
		if t.Kind == Invalid {
			return TInvalid
		}
		return TAny
	}
	return *t.Elem
}

func (t Type) String() string {
	switch t.Kind {
	case List, Map:
		return fmt.Sprintf("%s<%s>", t.Kind, t.ElemType())
	}
	return t.Kind.String()
}

// Equal reports whether t and u are the same type.
func (t Type) Equal(u Type) bool {
	if t.Kind != u.Kind {
		return false
	}
	if t.Kind == List || t.Kind == Map {
		return t.ElemType().Equal(u.ElemType())
	}
	return true
}

// Numeric reports whether values of t compare as numbers.
func (t Type) Numeric() bool { return t.Kind == Number || t.Kind == Percentile }

// Loose reports whether t is checked only at run time (any) or unknown.
func (t Type) Loose() bool { return t.Kind == Any || t.Kind == Invalid }

// MarshalText writes the text form.
func (t Type) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText parses the text form.
func (t *Type) UnmarshalText(b []byte) error {
	v, ok := ParseType(string(b))
	if !ok {
		return fmt.Errorf("ir: bad type %q", b)
	}
	*t = v
	return nil
}

// ParseType parses the text form of a type.
func ParseType(s string) (Type, bool) {
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if !strings.HasSuffix(s, ">") {
			return Type{}, false
		}
		elem, ok := ParseType(s[i+1 : len(s)-1])
		if !ok {
			return Type{}, false
		}
		switch s[:i] {
		case "list":
			return ListOf(elem), true
		case "map":
			return MapOf(elem), true
		}
		return Type{}, false
	}
	for k, n := range kindNames {
		if n == s && Kind(k) != List && Kind(k) != Map {
			return Type{Kind: Kind(k)}, true
		}
	}
	return Type{}, false
}
