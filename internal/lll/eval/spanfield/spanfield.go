// Package spanfield names the top-level fields of a span as both backends
// of the language see them: the interpreter (package eval) switches over
// them, and the WebAssembly backend (package wasm/layout) gives each its
// slot in a module's input, in this order.
//
//	None  0  a member that is no span field
//	ID    1  id            Tenant 2  tenant        Who    3  who
//	Did   4  did           This   5  this          When   6  when (its text)
//	Status 7 status        ConfirmedBy 8 confirmed_by (a list of strings)
//	Data  9  data (any JSON value; an object in a valid span)
//
// The numbers are part of the module format: changing them changes the
// modules the backend emits.
package spanfield

import "github.com/loglineos/loglineos/internal/span"

// Field is a top-level field of a span.
type Field uint8

// The fields (part of the format, see the package doc).
const (
	None Field = iota
	ID
	Tenant
	Who
	Did
	This
	When
	Status
	ConfirmedBy
	Data
)

// Count is the number of Field values, None included.
const Count = 10

// Of returns the field a member name is, None for any other name.
func Of(name string) Field {
	switch name {
	case "id":
		return ID
	case "tenant":
		return Tenant
	case "who":
		return Who
	case "did":
		return Did
	case "this":
		return This
	case "when":
		return When
	case "status":
		return Status
	case "confirmed_by":
		return ConfirmedBy
	case "data":
		return Data
	}
	return None
}

// Name returns the member name of f ("" for None).
func (f Field) Name() string {
	if int(f) >= Count {
		return ""
	}
	return [Count]string{"", "id", "tenant", "who", "did", "this", "when", "status", "confirmed_by", "data"}[f]
}

// IsString reports whether f is a string member of a span (when included:
// its text).
func (f Field) IsString() bool { return f >= ID && f <= Status }

// String returns the text of a string field of s (for When the text as
// written), "" for an absent member and for the other fields.
func String(s *span.Span, f Field) string {
	switch f {
	case ID:
		return s.ID
	case Tenant:
		return s.Tenant
	case Who:
		return s.Who
	case Did:
		return s.Did
	case This:
		return s.This
	case When:
		return s.WhenRaw
	case Status:
		return s.Status
	}
	return ""
}
