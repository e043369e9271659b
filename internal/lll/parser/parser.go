// Package parser builds the syntax tree of .lll sources.
//
// ParseFile follows the grammar of docs/lll.md. It never stops at the first
// error: each error is recorded with its position and code, the parser
// skips to the next statement (or declaration) and goes on, so one run
// reports every independent mistake and returns a partial tree that later
// phases can still examine.
//
// Statements end at the end of their line (or at ';' or '}'); only an
// expression may continue on the next line, and only when that line starts
// with "and" or "or", as in
//
//	when percentile(score) >= policy.quality_meter.percentile_target
//	and  score >= policy.quality_meter.min_score
package parser

import (
	"fmt"

	"github.com/loglineos/loglineos/internal/lll/ast"
	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/scanner"
	"github.com/loglineos/loglineos/internal/lll/token"
)

// maxDepth bounds the nesting of expressions and types.
const maxDepth = 100

// Statement words of each declaration kind, for suggestions.
var (
	validatorWords = []string{"require", "allow", "reject", "check", "when", "on_fail", "uses", "input", "emit"}
	pipelineWords  = []string{"when", "uses", "derive", "policy_ref"}
	routerWords    = []string{"input", "uses", "route"}
	declWords      = []string{"policy", "validator", "pipeline", "router", "schema"}
)

type parser struct {
	toks    []scanner.Token
	i       int
	tok     scanner.Token
	errs    diag.List
	lastErr int // line of the last parser error, to report one per line
	depth   int
	stmt    int // index of the first token of the current statement
}

// ParseFile parses the source of one file. It returns the (possibly
// partial) tree and every diagnostic, scanner's included, sorted.
func ParseFile(name string, src []byte) (*ast.File, diag.List) {
	toks, errs := scanner.Scan(name, src)
	p := &parser{toks: toks, errs: errs, lastErr: -1}
	p.tok = toks[0]
	f := &ast.File{Name: name, Src: src}
	for p.tok.Kind != token.EOF {
		start := p.i
		if d := p.decl(); d != nil {
			f.Decls = append(f.Decls, d)
		}
		if p.i == start {
			p.next()
		}
	}
	p.errs.Sort()
	return f, onePerLine(p.errs)
}

// onePerLine drops the parser's errors on lines where the scanner already
// reported one: they are consequences of it.
func onePerLine(errs diag.List) diag.List {
	scanLines := map[int]bool{}
	for _, d := range errs {
		if d.Code < diag.Unexpected {
			scanLines[d.Pos.Line] = true
		}
	}
	out := errs[:0]
	for _, d := range errs {
		if d.Code >= diag.Unexpected && scanLines[d.Pos.Line] {
			continue
		}
		out = append(out, d)
	}
	return out
}

func (p *parser) next() {
	if p.i < len(p.toks)-1 {
		p.i++
	}
	p.tok = p.toks[p.i]
}

func (p *parser) peek() scanner.Token {
	if p.i+1 < len(p.toks) {
		return p.toks[p.i+1]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) errorf(pos, end token.Pos, code diag.Code, format string, args ...any) {
	if pos.Line == p.lastErr {
		return
	}
	p.lastErr = pos.Line
	p.errs.Add(pos, end, code, format, args...)
}

// describe names a token for messages.
func describe(t scanner.Token) string {
	switch t.Kind {
	case token.EOF:
		return "end of file"
	case token.IDENT:
		return fmt.Sprintf("name %s", t.Lit)
	case token.STRING:
		return fmt.Sprintf("string %s", t.Lit)
	case token.NUMBER, token.DURATION:
		return fmt.Sprintf("%s %s", map[token.Kind]string{token.NUMBER: "number", token.DURATION: "duration"}[t.Kind], t.Lit)
	}
	if t.Kind.IsKeyword() {
		return fmt.Sprintf("keyword %s", t.Lit)
	}
	return fmt.Sprintf("'%s'", t.Kind)
}

func (p *parser) unexpected(want string) {
	if p.tok.NewlineBefore && p.i > 0 && p.tok.Kind != token.EOF {
		// The line ended early: point at its end, not at the next line.
		prev := p.toks[p.i-1]
		p.errorf(prev.End, prev.End, diag.Unexpected, "expected %s, found the end of the line", want)
		return
	}
	p.errorf(p.tok.Pos, p.tok.End, diag.Unexpected, "expected %s, found %s", want, describe(p.tok))
}

func (p *parser) expect(k token.Kind, want string) (token.Pos, bool) {
	if p.tok.Kind != k {
		p.unexpected(want)
		return p.tok.Pos, false
	}
	end := p.tok.End
	p.next()
	return end, true
}

func (p *parser) isWord(w string) bool { return p.tok.Kind == token.IDENT && p.tok.Lit == w }

// ---- declarations ----

func (p *parser) decl() *ast.Decl {
	switch p.tok.Kind {
	case token.POLICY, token.VALIDATOR, token.PIPELINE, token.ROUTER, token.SCHEMA:
	default:
		msg := fmt.Sprintf("expected a declaration (policy, validator, pipeline, router or schema), found %s", describe(p.tok))
		if p.tok.Kind == token.IDENT {
			msg += diag.DidYouMean(p.tok.Lit, declWords)
		}
		p.errorf(p.tok.Pos, p.tok.End, diag.UnknownDecl, "%s", msg)
		p.skipDecl()
		return nil
	}
	d := &ast.Decl{Keyword: p.tok.Kind, KeywordPos: p.tok.Pos}
	p.next()
	if p.tok.Kind == token.IDENT {
		d.Name = p.ident()
	} else {
		p.unexpected(fmt.Sprintf("a name after %s", d.Keyword))
		d.Name = &ast.Ident{NamePos: p.tok.Pos, NameEnd: p.tok.Pos, Name: "_"}
		if p.tok.Kind.IsKeyword() && p.tok.Kind != token.POLICY && p.tok.Kind != token.VALIDATOR &&
			p.tok.Kind != token.PIPELINE && p.tok.Kind != token.ROUTER && p.tok.Kind != token.SCHEMA {
			p.next()
		}
	}
	if p.tok.Kind != token.LBRACE {
		p.unexpected(fmt.Sprintf("'{' to open %s %s", d.Keyword, d.Name.Name))
		p.skipDecl()
		d.Rbrace = p.tok.Pos
		return d
	}
	d.Lbrace = p.tok.Pos
	p.next()
	for p.tok.Kind != token.RBRACE && p.tok.Kind != token.EOF {
		start := p.i
		p.stmt = p.i
		var s ast.Stmt
		switch d.Keyword {
		case token.POLICY:
			s = p.field(true)
		case token.SCHEMA:
			s = p.schemaField()
		case token.VALIDATOR:
			s = p.validatorStmt()
		case token.PIPELINE:
			s = p.pipelineStmt()
		case token.ROUTER:
			s = p.routerStmt()
		}
		if s != nil {
			d.Body = append(d.Body, s)
		}
		p.stmtEnd()
		if p.i == start {
			p.next()
		}
	}
	if p.tok.Kind == token.EOF {
		p.lastErr = -1
		p.errorf(d.Lbrace, d.Lbrace, diag.Unclosed, "%s %s: '{' is never closed (missing '}')", d.Keyword, d.Name.Name)
		d.Rbrace = p.tok.Pos
		return d
	}
	d.Rbrace = p.tok.End
	p.next()
	return d
}

// skipDecl skips to the next token that can start a declaration at the
// beginning of a line, outside any braces.
func (p *parser) skipDecl() {
	depth := 0
	first := true
	for p.tok.Kind != token.EOF {
		switch p.tok.Kind {
		case token.LBRACE:
			depth++
		case token.RBRACE:
			depth--
			if depth <= 0 {
				p.next()
				if depth == 0 {
					return
				}
				depth = 0
				continue
			}
		case token.POLICY, token.VALIDATOR, token.PIPELINE, token.ROUTER, token.SCHEMA:
			if !first && depth <= 0 && p.tok.NewlineBefore {
				return
			}
		}
		first = false
		p.next()
	}
}

// stmtEnd checks that a statement ends here and skips to the next one if not.
func (p *parser) stmtEnd() {
	switch {
	case p.tok.Kind == token.SEMI || p.tok.Kind == token.COMMA:
		p.next()
		return
	case p.tok.Kind == token.RBRACE || p.tok.Kind == token.EOF || p.tok.NewlineBefore:
		return
	}
	p.errorf(p.tok.Pos, p.tok.End, diag.StmtEnd, "expected end of statement (a new line), found %s", describe(p.tok))
	p.skipStmt()
}

// skipStmt skips to the next line, ';' or the '}' of the enclosing block,
// jumping over nested brackets.
func (p *parser) skipStmt() {
	depth := 0
	// The statement's first token is always skipped (so that parsing
	// progresses); a later token that starts a line starts the next
	// statement, even when it is where the error was found.
	first := p.i == p.stmt
	for p.tok.Kind != token.EOF {
		if depth == 0 && !first && p.tok.NewlineBefore {
			return
		}
		switch p.tok.Kind {
		case token.LBRACE, token.LBRACK, token.LPAREN:
			depth++
		case token.RBRACE, token.RBRACK, token.RPAREN:
			if depth == 0 {
				if p.tok.Kind == token.RBRACE {
					return
				}
			} else {
				depth--
			}
		case token.SEMI:
			if depth == 0 {
				p.next()
				return
			}
		}
		first = false
		p.next()
	}
}

// ---- statements ----

func (p *parser) ident() *ast.Ident {
	id := &ast.Ident{NamePos: p.tok.Pos, NameEnd: p.tok.End, Name: p.tok.Value}
	p.next()
	return id
}

// label parses a key: a name, a keyword or a string.
func (p *parser) label() *ast.Ident {
	switch {
	case p.tok.Kind == token.IDENT || p.tok.Kind.IsKeyword():
		return p.ident()
	case p.tok.Kind == token.STRING:
		id := p.ident()
		id.Quoted = true
		return id
	}
	return nil
}

func (p *parser) str(what string) *ast.BasicLit {
	if p.tok.Kind != token.STRING {
		p.unexpected(what)
		return nil
	}
	return p.lit()
}

func (p *parser) lit() *ast.BasicLit {
	l := &ast.BasicLit{Kind: p.tok.Kind, ValPos: p.tok.Pos, ValEnd: p.tok.End, Lit: p.tok.Lit, Value: p.tok.Value}
	p.next()
	return l
}

// field parses "key: value".
func (p *parser) field(policy bool) ast.Stmt {
	start := p.tok.Pos
	key := p.label()
	if key == nil {
		p.unexpected("a key (name: value)")
		p.skipStmt()
		return &ast.BadStmt{From: start, To: p.tok.Pos}
	}
	if p.tok.Kind != token.COLON {
		p.unexpected(fmt.Sprintf("':' after %s", key.Name))
		p.skipStmt()
		return &ast.BadStmt{From: start, To: p.tok.Pos}
	}
	p.next()
	v := p.expr()
	return &ast.Field{Key: key, Value: v}
}

func (p *parser) unknownStmt(kind string, words []string) ast.Stmt {
	start := p.tok.Pos
	msg := fmt.Sprintf("unknown statement %s in %s", describe(p.tok), kind)
	if p.tok.Kind == token.IDENT {
		msg = fmt.Sprintf("unknown statement %q in %s%s", p.tok.Lit, kind, diag.DidYouMean(p.tok.Lit, words))
	}
	p.errorf(p.tok.Pos, p.tok.End, diag.UnknownStmt, "%s", msg)
	p.skipStmt()
	return &ast.BadStmt{From: start, To: p.tok.Pos}
}

func (p *parser) validatorStmt() ast.Stmt {
	if p.tok.Kind == token.IDENT {
		if p.peek().Kind == token.COLON {
			return p.prop()
		}
		switch p.tok.Lit {
		case "require", "allow":
			return p.fieldRule()
		case "reject":
			start := p.tok.Pos
			p.next()
			if !p.isWord("unknown") {
				p.unexpected("'unknown fields' after reject")
				p.skipStmt()
				return &ast.BadStmt{From: start, To: p.tok.Pos}
			}
			p.next()
			if !p.isWord("fields") {
				p.unexpected("'fields' after reject unknown")
				p.skipStmt()
				return &ast.BadStmt{From: start, To: p.tok.Pos}
			}
			end := p.tok.End
			p.next()
			return &ast.RejectUnknown{From: start, To: end}
		case "check":
			s := &ast.CheckStmt{Check: p.tok.Pos}
			p.next()
			s.Cond = p.expr()
			if p.isWord("else") {
				p.next()
				s.Else = p.str("a message string after else")
			}
			return s
		case "when":
			return p.when()
		case "on_fail":
			s := &ast.OnFail{Start: p.tok.Pos}
			p.next()
			s.Action = p.str(`an action string after on_fail ("reject" or "warn")`)
			if s.Action == nil {
				p.skipStmt()
				return &ast.BadStmt{From: s.Start, To: p.tok.Pos}
			}
			return s
		case "uses":
			return p.uses()
		}
	}
	return p.unknownStmt("a validator", validatorWords)
}

func (p *parser) fieldRule() ast.Stmt {
	r := &ast.FieldRule{Verb: p.ident()}
	r.Require = r.Verb.Name == "require"
	if p.isWord("field") {
		p.next()
	} else if p.tok.Kind == token.STRING {
		p.errorf(p.tok.Pos, p.tok.End, diag.Unexpected, "expected 'field' before %s (write %s field %s)", p.tok.Lit, r.Verb.Name, p.tok.Lit)
	} else {
		p.unexpected(fmt.Sprintf("'field' after %s", r.Verb.Name))
		p.skipStmt()
		return &ast.BadStmt{From: r.Verb.Pos(), To: p.tok.Pos}
	}
	r.Name = p.str("a field name string (e.g. \"when\")")
	if r.Name == nil {
		p.skipStmt()
		return &ast.BadStmt{From: r.Verb.Pos(), To: p.tok.Pos}
	}
	r.EndPos = r.Name.End()
	if p.isWord("as") {
		p.next()
		r.Format = p.str("a format string after as (e.g. \"rfc3339\")")
		if r.Format == nil {
			p.skipStmt()
			return &ast.BadStmt{From: r.Verb.Pos(), To: p.tok.Pos}
		}
		r.EndPos = r.Format.End()
	}
	if p.tok.Kind == token.IN && !p.tok.NewlineBefore {
		p.next()
		if p.tok.Kind != token.LBRACK || p.tok.NewlineBefore {
			p.unexpected(`a list of the allowed values after in (e.g. ["confirmed", "pending"])`)
			p.skipStmt()
			return &ast.BadStmt{From: r.Verb.Pos(), To: p.tok.Pos}
		}
		r.Values = p.operand().(*ast.ListLit)
		r.EndPos = r.Values.End()
	}
	return r
}

func (p *parser) when() ast.Stmt {
	s := &ast.WhenStmt{When: p.tok.Pos}
	p.next()
	s.Cond = p.expr()
	return s
}

func (p *parser) uses() ast.Stmt {
	s := &ast.Uses{Start: p.tok.Pos}
	p.next()
	for {
		c := p.str(`a capability string (e.g. "ws.send")`)
		if c == nil {
			p.skipStmt()
			return &ast.BadStmt{From: s.Start, To: p.tok.Pos}
		}
		s.Caps = append(s.Caps, c)
		if p.tok.Kind != token.COMMA || p.peek().NewlineBefore {
			return s
		}
		p.next()
	}
}

func (p *parser) prop() ast.Stmt {
	s := &ast.Prop{Name: p.ident()}
	p.next() // ':'
	s.Value = p.expr()
	if p.isWord("with") {
		p.next()
		for {
			x := p.expr()
			c, ok := x.(*ast.CallExpr)
			if !ok {
				p.errorf(x.Pos(), x.End(), diag.Unexpected, "expected a call after with (e.g. components(mass))")
				p.skipStmt()
				return s
			}
			s.With = append(s.With, c)
			if p.tok.Kind != token.COMMA || p.peek().NewlineBefore {
				break
			}
			p.next()
		}
	}
	return s
}

func (p *parser) call(what string) *ast.CallExpr {
	x := p.expr()
	if c, ok := x.(*ast.CallExpr); ok {
		return c
	}
	if _, bad := x.(*ast.BadExpr); !bad {
		p.errorf(x.Pos(), x.End(), diag.Unexpected, "expected %s, a call such as name()", what)
	}
	return nil
}

func (p *parser) pipelineStmt() ast.Stmt {
	if p.tok.Kind == token.IDENT {
		if p.peek().Kind == token.COLON {
			return p.prop()
		}
		switch p.tok.Lit {
		case "when":
			return p.when()
		case "uses":
			return p.uses()
		case "derive":
			s := &ast.Derive{Start: p.tok.Pos}
			p.next()
			s.Event = p.str("an event type string after derive")
			if s.Event == nil {
				p.skipStmt()
				return &ast.BadStmt{From: s.Start, To: p.tok.Pos}
			}
			if !p.isWord("on") {
				p.unexpected("'on' after the derived event")
				p.skipStmt()
				return &ast.BadStmt{From: s.Start, To: p.tok.Pos}
			}
			p.next()
			s.On = p.call("the kernel that derives the event")
			if s.On == nil {
				p.skipStmt()
				return &ast.BadStmt{From: s.Start, To: p.tok.Pos}
			}
			return s
		}
	}
	return p.unknownStmt("a pipeline", pipelineWords)
}

func (p *parser) routerStmt() ast.Stmt {
	if p.tok.Kind == token.IDENT {
		if p.peek().Kind == token.COLON {
			return p.prop()
		}
		switch p.tok.Lit {
		case "uses":
			return p.uses()
		case "route":
			s := &ast.Route{Start: p.tok.Pos}
			p.next()
			if p.isWord("when") {
				p.next()
				s.When = p.expr()
			}
			if !p.isWord("to") {
				p.unexpected("'to' and a host call (route [when COND] to ws.send(\"channel\"))")
				p.skipStmt()
				return &ast.BadStmt{From: s.Start, To: p.tok.Pos}
			}
			p.next()
			s.To = p.call("the host call that delivers the route")
			if s.To == nil {
				p.skipStmt()
				return &ast.BadStmt{From: s.Start, To: p.tok.Pos}
			}
			return s
		}
	}
	return p.unknownStmt("a router", routerWords)
}

// ---- schemas ----

func (p *parser) schemaField() ast.Stmt {
	start := p.tok.Pos
	name := p.label()
	if name == nil {
		p.unexpected("a field (name: type)")
		p.skipStmt()
		return &ast.BadStmt{From: start, To: p.tok.Pos}
	}
	f := &ast.SchemaField{Name: name}
	if p.tok.Kind == token.QUESTION {
		f.Optional = true
		p.next()
	}
	if _, ok := p.expect(token.COLON, fmt.Sprintf("':' and a type after %s", name.Name)); !ok {
		p.skipStmt()
		return &ast.BadStmt{From: start, To: p.tok.Pos}
	}
	f.Type = p.typeExpr()
	if p.isWord("as") {
		p.next()
		f.Format = p.str("a format string after as")
	}
	return f
}

func (p *parser) typeExpr() ast.TypeExpr {
	t := p.typeTerm()
	if p.tok.Kind != token.PIPE {
		return t
	}
	u := &ast.TypeUnion{Alts: []ast.TypeExpr{t}}
	for p.tok.Kind == token.PIPE {
		p.next()
		u.Alts = append(u.Alts, p.typeTerm())
	}
	return u
}

func (p *parser) typeTerm() ast.TypeExpr {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		p.errorf(p.tok.Pos, p.tok.End, diag.Unexpected, "type nested too deeply")
		return &ast.TypeName{Name: &ast.Ident{NamePos: p.tok.Pos, NameEnd: p.tok.End, Name: "any"}}
	}
	switch {
	case p.tok.Kind == token.IDENT || p.tok.Kind.IsKeyword():
		t := &ast.TypeName{Name: p.ident()}
		if p.tok.Kind == token.LPAREN && !p.tok.NewlineBefore {
			p.next()
			t.Min = p.signedNumber()
			p.expect(token.RANGE, "'..' in a range (int(0..100))")
			t.Max = p.signedNumber()
			t.Rparen, _ = p.expect(token.RPAREN, "')' closing the range")
		}
		return t
	case p.tok.Kind == token.STRING:
		return &ast.TypeLit{Lit: p.lit()}
	case p.tok.Kind == token.LBRACK:
		t := &ast.TypeList{Lbrack: p.tok.Pos}
		p.next()
		t.Elem = p.typeExpr()
		t.Rbrack, _ = p.expect(token.RBRACK, "']' closing the list type")
		return t
	case p.tok.Kind == token.LBRACE:
		t := &ast.TypeStruct{Lbrace: p.tok.Pos}
		p.next()
		for p.tok.Kind != token.RBRACE && p.tok.Kind != token.EOF {
			start := p.i
			if p.tok.Kind == token.ELLIPSIS {
				t.Open = true
				p.next()
			} else if f, ok := p.schemaField().(*ast.SchemaField); ok {
				t.Fields = append(t.Fields, f)
			}
			if p.tok.Kind == token.COMMA || p.tok.Kind == token.SEMI {
				p.next()
			} else if p.tok.Kind != token.RBRACE && !p.tok.NewlineBefore && p.tok.Kind != token.EOF {
				p.unexpected("',' or a new line between fields")
				p.skipStmt()
			}
			if p.i == start {
				p.next()
			}
		}
		if p.tok.Kind == token.EOF {
			p.errorf(t.Lbrace, t.Lbrace, diag.Unclosed, "'{' is never closed (missing '}')")
			t.Rbrace = p.tok.Pos
			return t
		}
		t.Rbrace = p.tok.End
		p.next()
		return t
	}
	p.unexpected("a type (string, int, number, bool, any, object, [T], {fields} or \"literal\")")
	return &ast.TypeName{Name: &ast.Ident{NamePos: p.tok.Pos, NameEnd: p.tok.End, Name: "any"}}
}

func (p *parser) signedNumber() *ast.BasicLit {
	neg := false
	start := p.tok.Pos
	if p.tok.Kind == token.SUB {
		neg = true
		p.next()
	}
	if p.tok.Kind != token.NUMBER {
		p.unexpected("a number")
		return &ast.BasicLit{Kind: token.NUMBER, ValPos: start, ValEnd: start, Lit: "0", Value: "0"}
	}
	l := p.lit()
	if neg {
		l.ValPos = start
		l.Lit = "-" + l.Lit
		l.Value = l.Lit
	}
	return l
}

// ---- expressions ----

func (p *parser) expr() ast.Expr { return p.binary(1) }

func (p *parser) binary(prec int) ast.Expr {
	x := p.unary()
	for {
		op := p.tok.Kind
		oprec := op.Precedence()
		if oprec < prec {
			return x
		}
		if p.tok.NewlineBefore && op != token.AND && op != token.OR {
			return x
		}
		opPos := p.tok.Pos
		p.next()
		y := p.binary(oprec + 1)
		x = &ast.BinaryExpr{X: x, OpPos: opPos, Op: op, Y: y}
		if oprec == token.EQL.Precedence() && p.tok.Kind.Precedence() == oprec && !p.tok.NewlineBefore {
			p.errorf(p.tok.Pos, p.tok.End, diag.Unexpected, "comparisons do not chain; use and: a < b and b < c")
		}
	}
}

func (p *parser) unary() ast.Expr {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		p.errorf(p.tok.Pos, p.tok.End, diag.Unexpected, "expression nested too deeply")
		start := p.tok.Pos
		p.skipStmt()
		return &ast.BadExpr{From: start, To: p.tok.Pos}
	}
	if p.tok.Kind == token.NOT || p.tok.Kind == token.SUB {
		op, pos := p.tok.Kind, p.tok.Pos
		p.next()
		return &ast.UnaryExpr{OpPos: pos, Op: op, X: p.unary()}
	}
	return p.postfix(p.operand())
}

func (p *parser) postfix(x ast.Expr) ast.Expr {
	for {
		switch {
		case p.tok.Kind == token.PERIOD:
			p.next()
			if p.tok.Kind != token.IDENT && !p.tok.Kind.IsKeyword() {
				p.unexpected("a name after '.'")
				return &ast.BadExpr{From: x.Pos(), To: p.tok.Pos}
			}
			x = &ast.SelectorExpr{X: x, Sel: p.ident()}
		case p.tok.Kind == token.LPAREN && !p.tok.NewlineBefore:
			p.next()
			c := &ast.CallExpr{Fun: x}
			for p.tok.Kind != token.RPAREN && p.tok.Kind != token.EOF && p.tok.Kind != token.RBRACE {
				c.Args = append(c.Args, p.expr())
				if p.tok.Kind != token.COMMA {
					break
				}
				p.next()
			}
			c.Rparen, _ = p.expect(token.RPAREN, "')' closing the call")
			x = c
		case p.tok.Kind == token.LBRACK && !p.tok.NewlineBefore:
			p.next()
			ix := &ast.IndexExpr{X: x, Index: p.expr()}
			ix.Rbrack, _ = p.expect(token.RBRACK, "']' closing the index")
			x = ix
		default:
			return x
		}
	}
}

func (p *parser) operand() ast.Expr {
	switch p.tok.Kind {
	case token.IDENT, token.POLICY:
		return p.ident()
	case token.STRING, token.NUMBER, token.DURATION, token.TRUE, token.FALSE:
		return p.lit()
	case token.LPAREN:
		x := &ast.ParenExpr{Lparen: p.tok.Pos}
		p.next()
		x.X = p.expr()
		x.Rparen, _ = p.expect(token.RPAREN, "')'")
		return x
	case token.LBRACK:
		l := &ast.ListLit{Lbrack: p.tok.Pos}
		p.next()
		for p.tok.Kind != token.RBRACK && p.tok.Kind != token.EOF && p.tok.Kind != token.RBRACE {
			start := p.i
			l.Elems = append(l.Elems, p.expr())
			if p.tok.Kind != token.COMMA {
				break
			}
			p.next()
			if p.i == start {
				break
			}
		}
		l.Rbrack, _ = p.expect(token.RBRACK, "',' or ']' in the list")
		return l
	case token.LBRACE:
		m := &ast.MapLit{Lbrace: p.tok.Pos}
		p.next()
		for p.tok.Kind != token.RBRACE && p.tok.Kind != token.EOF {
			start := p.i
			if f, ok := p.field(false).(*ast.Field); ok {
				m.Entries = append(m.Entries, f)
			}
			if p.tok.Kind == token.COMMA || p.tok.Kind == token.SEMI {
				p.next()
			} else if p.tok.Kind != token.RBRACE && !p.tok.NewlineBefore && p.tok.Kind != token.EOF {
				p.unexpected("',' or '}' in the map")
				p.skipStmt()
			}
			if p.i == start {
				p.next()
			}
		}
		if p.tok.Kind == token.EOF {
			p.errorf(m.Lbrace, m.Lbrace, diag.Unclosed, "'{' is never closed (missing '}')")
			m.Rbrace = p.tok.Pos
			return m
		}
		m.Rbrace = p.tok.End
		p.next()
		return m
	}
	if p.tok.Kind.IsKeyword() {
		p.unexpected("an expression")
		id := p.ident()
		return &ast.BadExpr{From: id.Pos(), To: id.End()}
	}
	p.unexpected("an expression")
	return &ast.BadExpr{From: p.tok.Pos, To: p.tok.Pos}
}
