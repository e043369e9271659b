// Package token defines the lexical tokens of the .lll language and the
// source positions the toolchain reports.
//
// A Pos names a file, a 1-based line and a 1-based column counted in bytes,
// and the byte offset, as go/token does for Go. Positions print as
// "file:line:col".
package token

import "fmt"

// Pos is a position in a source file. The zero Pos is "no position".
type Pos struct {
	File   string
	Offset int // byte offset, starting at 0
	Line   int // line number, starting at 1
	Col    int // column number in bytes, starting at 1
}

// IsValid reports whether the position is set.
func (p Pos) IsValid() bool { return p.Line > 0 }

// String returns "file:line:col", "line:col" without a file, or "-".
func (p Pos) String() string {
	switch {
	case !p.IsValid():
		if p.File != "" {
			return p.File
		}
		return "-"
	case p.File == "":
		return fmt.Sprintf("%d:%d", p.Line, p.Col)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Before reports whether p comes before q (by file name, then offset).
func (p Pos) Before(q Pos) bool {
	if p.File != q.File {
		return p.File < q.File
	}
	return p.Offset < q.Offset
}

// Kind is the kind of a token.
type Kind uint8

// The token kinds. Keywords are scanned as their own kinds; the parser
// accepts any keyword where a label (a field or member name) is expected.
const (
	ILLEGAL Kind = iota
	EOF
	COMMENT

	IDENT    // trajectory_linker
	STRING   // "24h"
	NUMBER   // 60, 0.4
	DURATION // 24h, 1h30m, 250ms

	LBRACE   // {
	RBRACE   // }
	LBRACK   // [
	RBRACK   // ]
	LPAREN   // (
	RPAREN   // )
	COLON    // :
	COMMA    // ,
	SEMI     // ;
	PERIOD   // .
	RANGE    // ..
	ELLIPSIS // ...
	QUESTION // ?
	PIPE     // |
	EQL      // ==
	NEQ      // !=
	LSS      // <
	LEQ      // <=
	GTR      // >
	GEQ      // >=
	ADD      // +
	SUB      // -
	MUL      // *
	QUO      // /

	keywordBeg
	POLICY
	VALIDATOR
	PIPELINE
	ROUTER
	SCHEMA
	AND
	OR
	NOT
	IN
	MATCHES
	TRUE
	FALSE
	keywordEnd
)

var names = [...]string{
	ILLEGAL: "ILLEGAL", EOF: "EOF", COMMENT: "COMMENT",
	IDENT: "IDENT", STRING: "STRING", NUMBER: "NUMBER", DURATION: "DURATION",
	LBRACE: "{", RBRACE: "}", LBRACK: "[", RBRACK: "]", LPAREN: "(", RPAREN: ")",
	COLON: ":", COMMA: ",", SEMI: ";", PERIOD: ".", RANGE: "..", ELLIPSIS: "...",
	QUESTION: "?", PIPE: "|", EQL: "==", NEQ: "!=", LSS: "<", LEQ: "<=", GTR: ">",
	GEQ: ">=", ADD: "+", SUB: "-", MUL: "*", QUO: "/",
	POLICY: "policy", VALIDATOR: "validator", PIPELINE: "pipeline", ROUTER: "router",
	SCHEMA: "schema", AND: "and", OR: "or", NOT: "not", IN: "in", MATCHES: "matches",
	TRUE: "true", FALSE: "false",
}

func (k Kind) String() string {
	if int(k) < len(names) && names[k] != "" {
		return names[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// IsKeyword reports whether k is a reserved word.
func (k Kind) IsKeyword() bool { return keywordBeg < k && k < keywordEnd }

// IsLiteral reports whether k is an identifier or a literal.
func (k Kind) IsLiteral() bool { return k >= IDENT && k <= DURATION }

// Lookup returns the keyword kind of word, or IDENT.
func Lookup(word string) Kind {
	switch word {
	case "policy":
		return POLICY
	case "validator":
		return VALIDATOR
	case "pipeline":
		return PIPELINE
	case "router":
		return ROUTER
	case "schema":
		return SCHEMA
	case "and":
		return AND
	case "or":
		return OR
	case "not":
		return NOT
	case "in":
		return IN
	case "matches":
		return MATCHES
	case "true":
		return TRUE
	case "false":
		return FALSE
	}
	return IDENT
}

// Keywords lists the reserved words, for suggestions.
func Keywords() []string {
	var ks []string
	for k := keywordBeg + 1; k < keywordEnd; k++ {
		ks = append(ks, names[k])
	}
	return ks
}

// Precedence returns the binary precedence of k (higher binds tighter), or 0.
func (k Kind) Precedence() int {
	switch k {
	case OR:
		return 1
	case AND:
		return 2
	case EQL, NEQ, LSS, LEQ, GTR, GEQ, IN, MATCHES:
		return 3
	case ADD, SUB:
		return 4
	case MUL, QUO:
		return 5
	}
	return 0
}
