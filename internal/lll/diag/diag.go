// Package diag holds the diagnostics of the .lll toolchain: values
// {Pos, End, Code, Msg} collected in a List sorted by position, in the style
// of go/scanner's ErrorList, and their printing with the source line and a
// caret under the offending range:
//
//	stdlib/canonical.lll:6:29: error[LLL025]: unknown format "rfc3389"; did you mean "rfc3339"?
//	   6 |   require field "when" as "rfc3389"
//	     |                           ^^^^^^^^^
//
// Every diagnostic carries a stable code LLLnnn; Codes lists them all with a
// one-line meaning, and docs/lll.md explains each.
package diag

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/loglineos/loglineos/internal/lll/token"
)

// Code is a stable diagnostic code such as "LLL025".
type Code string

// The diagnostic codes. Scanner 001-009, parser 010-019, checker 020-059,
// evaluation 100-109.
const (
	IllegalChar       Code = "LLL001" // a character that is not part of the language
	UnterminatedStr   Code = "LLL002" // string literal not closed on its line
	BadEscape         Code = "LLL003" // unknown escape sequence in a string
	BadNumber         Code = "LLL004" // malformed number or duration literal
	ForeignOperator   Code = "LLL005" // an operator spelled as in another language (&&, ||, !, =)
	TooLarge          Code = "LLL008" // a source file larger than the scanner takes
	TooMany           Code = "LLL009" // too many errors: the rest of a phase's errors are not reported
	Unexpected        Code = "LLL010" // unexpected token
	UnknownDecl       Code = "LLL011" // unknown declaration keyword
	UnknownStmt       Code = "LLL012" // unknown statement in a declaration body
	StmtEnd           Code = "LLL013" // two statements on one line
	Unclosed          Code = "LLL014" // block, list or parenthesis not closed
	DuplicateDecl     Code = "LLL020" // two declarations of the same kind and name
	DuplicateKey      Code = "LLL021" // a key given twice in a policy, map or schema
	UnknownPolicy     Code = "LLL022" // reference to a policy that is not declared
	UnknownPolicyKey  Code = "LLL023" // reference to a key a policy does not have
	UnknownField      Code = "LLL024" // unknown span or event field
	UnknownFormat     Code = "LLL025" // unknown format after "as"
	FormatMismatch    Code = "LLL026" // format that can never match the field's type
	UnknownFunc       Code = "LLL027" // unknown builtin, kernel or host call
	BadArgs           Code = "LLL028" // wrong number or type of arguments
	TypeMismatch      Code = "LLL029" // operands of the wrong type
	NotBool           Code = "LLL030" // condition that is not a bool
	UnknownFeature    Code = "LLL031" // unknown features.X flag
	UnknownInput      Code = "LLL032" // unknown input event type
	UnknownEvent      Code = "LLL033" // unknown event type to emit or derive
	BadOnFail         Code = "LLL034" // on_fail action not one of "reject", "warn"
	UnknownCap        Code = "LLL035" // unknown capability name
	CapNotDeclared    Code = "LLL036" // host call whose capability is not declared with uses
	CapUnused         Code = "LLL037" // capability declared with uses but never used
	PolicyType        Code = "LLL038" // standard policy key with a value of the wrong type
	BadGlob           Code = "LLL039" // malformed glob or field:glob pattern
	Repeated          Code = "LLL040" // a rule or property given twice in one declaration
	Missing           Code = "LLL041" // a required property or statement is missing
	UnknownType       Code = "LLL042" // unknown type name in a schema
	BadValue          Code = "LLL043" // a literal value out of range or malformed
	WrongContext      Code = "LLL044" // a name or call used where it has no meaning
	SchemaDisagrees   Code = "LLL045" // the span schema and the span contract allow different values of a field
	StepBudget        Code = "LLL100" // evaluation exceeded its step budget
	Canceled          Code = "LLL101" // evaluation canceled by its context
	RuntimeType       Code = "LLL102" // a dynamic value had the wrong type at run time
	Arithmetic        Code = "LLL103" // overflow or division by zero
	KernelUnavailable Code = "LLL104" // a kernel the host did not provide
	ByteBudget        Code = "LLL105" // evaluation created more bytes of values than its budget
	Deadline          Code = "LLL106" // evaluation ran past its deadline
)

// codeTable maps every code to its one-line meaning.
func codeTable() map[Code]string {
	return map[Code]string{
		IllegalChar: "illegal character", UnterminatedStr: "unterminated string",
		BadEscape: "invalid escape sequence", BadNumber: "malformed number or duration",
		ForeignOperator: "operator from another language", TooLarge: "source file too large", TooMany: "too many errors", Unexpected: "unexpected token",
		UnknownDecl: "unknown declaration", UnknownStmt: "unknown statement",
		StmtEnd: "statement must end at the end of the line", Unclosed: "unclosed block",
		DuplicateDecl: "duplicate declaration", DuplicateKey: "duplicate key",
		UnknownPolicy: "unknown policy", UnknownPolicyKey: "unknown policy key",
		UnknownField: "unknown field", UnknownFormat: "unknown format",
		FormatMismatch: "format does not apply to the field", UnknownFunc: "unknown function",
		BadArgs: "bad arguments", TypeMismatch: "type mismatch", NotBool: "condition is not a bool",
		UnknownFeature: "unknown feature flag", UnknownInput: "unknown input type",
		UnknownEvent: "unknown event type", BadOnFail: "invalid on_fail action",
		UnknownCap: "unknown capability", CapNotDeclared: "capability not declared",
		CapUnused: "capability declared but unused", PolicyType: "policy value of the wrong type",
		BadGlob: "malformed glob", Repeated: "repeated rule or property",
		Missing: "missing property", UnknownType: "unknown type", BadValue: "invalid value",
		WrongContext: "used out of context", SchemaDisagrees: "schema and contract disagree", StepBudget: "step budget exceeded",
		Canceled: "evaluation canceled", RuntimeType: "runtime type error",
		Arithmetic: "arithmetic error", KernelUnavailable: "kernel not available",
		ByteBudget: "byte budget exceeded", Deadline: "deadline exceeded",
	}
}

// Codes returns every diagnostic code with its one-line meaning, sorted.
func Codes() []struct{ Code, Meaning string } {
	codes := codeTable()
	out := make([]struct{ Code, Meaning string }, 0, len(codes))
	for c, m := range codes {
		out = append(out, struct{ Code, Meaning string }{string(c), m})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

// Known reports whether c is a defined code.
func Known(c Code) bool { _, ok := codeTable()[c]; return ok }

// Diagnostic is one error found in a source. End, when valid, is the
// position just past the offending range.
type Diagnostic struct {
	Pos  token.Pos
	End  token.Pos
	Code Code
	Msg  string
}

// Error returns "file:line:col: error[LLLnnn]: message".
func (d *Diagnostic) Error() string {
	return fmt.Sprintf("%s: error[%s]: %s", d.Pos, d.Code, d.Msg)
}

// List is a list of diagnostics. The zero List is empty and ready to use.
type List []*Diagnostic

// MaxErrors is how many diagnostics one List takes; past it, Add records
// one TooMany diagnostic and drops the rest, so a garbage input costs
// bounded memory and gives a readable report.
const MaxErrors = 100

// Add appends a diagnostic.
func (l *List) Add(pos, end token.Pos, code Code, format string, args ...any) {
	if n := len(*l); n >= MaxErrors {
		if (*l)[n-1].Code != TooMany {
			*l = append(*l, &Diagnostic{Pos: pos, End: end, Code: TooMany,
				Msg: fmt.Sprintf("too many errors (%d); the rest are not reported", MaxErrors)})
		}
		return
	}
	*l = append(*l, &Diagnostic{Pos: pos, End: end, Code: code, Msg: fmt.Sprintf(format, args...)})
}

// Sort sorts the list by position, then code, and removes exact duplicates
// and further diagnostics on a line that already has one with the same code.
func (l *List) Sort() {
	s := *l
	sort.SliceStable(s, func(i, j int) bool {
		a, b := s[i], s[j]
		if a.Pos.File != b.Pos.File {
			return a.Pos.File < b.Pos.File
		}
		if a.Pos.Offset != b.Pos.Offset {
			return a.Pos.Offset < b.Pos.Offset
		}
		if a.Code != b.Code {
			return a.Code < b.Code
		}
		return a.Msg < b.Msg
	})
	out := s[:0]
	for i, d := range s {
		if i > 0 {
			p := out[len(out)-1]
			if p.Pos == d.Pos && p.Code == d.Code && p.Msg == d.Msg {
				continue
			}
		}
		out = append(out, d)
	}
	*l = out
}

// Err returns the list as an error, or nil when it is empty.
func (l List) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// Error reports the first diagnostic and how many more there are.
func (l List) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	}
	return fmt.Sprintf("%s (and %d more errors)", l[0], len(l)-1)
}

// Print writes each diagnostic with its source line and a caret under the
// range. src returns the text of a file by name (nil when unknown, in which
// case only the message line is printed).
func Print(w io.Writer, l List, src func(file string) []byte) {
	for _, d := range l {
		fmt.Fprintln(w, d.Error())
		var text []byte
		if src != nil {
			text = src(d.Pos.File)
		}
		if text == nil || !d.Pos.IsValid() {
			continue
		}
		line := lineAt(text, d.Pos.Offset)
		if line == "" && d.Pos.Offset >= len(text) {
			continue
		}
		gutter := fmt.Sprintf("%4d | ", d.Pos.Line)
		fmt.Fprintf(w, "%s%s\n", gutter, strings.ReplaceAll(line, "\t", " "))
		width := 1
		if d.End.IsValid() && d.End.Line == d.Pos.Line && d.End.Col > d.Pos.Col {
			width = d.End.Col - d.Pos.Col
		}
		if max := len(line) - (d.Pos.Col - 1); width > max && max > 0 {
			width = max
		}
		fmt.Fprintf(w, "%s%s%s\n", strings.Repeat(" ", len(gutter)-2)+"| ",
			strings.Repeat(" ", d.Pos.Col-1), strings.Repeat("^", width))
	}
}

func lineAt(text []byte, off int) string {
	if off > len(text) {
		off = len(text)
	}
	start := off
	for start > 0 && text[start-1] != '\n' {
		start--
	}
	end := off
	for end < len(text) && text[end] != '\n' {
		end++
	}
	return strings.TrimRight(string(text[start:end]), "\r")
}
