package check

import (
	"strconv"
	"strings"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/ast"
	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/token"
)

// scope is what names mean inside one declaration.
type scope struct {
	decl   string             // "validator canonical_contract_v1"
	inputs []string           // input types
	fields map[string]ir.Type // fields common to every input
	order  []string           // field names, for suggestions
	where  string             // abi.InExpr, InEmit, InDerive, InRoute
	used   map[string]token.Pos
	usedAt map[string]token.Pos
}

func (c *checker) newScope(decl string, inputs []string) *scope {
	sc := &scope{decl: decl, inputs: inputs, fields: map[string]ir.Type{}, where: abi.InExpr,
		used: map[string]token.Pos{}, usedAt: map[string]token.Pos{}}
	for i, in := range inputs {
		fs := c.inputs[in]
		if i == 0 {
			for _, f := range fs {
				sc.fields[f.Name] = f.Type
				sc.order = append(sc.order, f.Name)
			}
			continue
		}
		keep := map[string]bool{}
		for _, f := range fs {
			if t, ok := sc.fields[f.Name]; ok && t.Equal(f.Type) {
				keep[f.Name] = true
			}
		}
		var order []string
		for _, n := range sc.order {
			if keep[n] {
				order = append(order, n)
			} else {
				delete(sc.fields, n)
			}
		}
		sc.order = order
	}
	return sc
}

// inputsOf reads "input: "a|b"" from a body (default span). The webhook
// input is for routers, alone.
func (c *checker) inputsOf(d *ast.Decl, router bool) []string {
	for _, s := range d.Body {
		p, ok := s.(*ast.Prop)
		if !ok || p.Name.Name != "input" {
			continue
		}
		l, ok := p.Value.(*ast.BasicLit)
		if !ok || l.Kind != token.STRING {
			c.errorf(p.Value.Pos(), p.Value.End(), diag.TypeMismatch, "input must be a string naming input types (\"span\" or \"trajectory_edge|trajectory_closed\")")
			return []string{abi.InputSpan}
		}
		var ins []string
		names := abi.InputNames()
		for _, part := range strings.Split(l.Value, "|") {
			part = strings.TrimSpace(part)
			if _, ok := c.inputs[part]; !ok {
				c.errorf(l.Pos(), l.End(), diag.UnknownInput, "unknown input type %q%s (input types are %s)", part, diag.DidYouMean(part, names), strings.Join(names, ", "))
				continue
			}
			if !contains(ins, part) {
				ins = append(ins, part)
			}
		}
		if contains(ins, abi.InputWebhook) {
			switch {
			case !router:
				c.errorf(l.Pos(), l.End(), diag.WrongContext, "the input %q is for routers only", abi.InputWebhook)
				return []string{abi.InputWebhook} // its fields: no second error for each
			case len(ins) > 1:
				c.errorf(l.Pos(), l.End(), diag.WrongContext, "the input %q cannot be combined with other inputs", abi.InputWebhook)
				return []string{abi.InputWebhook}
			}
		}
		if len(ins) == 0 {
			return []string{abi.InputSpan}
		}
		return ins
	}
	return []string{abi.InputSpan}
}

// once reports a property or rule given twice.
func (c *checker) once(seen map[string]token.Pos, key string, n ast.Node, what string) bool {
	if prev, ok := seen[key]; ok {
		c.errorf(n.Pos(), n.End(), diag.Repeated, "%s is given twice (first at %s)", what, prev)
		return false
	}
	seen[key] = n.Pos()
	return true
}

func (c *checker) uses(u *ast.Uses, declared map[string]*ast.BasicLit) {
	caps := abi.Caps()
	for _, l := range u.Caps {
		if !contains(caps, l.Value) {
			msg := diag.DidYouMean(l.Value, caps)
			if l.Value == "crypto.verify" {
				msg = " (crypto.verify is pure and needs no capability)"
			}
			c.errorf(l.Pos(), l.End(), diag.UnknownCap, "unknown capability %q%s", l.Value, msg)
			continue
		}
		if _, dup := declared[l.Value]; dup {
			c.errorf(l.Pos(), l.End(), diag.Repeated, "capability %q is declared twice", l.Value)
			continue
		}
		declared[l.Value] = l
	}
}

// capsOf reconciles the declared capabilities with the used ones.
func (c *checker) capsOf(sc *scope, declared map[string]*ast.BasicLit) []string {
	out := []string{}
	for cp, pos := range sc.used {
		if _, ok := declared[cp]; !ok {
			c.errorf(pos, sc.usedAt[cp], diag.CapNotDeclared, "%s needs the capability %q; declare it in %s with: uses %q", cp, cp, sc.decl, cp)
		}
	}
	for cp, l := range declared {
		if _, ok := sc.used[cp]; !ok {
			c.errorf(l.Pos(), l.End(), diag.CapUnused, "capability %q is declared but %s never calls %s", cp, sc.decl, cp)
			continue
		}
		out = append(out, cp)
	}
	sortStrings(out)
	return out
}

// ---- validators ----

func (c *checker) validator(d *ast.Decl) *ir.Validator {
	v := &ir.Validator{Name: d.Name.Name, Pos: d.Pos().String(), OnFail: "reject", Rules: []*ir.Rule{}}
	v.Input = c.inputsOf(d, false)
	sc := c.newScope("validator "+v.Name, v.Input)
	seen := map[string]token.Pos{}
	declared := map[string]*ast.BasicLit{}
	var closed *ir.Rule
	var named []string
	for _, s := range d.Body {
		switch s := s.(type) {
		case *ast.FieldRule:
			r := c.fieldRule(s, sc, seen)
			if r != nil {
				v.Rules = append(v.Rules, r)
				top, _, _ := strings.Cut(r.Field, ".")
				named = append(named, top)
			}
		case *ast.RejectUnknown:
			if c.once(seen, "reject unknown fields", s, "reject unknown fields") {
				closed = &ir.Rule{Kind: ir.RuleClosed, Pos: s.Pos().String(), Source: c.text(s)}
				v.Rules = append(v.Rules, closed)
			}
		case *ast.CheckStmt:
			cond := c.cond(s.Cond, sc, "check")
			r := &ir.Rule{Kind: ir.RuleCheck, Pos: s.Pos().String(), Source: c.text(s), Cond: cond}
			if s.Else != nil {
				r.Message = s.Else.Value
			}
			v.Rules = append(v.Rules, r)
		case *ast.WhenStmt:
			if c.once(seen, "when", s, "when") {
				v.Guard = c.cond(s.Cond, sc, "when")
			}
		case *ast.OnFail:
			if c.once(seen, "on_fail", s, "on_fail") {
				if !contains(abi.OnFailActions(), s.Action.Value) {
					c.errorf(s.Action.Pos(), s.Action.End(), diag.BadOnFail, "on_fail must be \"reject\" or \"warn\", found %q%s", s.Action.Value, diag.DidYouMean(s.Action.Value, abi.OnFailActions()))
				} else {
					v.OnFail = s.Action.Value
				}
			}
		case *ast.Uses:
			c.uses(s, declared)
		case *ast.Prop:
			switch s.Name.Name {
			case "input":
				c.once(seen, "input", s, "input")
				if len(s.With) > 0 {
					c.errorf(s.With[0].Pos(), s.With[0].End(), diag.WrongContext, "with belongs after emit, not input")
				}
			case "emit":
				if c.once(seen, "emit", s, "emit") {
					v.Emit = c.emit(s, sc)
				}
			default:
				c.errorf(s.Name.Pos(), s.Name.End(), diag.UnknownStmt, "unknown property %s in a validator%s (properties are input and emit)", s.Name.Name, diag.DidYouMean(s.Name.Name, []string{"input", "emit"}))
			}
		}
	}
	if closed != nil {
		closed.Allowed = dedupSorted(named)
	}
	v.Caps = c.capsOf(sc, declared)
	return v
}

func (c *checker) fieldRule(s *ast.FieldRule, sc *scope, seen map[string]token.Pos) *ir.Rule {
	name := s.Name.Value
	top, rest, dotted := strings.Cut(name, ".")
	t, ok := sc.fields[top]
	if !ok {
		c.errorf(s.Name.Pos(), s.Name.End(), diag.UnknownField, "unknown field %q of %s%s", top, strings.Join(sc.inputs, "|"), diag.DidYouMean(top, sc.order))
		return nil
	}
	if dotted {
		if t.Kind != ir.Any && t.Kind != ir.Map {
			c.errorf(s.Name.Pos(), s.Name.End(), diag.UnknownField, "field %q is a %s and has no member %q", top, t, rest)
			return nil
		}
		for _, p := range strings.Split(rest, ".") {
			if p == "" {
				c.errorf(s.Name.Pos(), s.Name.End(), diag.UnknownField, "malformed field path %q", name)
				return nil
			}
		}
		t = t.ElemType()
	}
	if !c.once(seen, "field "+name, s, "a rule for field \""+name+"\"") {
		return nil
	}
	r := &ir.Rule{Kind: ir.RuleAllow, Pos: s.Pos().String(), Source: c.text(s), Field: name}
	if s.Require {
		r.Kind = ir.RuleRequire
	}
	if s.Format != nil {
		f, ok := c.formats[s.Format.Value]
		if !ok {
			names := abi.FormatNames()
			c.errorf(s.Format.Pos(), s.Format.End(), diag.UnknownFormat, "unknown format %q%s (formats are %s)", s.Format.Value, diag.DidYouMean(s.Format.Value, names), strings.Join(names, ", "))
			return r
		}
		if !t.Loose() && !kindIn(t.Kind, f.Kinds) {
			c.errorf(s.Format.Pos(), s.Format.End(), diag.FormatMismatch, "format %q never matches field %q, which is a %s", f.Name, name, t)
			return r
		}
		r.Format = f.Name
	}
	if s.Values != nil {
		r.In = c.allowedValues(s.Values, name, t)
	}
	return r
}

// allowedValues checks the list after "in" of a field rule: literals of the
// field's type (strings, numbers or bools), each once, at least one.
func (c *checker) allowedValues(l *ast.ListLit, name string, t ir.Type) []ir.Value {
	if !t.Loose() && t.Kind != ir.String && !t.Numeric() && t.Kind != ir.Bool {
		c.errorf(l.Pos(), l.End(), diag.TypeMismatch, "field %q is a %s: in takes the values of a string, number or bool field", name, t)
		return nil
	}
	if len(l.Elems) == 0 {
		c.errorf(l.Pos(), l.End(), diag.BadValue, "in [] allows no value at all; list the values field %q may take", name)
		return nil
	}
	var out []ir.Value
	for _, e := range l.Elems {
		v, vt, lit, ok := c.allowedValue(e)
		if !lit {
			c.errorf(e.Pos(), e.End(), diag.WrongContext, "the values after in must be literals (strings, numbers, true or false), found %s", c.text(e))
			continue
		}
		if !ok {
			continue // a malformed number, reported
		}
		if !t.Loose() && !assignable(vt, t) {
			c.errorf(e.Pos(), e.End(), diag.TypeMismatch, "field %q is a %s, so %s can never be its value", name, t, c.text(e))
			continue
		}
		dup := false
		for _, w := range out {
			dup = dup || w.Equal(v)
		}
		if dup {
			c.errorf(e.Pos(), e.End(), diag.DuplicateKey, "value %s is given twice in the values of field %q", c.text(e), name)
			continue
		}
		out = append(out, v)
	}
	return out
}

// allowedValue converts one value of an "in" list: a string, a (negative)
// number, true or false. lit is false for anything else; ok is false when
// the literal is malformed (a number with too many decimals, reported).
func (c *checker) allowedValue(e ast.Expr) (v ir.Value, t ir.Type, lit, ok bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind == token.STRING || e.Kind == token.NUMBER || e.Kind == token.TRUE || e.Kind == token.FALSE {
			v, t, ok = c.literal(e, false)
			return v, t, true, ok
		}
	case *ast.UnaryExpr:
		if l, isLit := e.X.(*ast.BasicLit); isLit && e.Op == token.SUB && l.Kind == token.NUMBER {
			v, t, ok = c.literal(l, false)
			return ir.NumberMicros(-v.Micros()), t, true, ok
		}
	}
	return ir.Value{}, ir.TInvalid, false, false
}

func kindIn(k ir.Kind, ks []ir.Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

func (c *checker) emit(s *ast.Prop, sc *scope) *ir.Emit {
	l, ok := s.Value.(*ast.BasicLit)
	if !ok || l.Kind != token.STRING {
		c.errorf(s.Value.Pos(), s.Value.End(), diag.TypeMismatch, "emit must be a string naming an event type")
		return nil
	}
	events := abi.EventNames()
	if !contains(events, l.Value) {
		c.errorf(l.Pos(), l.End(), diag.UnknownEvent, "unknown event type %q%s (event types are %s)", l.Value, diag.DidYouMean(l.Value, events), strings.Join(events, ", "))
		return nil
	}
	e := &ir.Emit{Event: l.Value, Pos: s.Pos().String()}
	for _, w := range s.With {
		if x := c.callIn(w, sc, abi.InEmit); x != nil {
			e.With = append(e.With, x)
		}
	}
	return e
}

func (c *checker) cond(e ast.Expr, sc *scope, what string) *ir.Expr {
	x := c.expr(e, sc)
	if x.Type.Kind != ir.Bool && !x.Type.Loose() {
		c.errorf(e.Pos(), e.End(), diag.NotBool, "%s needs a bool condition, but %s is a %s", what, c.text(e), x.Type)
	}
	return x
}

// ---- pipelines ----

func (c *checker) pipeline(d *ast.Decl) *ir.Pipeline {
	p := &ir.Pipeline{Name: d.Name.Name, Pos: d.Pos().String(), Derives: []*ir.Derive{}}
	sc := c.newScope("pipeline "+p.Name, []string{abi.InputSpan})
	seen := map[string]token.Pos{}
	declared := map[string]*ast.BasicLit{}
	for _, s := range d.Body {
		switch s := s.(type) {
		case *ast.WhenStmt:
			if c.once(seen, "when", s, "when") {
				p.Guard = c.cond(s.Cond, sc, "when")
			}
		case *ast.Uses:
			c.uses(s, declared)
		case *ast.Prop:
			if s.Name.Name != "policy_ref" {
				c.errorf(s.Name.Pos(), s.Name.End(), diag.UnknownStmt, "unknown property %s in a pipeline%s", s.Name.Name, diag.DidYouMean(s.Name.Name, []string{"policy_ref"}))
				continue
			}
			if !c.once(seen, "policy_ref", s, "policy_ref") {
				continue
			}
			l, ok := s.Value.(*ast.BasicLit)
			if !ok || l.Kind != token.STRING {
				c.errorf(s.Value.Pos(), s.Value.End(), diag.TypeMismatch, "policy_ref must be a string naming a policy")
				continue
			}
			if _, ok := c.policyAST[l.Value]; !ok {
				c.errorf(l.Pos(), l.End(), diag.UnknownPolicy, "unknown policy %q%s", l.Value, diag.DidYouMean(l.Value, keysOf(c.policyAST)))
				continue
			}
			p.PolicyRef = l.Value
		case *ast.Derive:
			events := abi.EventNames()
			if !contains(events, s.Event.Value) {
				c.errorf(s.Event.Pos(), s.Event.End(), diag.UnknownEvent, "unknown event type %q%s (event types are %s)", s.Event.Value, diag.DidYouMean(s.Event.Value, events), strings.Join(events, ", "))
				continue
			}
			x := c.callIn(s.On, sc, abi.InDerive)
			if x == nil {
				continue
			}
			p.Derives = append(p.Derives, &ir.Derive{Event: s.Event.Value, Kernel: x.Name, Args: x.Args, Pos: s.Pos().String()})
		}
	}
	if len(p.Derives) == 0 && !hasBad(d) {
		c.errorf(d.Name.Pos(), d.Name.End(), diag.Missing, "pipeline %s derives nothing; add: derive \"EVENT\" on KERNEL()", p.Name)
	}
	p.Caps = c.capsOf(sc, declared)
	return p
}

func hasBad(d *ast.Decl) bool {
	for _, s := range d.Body {
		if _, ok := s.(*ast.BadStmt); ok {
			return true
		}
	}
	return false
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}

// ---- routers ----

func (c *checker) router(d *ast.Decl) *ir.Router {
	r := &ir.Router{Name: d.Name.Name, Pos: d.Pos().String(), Routes: []*ir.Route{}}
	r.Input = c.inputsOf(d, true)
	sc := c.newScope("router "+r.Name, r.Input)
	seen := map[string]token.Pos{}
	declared := map[string]*ast.BasicLit{}
	for _, s := range d.Body {
		switch s := s.(type) {
		case *ast.Uses:
			c.uses(s, declared)
		case *ast.Prop:
			if s.Name.Name != "input" {
				c.errorf(s.Name.Pos(), s.Name.End(), diag.UnknownStmt, "unknown property %s in a router%s", s.Name.Name, diag.DidYouMean(s.Name.Name, []string{"input"}))
				continue
			}
			c.once(seen, "input", s, "input")
		case *ast.Route:
			rt := &ir.Route{Pos: s.Pos().String(), Source: c.text(s)}
			if s.When != nil {
				rt.Guard = c.cond(s.When, sc, "route when")
			}
			x := c.callIn(s.To, sc, abi.InRoute)
			if x == nil {
				continue
			}
			rt.Call, rt.Args = x.Name, x.Args
			r.Routes = append(r.Routes, rt)
		}
	}
	if len(r.Routes) == 0 && !hasBad(d) {
		c.errorf(d.Name.Pos(), d.Name.End(), diag.Missing, "router %s has no route; add: route [when COND] to ws.send(\"channel\")", r.Name)
	}
	r.Caps = c.capsOf(sc, declared)
	return r
}

// ---- schemas ----

func (c *checker) schema(d *ast.Decl) *ir.Schema {
	s := &ir.Schema{Name: d.Name.Name, Pos: d.Pos().String()}
	var fields []*ast.SchemaField
	open := false
	for _, st := range d.Body {
		if f, ok := st.(*ast.SchemaField); ok {
			fields = append(fields, f)
		}
	}
	c.schemaAST[s.Name] = fields
	s.Type = c.structType(fields, open, s.Name)
	// A schema named after an input type must describe exactly its fields.
	if fs, ok := c.inputs[s.Name]; ok {
		have := map[string]bool{}
		for _, f := range s.Type.Fields {
			have[f.Name] = true
			if !contains(fieldNames(fs), f.Name) {
				for _, af := range fields {
					if af.Name.Name == f.Name {
						c.errorf(af.Name.Pos(), af.Name.End(), diag.UnknownField, "schema %s: %s is not a field of the ABI %s type%s", s.Name, f.Name, s.Name, diag.DidYouMean(f.Name, fieldNames(fs)))
					}
				}
			}
		}
		var missing []string
		for _, f := range fs {
			if !have[f.Name] {
				missing = append(missing, f.Name)
			}
		}
		if len(missing) > 0 {
			c.errorf(d.Name.Pos(), d.Name.End(), diag.Missing, "schema %s lacks the ABI fields %s", s.Name, strings.Join(missing, ", "))
		}
	}
	return s
}

func (c *checker) structType(fields []*ast.SchemaField, open bool, where string) *ir.SType {
	t := &ir.SType{Kind: "object", Open: open}
	seen := map[string]bool{}
	for _, f := range fields {
		if seen[f.Name.Name] {
			c.errorf(f.Name.Pos(), f.Name.End(), diag.DuplicateKey, "schema %s: field %s is given twice", where, f.Name.Name)
			continue
		}
		seen[f.Name.Name] = true
		ft := c.stype(f.Type, where+"."+f.Name.Name)
		if f.Format != nil {
			if _, ok := c.formats[f.Format.Value]; !ok {
				names := abi.FormatNames()
				c.errorf(f.Format.Pos(), f.Format.End(), diag.UnknownFormat, "unknown format %q%s", f.Format.Value, diag.DidYouMean(f.Format.Value, names))
			} else {
				ft.Format = f.Format.Value
			}
		}
		t.Fields = append(t.Fields, &ir.SField{Name: f.Name.Name, Optional: f.Optional, Type: ft})
	}
	return t
}

func schemaTypeNames() []string {
	return []string{"any", "bool", "int", "number", "object", "string"}
}

func (c *checker) stype(t ast.TypeExpr, where string) *ir.SType {
	switch t := t.(type) {
	case *ast.TypeName:
		n := t.Name.Name
		st := &ir.SType{Kind: n}
		switch {
		case contains(schemaTypeNames(), n):
		case c.schemas[n]:
			st = &ir.SType{Kind: "ref", Ref: n}
		default:
			cands := append(schemaTypeNames(), keysOf(c.schemas)...)
			c.errorf(t.Pos(), t.End(), diag.UnknownType, "unknown type %s%s", n, diag.DidYouMean(n, cands))
			return &ir.SType{Kind: "any"}
		}
		if t.Min != nil {
			if n != "int" && n != "number" {
				c.errorf(t.Pos(), t.End(), diag.BadValue, "only int and number take a range, not %s", n)
			} else {
				lo, err1 := ir.ParseMicros(t.Min.Value)
				hi, err2 := ir.ParseMicros(t.Max.Value)
				if err1 != nil || err2 != nil || lo > hi {
					c.errorf(t.Pos(), t.End(), diag.BadValue, "malformed range %s..%s", t.Min.Value, t.Max.Value)
				} else {
					st.Min, st.Max = ir.FormatMicros(lo), ir.FormatMicros(hi)
				}
			}
		}
		return st
	case *ast.TypeList:
		return &ir.SType{Kind: "list", Elem: c.stype(t.Elem, where+"[]")}
	case *ast.TypeStruct:
		return c.structType(t.Fields, t.Open, where)
	case *ast.TypeLit:
		return &ir.SType{Kind: "const", Const: t.Lit.Value}
	case *ast.TypeUnion:
		u := &ir.SType{Kind: "union"}
		for _, a := range t.Alts {
			u.Alts = append(u.Alts, c.stype(a, where))
		}
		return u
	}
	return &ir.SType{Kind: "any"}
}

func dedupSorted(s []string) []string {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return keysOf(m)
}

// schemaAgrees checks that the span schema, when the program declares one,
// gives every top-level field that a span validator restricts to a set of
// values (require/allow ... in [...]) exactly that set, as a constant or a
// union of constants: the published shape of a span is then the one ingest
// enforces. Only validators that reject every span they refuse count: a
// guarded validator (when) or a warning (on_fail "warn") does not restrict
// the field for every span.
func (c *checker) schemaAgrees(prog *ir.Program) {
	var sch *ir.Schema
	for _, s := range prog.Schemas {
		if s.Name == abi.InputSpan {
			sch = s
		}
	}
	if sch == nil || sch.Type == nil {
		return
	}
	for _, v := range prog.Validators {
		if v.Guard != nil || v.OnFail != "reject" || len(v.Input) != 1 || v.Input[0] != abi.InputSpan {
			continue
		}
		for _, r := range v.Rules {
			if len(r.In) == 0 || strings.Contains(r.Field, ".") {
				continue
			}
			var want []string
			for _, x := range r.In {
				want = append(want, x.Str())
			}
			var typ *ir.SType
			for _, f := range sch.Type.Fields {
				if f.Name == r.Field {
					typ = f.Type
				}
			}
			if typ == nil {
				continue // not in the schema: reported as a missing ABI field
			}
			if got, ok := stringConsts(typ); ok && sameStrings(got, want) {
				continue
			}
			for _, f := range c.schemaAST[sch.Name] {
				if f.Name.Name != r.Field || f.Type == nil {
					continue
				}
				alts := make([]string, len(want))
				for i, w := range want {
					alts[i] = strconv.Quote(w)
				}
				c.errorf(f.Type.Pos(), f.Type.End(), diag.SchemaDisagrees,
					"schema span: field %s is %s, but validator %s allows only %s (%s); write %s: %s",
					f.Name.Name, c.text(f.Type), v.Name, strings.Join(alts, ", "), r.Pos, f.Name.Name, strings.Join(alts, " | "))
			}
		}
	}
}

// stringConsts returns the constants of a constant or a union of
// constants.
func stringConsts(t *ir.SType) ([]string, bool) {
	switch t.Kind {
	case "const":
		return []string{t.Const}, true
	case "union":
		var out []string
		for _, a := range t.Alts {
			if a.Kind != "const" {
				return nil, false
			}
			out = append(out, a.Const)
		}
		return out, true
	}
	return nil, false
}

// sameStrings reports whether a and b hold the same strings, in any order.
func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !contains(a, x) {
			return false
		}
	}
	return true
}
