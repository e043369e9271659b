// Package ast declares the syntax tree of the .lll language.
//
// A File is a list of declarations (policy, validator, pipeline, router,
// schema), each a named block of statements. Statements and expressions
// record their positions so that every later phase can point at the source.
// The parser returns partial trees when the source has errors: BadExpr and
// BadStmt stand where something could not be parsed.
package ast

import "github.com/loglineos/loglineos/internal/lll/token"

// Node is any node of the tree.
type Node interface {
	Pos() token.Pos // first byte of the node
	End() token.Pos // first byte after the node
}

// File is one parsed source file.
type File struct {
	Name  string
	Src   []byte
	Decls []*Decl
}

// Decl is a declaration: Keyword Name { Body }.
type Decl struct {
	Keyword    token.Kind // POLICY, VALIDATOR, PIPELINE, ROUTER or SCHEMA
	KeywordPos token.Pos
	Name       *Ident
	Lbrace     token.Pos
	Body       []Stmt
	Rbrace     token.Pos // end of the closing brace (or of the last token read)
}

func (d *Decl) Pos() token.Pos { return d.KeywordPos }
func (d *Decl) End() token.Pos { return d.Rbrace }

// Stmt is a statement of a declaration body.
type Stmt interface {
	Node
	stmt()
}

// Expr is an expression.
type Expr interface {
	Node
	expr()
}

// TypeExpr is a type in a schema.
type TypeExpr interface {
	Node
	typeExpr()
}

// ---- statements ----

type (
	// Field is "key: value" in a policy body or a map literal.
	Field struct {
		Key   *Ident // the key; a quoted key is an Ident with Quoted set
		Value Expr
	}

	// FieldRule is "require field NAME [as FORMAT] [in [VALUE, ...]]" or
	// "allow field NAME [as FORMAT] [in [VALUE, ...]]".
	FieldRule struct {
		Verb    *Ident // require or allow
		Name    *BasicLit
		Format  *BasicLit // nil without "as"
		Values  *ListLit  // the allowed values; nil without "in"
		EndPos  token.Pos
		Require bool
	}

	// RejectUnknown is "reject unknown fields".
	RejectUnknown struct {
		From, To token.Pos
	}

	// CheckStmt is "check EXPR [else MESSAGE]".
	CheckStmt struct {
		Check token.Pos
		Cond  Expr
		Else  *BasicLit
	}

	// WhenStmt is "when EXPR".
	WhenStmt struct {
		When token.Pos
		Cond Expr
	}

	// OnFail is "on_fail ACTION".
	OnFail struct {
		Start  token.Pos
		Action *BasicLit
	}

	// Uses is "uses CAP {, CAP}": the capabilities a declaration needs.
	Uses struct {
		Start token.Pos
		Caps  []*BasicLit
	}

	// Prop is "name: value [with CALL {, CALL}]" in a validator, pipeline
	// or router (input:, emit:, policy_ref:).
	Prop struct {
		Name  *Ident
		Value Expr
		With  []*CallExpr
	}

	// Derive is "derive EVENT on CALL" in a pipeline.
	Derive struct {
		Start token.Pos
		Event *BasicLit
		On    *CallExpr
	}

	// Route is "route [when EXPR] to CALL" in a router.
	Route struct {
		Start token.Pos
		When  Expr // nil: always
		To    *CallExpr
	}

	// SchemaField is "name[?]: TYPE [as FORMAT]" in a schema.
	SchemaField struct {
		Name     *Ident
		Optional bool
		Type     TypeExpr
		Format   *BasicLit
	}

	// BadStmt stands for a statement that could not be parsed.
	BadStmt struct {
		From, To token.Pos
	}
)

func (s *Field) Pos() token.Pos         { return s.Key.Pos() }
func (s *Field) End() token.Pos         { return endOf(s.Value, s.Key) }
func (s *FieldRule) Pos() token.Pos     { return s.Verb.Pos() }
func (s *FieldRule) End() token.Pos     { return s.EndPos }
func (s *RejectUnknown) Pos() token.Pos { return s.From }
func (s *RejectUnknown) End() token.Pos { return s.To }
func (s *CheckStmt) Pos() token.Pos     { return s.Check }
func (s *CheckStmt) End() token.Pos {
	if s.Else != nil {
		return s.Else.End()
	}
	return endOf(s.Cond, nil)
}
func (s *WhenStmt) Pos() token.Pos { return s.When }
func (s *WhenStmt) End() token.Pos { return endOf(s.Cond, nil) }
func (s *OnFail) Pos() token.Pos   { return s.Start }
func (s *OnFail) End() token.Pos   { return endOf(s.Action, nil) }
func (s *Uses) Pos() token.Pos     { return s.Start }
func (s *Uses) End() token.Pos {
	if len(s.Caps) > 0 {
		return s.Caps[len(s.Caps)-1].End()
	}
	return s.Start
}
func (s *Prop) Pos() token.Pos { return s.Name.Pos() }
func (s *Prop) End() token.Pos {
	if len(s.With) > 0 {
		return s.With[len(s.With)-1].End()
	}
	return endOf(s.Value, s.Name)
}
func (s *Derive) Pos() token.Pos { return s.Start }
func (s *Derive) End() token.Pos {
	if s.On != nil {
		return s.On.End()
	}
	return endOf(s.Event, nil)
}
func (s *Route) Pos() token.Pos { return s.Start }
func (s *Route) End() token.Pos {
	if s.To != nil {
		return s.To.End()
	}
	return endOf(s.When, nil)
}
func (s *SchemaField) Pos() token.Pos { return s.Name.Pos() }
func (s *SchemaField) End() token.Pos {
	if s.Format != nil {
		return s.Format.End()
	}
	if s.Type != nil {
		return s.Type.End()
	}
	return s.Name.End()
}
func (s *BadStmt) Pos() token.Pos { return s.From }
func (s *BadStmt) End() token.Pos { return s.To }

func (*Field) stmt()         {}
func (*FieldRule) stmt()     {}
func (*RejectUnknown) stmt() {}
func (*CheckStmt) stmt()     {}
func (*WhenStmt) stmt()      {}
func (*OnFail) stmt()        {}
func (*Uses) stmt()          {}
func (*Prop) stmt()          {}
func (*Derive) stmt()        {}
func (*Route) stmt()         {}
func (*SchemaField) stmt()   {}
func (*BadStmt) stmt()       {}

// ---- expressions ----

type (
	// Ident is a name. Quoted is set for a key written as a string.
	Ident struct {
		NamePos token.Pos
		NameEnd token.Pos
		Name    string
		Quoted  bool
	}

	// BasicLit is a STRING, NUMBER, DURATION, TRUE or FALSE literal.
	BasicLit struct {
		Kind   token.Kind
		ValPos token.Pos
		ValEnd token.Pos
		Lit    string // source text
		Value  string // decoded string value
	}

	// ListLit is [a, b, c].
	ListLit struct {
		Lbrack, Rbrack token.Pos
		Elems          []Expr
	}

	// MapLit is { key: value, ... }.
	MapLit struct {
		Lbrace, Rbrace token.Pos
		Entries        []*Field
	}

	// SelectorExpr is X.Sel.
	SelectorExpr struct {
		X   Expr
		Sel *Ident
	}

	// IndexExpr is X[Index].
	IndexExpr struct {
		X      Expr
		Index  Expr
		Rbrack token.Pos
	}

	// CallExpr is Fun(Args).
	CallExpr struct {
		Fun    Expr
		Args   []Expr
		Rparen token.Pos
	}

	// UnaryExpr is "not X" or "-X".
	UnaryExpr struct {
		OpPos token.Pos
		Op    token.Kind
		X     Expr
	}

	// BinaryExpr is X Op Y.
	BinaryExpr struct {
		X     Expr
		OpPos token.Pos
		Op    token.Kind
		Y     Expr
	}

	// ParenExpr is (X).
	ParenExpr struct {
		Lparen, Rparen token.Pos
		X              Expr
	}

	// BadExpr stands for an expression that could not be parsed.
	BadExpr struct {
		From, To token.Pos
	}
)

func (x *Ident) Pos() token.Pos        { return x.NamePos }
func (x *Ident) End() token.Pos        { return x.NameEnd }
func (x *BasicLit) Pos() token.Pos     { return x.ValPos }
func (x *BasicLit) End() token.Pos     { return x.ValEnd }
func (x *ListLit) Pos() token.Pos      { return x.Lbrack }
func (x *ListLit) End() token.Pos      { return x.Rbrack }
func (x *MapLit) Pos() token.Pos       { return x.Lbrace }
func (x *MapLit) End() token.Pos       { return x.Rbrace }
func (x *SelectorExpr) Pos() token.Pos { return x.X.Pos() }
func (x *SelectorExpr) End() token.Pos { return x.Sel.End() }
func (x *IndexExpr) Pos() token.Pos    { return x.X.Pos() }
func (x *IndexExpr) End() token.Pos    { return x.Rbrack }
func (x *CallExpr) Pos() token.Pos     { return x.Fun.Pos() }
func (x *CallExpr) End() token.Pos     { return x.Rparen }
func (x *UnaryExpr) Pos() token.Pos    { return x.OpPos }
func (x *UnaryExpr) End() token.Pos    { return endOf(x.X, nil) }
func (x *BinaryExpr) Pos() token.Pos   { return x.X.Pos() }
func (x *BinaryExpr) End() token.Pos   { return endOf(x.Y, nil) }
func (x *ParenExpr) Pos() token.Pos    { return x.Lparen }
func (x *ParenExpr) End() token.Pos    { return x.Rparen }
func (x *BadExpr) Pos() token.Pos      { return x.From }
func (x *BadExpr) End() token.Pos      { return x.To }

func (*Ident) expr()        {}
func (*BasicLit) expr()     {}
func (*ListLit) expr()      {}
func (*MapLit) expr()       {}
func (*SelectorExpr) expr() {}
func (*IndexExpr) expr()    {}
func (*CallExpr) expr()     {}
func (*UnaryExpr) expr()    {}
func (*BinaryExpr) expr()   {}
func (*ParenExpr) expr()    {}
func (*BadExpr) expr()      {}

// ---- types ----

type (
	// TypeName is a named type (string, int, number, bool, any, object, or
	// a schema name), with an optional range: int(0..100).
	TypeName struct {
		Name     *Ident
		Min, Max *BasicLit
		Rparen   token.Pos
	}
	// TypeList is [T].
	TypeList struct {
		Lbrack, Rbrack token.Pos
		Elem           TypeExpr
	}
	// TypeStruct is { fields [...] }; Open is set by a trailing "...".
	TypeStruct struct {
		Lbrace, Rbrace token.Pos
		Fields         []*SchemaField
		Open           bool
	}
	// TypeLit is a string constant type: "trajectory_edge".
	TypeLit struct {
		Lit *BasicLit
	}
	// TypeUnion is A | B | C.
	TypeUnion struct {
		Alts []TypeExpr
	}
)

func (t *TypeName) Pos() token.Pos { return t.Name.Pos() }
func (t *TypeName) End() token.Pos {
	if t.Rparen.IsValid() {
		return t.Rparen
	}
	return t.Name.End()
}
func (t *TypeList) Pos() token.Pos   { return t.Lbrack }
func (t *TypeList) End() token.Pos   { return t.Rbrack }
func (t *TypeStruct) Pos() token.Pos { return t.Lbrace }
func (t *TypeStruct) End() token.Pos { return t.Rbrace }
func (t *TypeLit) Pos() token.Pos    { return t.Lit.Pos() }
func (t *TypeLit) End() token.Pos    { return t.Lit.End() }
func (t *TypeUnion) Pos() token.Pos  { return t.Alts[0].Pos() }
func (t *TypeUnion) End() token.Pos  { return t.Alts[len(t.Alts)-1].End() }

func (*TypeName) typeExpr()   {}
func (*TypeList) typeExpr()   {}
func (*TypeStruct) typeExpr() {}
func (*TypeLit) typeExpr()    {}
func (*TypeUnion) typeExpr()  {}

func endOf(n Node, alt Node) token.Pos {
	if !isNil(n) {
		return n.End()
	}
	if !isNil(alt) {
		return alt.End()
	}
	return token.Pos{}
}

func isNil(n Node) bool {
	switch v := n.(type) {
	case nil:
		return true
	case *BasicLit:
		return v == nil
	case *Ident:
		return v == nil
	case *CallExpr:
		return v == nil
	}
	return false
}
