package check

import (
	"sort"
	"strings"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/ast"
	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/token"
)

func sortStrings(s []string) { sort.Strings(s) }

func bad() *ir.Expr {
	v := ir.NullValue()
	return &ir.Expr{Op: ir.OpConst, Type: ir.TInvalid, Value: &v}
}

func constant(v ir.Value, t ir.Type) *ir.Expr { return &ir.Expr{Op: ir.OpConst, Type: t, Value: &v} }

// chain flattens a.b.c into ["a", "b", "c"] when the root is a name.
func chain(e ast.Expr) ([]string, []*ast.Ident, bool) {
	switch e := e.(type) {
	case *ast.Ident:
		return []string{e.Name}, []*ast.Ident{e}, true
	case *ast.SelectorExpr:
		names, ids, ok := chain(e.X)
		if !ok {
			return nil, nil, false
		}
		return append(names, e.Sel.Name), append(ids, e.Sel), true
	}
	return nil, nil, false
}

func (c *checker) expr(e ast.Expr, sc *scope) *ir.Expr {
	x := c.expr1(e, sc)
	if x.Pos == "" {
		x.Pos = e.Pos().String()
	}
	return x
}

func (c *checker) expr1(e ast.Expr, sc *scope) *ir.Expr {
	switch e := e.(type) {
	case *ast.BadExpr:
		return bad()
	case *ast.BasicLit:
		v, t, ok := c.literal(e, false)
		if !ok {
			return bad()
		}
		return constant(v, t)
	case *ast.ParenExpr:
		return c.expr(e.X, sc)
	case *ast.Ident, *ast.SelectorExpr:
		if names, ids, ok := chain(e); ok {
			return c.name(names, ids, sc)
		}
		s := e.(*ast.SelectorExpr)
		x := c.expr(s.X, sc)
		return c.member(x, s.Sel)
	case *ast.IndexExpr:
		x := c.expr(e.X, sc)
		ix := c.expr(e.Index, sc)
		switch x.Type.Kind {
		case ir.List:
			if !assignable(ix.Type, ir.TNumber) {
				c.errorf(e.Index.Pos(), e.Index.End(), diag.TypeMismatch, "a list index must be a number, not a %s", ix.Type)
			}
		case ir.Map:
			if !assignable(ix.Type, ir.TString) {
				c.errorf(e.Index.Pos(), e.Index.End(), diag.TypeMismatch, "a map key must be a string, not a %s", ix.Type)
			}
		case ir.Any, ir.Invalid:
		default:
			c.errorf(e.Pos(), e.End(), diag.TypeMismatch, "cannot index a %s", x.Type)
			return bad()
		}
		return &ir.Expr{Op: ir.OpIndex, Type: x.Type.ElemType(), Args: []*ir.Expr{x, ix}}
	case *ast.CallExpr:
		x := c.callIn(e, sc, abi.InExpr)
		if x == nil {
			return bad()
		}
		return x
	case *ast.UnaryExpr:
		x := c.expr(e.X, sc)
		if e.Op == token.NOT {
			if x.Type.Kind != ir.Bool && !x.Type.Loose() {
				c.errorf(e.Pos(), e.End(), diag.TypeMismatch, "not needs a bool, but %s is a %s", c.text(e.X), x.Type)
			}
			return &ir.Expr{Op: ir.OpNot, Type: ir.TBool, Args: []*ir.Expr{x}}
		}
		if x.Type.Kind != ir.Number && x.Type.Kind != ir.Duration && !x.Type.Loose() {
			c.errorf(e.Pos(), e.End(), diag.TypeMismatch, "cannot negate a %s", x.Type)
		}
		t := x.Type
		if t.Loose() {
			t = ir.TNumber
		}
		return &ir.Expr{Op: ir.OpNeg, Type: t, Args: []*ir.Expr{x}}
	case *ast.BinaryExpr:
		return c.binary(e, sc)
	case *ast.ListLit:
		l := &ir.Expr{Op: ir.OpList}
		var et *ir.Type
		for _, el := range e.Elems {
			x := c.expr(el, sc)
			l.Args = append(l.Args, x)
			if et == nil {
				t := x.Type
				et = &t
			} else if !et.Equal(x.Type) && !(et.Numeric() && x.Type.Numeric()) {
				t := ir.TAny
				et = &t
			}
		}
		if et == nil {
			t := ir.TAny
			et = &t
		}
		l.Type = ir.ListOf(*et)
		return l
	case *ast.MapLit:
		m := &ir.Expr{Op: ir.OpMap}
		var et *ir.Type
		seen := map[string]bool{}
		for _, f := range e.Entries {
			if seen[f.Key.Name] {
				c.errorf(f.Key.Pos(), f.Key.End(), diag.DuplicateKey, "key %s is given twice", f.Key.Name)
				continue
			}
			seen[f.Key.Name] = true
			x := c.expr(f.Value, sc)
			m.Path = append(m.Path, f.Key.Name)
			m.Args = append(m.Args, x)
			if et == nil {
				t := x.Type
				et = &t
			} else if !et.Equal(x.Type) {
				t := ir.TAny
				et = &t
			}
		}
		if et == nil {
			t := ir.TAny
			et = &t
		}
		m.Type = ir.MapOf(*et)
		return m
	}
	c.errorf(e.Pos(), e.End(), diag.WrongContext, "unexpected expression")
	return bad()
}

// name resolves a (dotted) name: an input field (with a path into a map
// or data), policy.NAME.KEY..., features.FLAG.
func (c *checker) name(names []string, ids []*ast.Ident, sc *scope) *ir.Expr {
	switch names[0] {
	case "policy":
		if _, shadow := sc.fields["policy"]; !shadow {
			return c.policyRef(names, ids)
		}
	case "features":
		if _, shadow := sc.fields["features"]; !shadow {
			if len(names) != 2 {
				c.errorf(ids[0].Pos(), ids[len(ids)-1].End(), diag.WrongContext, "write features.FLAG (features are %s)", strings.Join(abi.Features(), ", "))
				return bad()
			}
			if !contains(abi.Features(), names[1]) {
				c.errorf(ids[1].Pos(), ids[1].End(), diag.UnknownFeature, "unknown feature flag %s%s (flags are %s)", names[1], diag.DidYouMean(names[1], abi.Features()), strings.Join(abi.Features(), ", "))
				return bad()
			}
			return &ir.Expr{Op: ir.OpFeature, Type: ir.TBool, Name: names[1]}
		}
	}
	t, ok := sc.fields[names[0]]
	if !ok {
		msg := diag.DidYouMean(names[0], sc.order)
		if contains(abi.HostNamespaces(), names[0]) && len(names) == 2 {
			msg = " (host calls are called: " + names[0] + "." + names[1] + "(...))"
		}
		if msg == "" {
			msg = " (fields are " + strings.Join(sc.order, ", ") + ")"
		}
		c.errorf(ids[0].Pos(), ids[0].End(), diag.UnknownField, "unknown field %s of %s%s", names[0], strings.Join(sc.inputs, "|"), msg)
		return bad()
	}
	x := &ir.Expr{Op: ir.OpField, Type: t, Name: names[0]}
	for i := 1; i < len(names); i++ {
		switch x.Type.Kind {
		case ir.Map, ir.Any:
			x.Path = append(x.Path, names[i])
			x.Type = x.Type.ElemType()
		default:
			c.errorf(ids[i].Pos(), ids[i].End(), diag.UnknownField, "%s is a %s and has no member %s", strings.Join(names[:i], "."), x.Type, names[i])
			return bad()
		}
	}
	return x
}

func (c *checker) member(x *ir.Expr, sel *ast.Ident) *ir.Expr {
	switch x.Type.Kind {
	case ir.Map, ir.Any, ir.Invalid:
		k := ir.StringValue(sel.Name)
		return &ir.Expr{Op: ir.OpIndex, Type: x.Type.ElemType(), Args: []*ir.Expr{x, constant(k, ir.TString)}}
	}
	c.errorf(sel.Pos(), sel.End(), diag.UnknownField, "a %s has no member %s", x.Type, sel.Name)
	return bad()
}

func (c *checker) policyRef(names []string, ids []*ast.Ident) *ir.Expr {
	if len(names) < 3 {
		c.errorf(ids[0].Pos(), ids[len(ids)-1].End(), diag.WrongContext, "write policy.NAME.KEY to read a policy value")
		return bad()
	}
	p, ok := c.policies[names[1]]
	if !ok {
		c.errorf(ids[1].Pos(), ids[1].End(), diag.UnknownPolicy, "unknown policy %s%s", names[1], diag.DidYouMean(names[1], keysOf(c.policyAST)))
		return bad()
	}
	f := p.Field(names[2])
	if f == nil {
		var keys []string
		for _, f := range p.Fields {
			keys = append(keys, f.Key)
		}
		c.errorf(ids[2].Pos(), ids[2].End(), diag.UnknownPolicyKey, "policy %s has no key %s%s", p.Name, names[2], diag.DidYouMean(names[2], keys))
		return bad()
	}
	x := &ir.Expr{Op: ir.OpPolicy, Type: f.Type, Name: p.Name, Path: []string{f.Key}}
	v := f.Value
	for i := 3; i < len(names); i++ {
		if v.Kind() != ir.Map {
			c.errorf(ids[i].Pos(), ids[i].End(), diag.UnknownPolicyKey, "policy.%s is a %s and has no key %s", strings.Join(names[1:i], "."), x.Type, names[i])
			return bad()
		}
		next, ok := v.Get(names[i])
		if !ok {
			c.errorf(ids[i].Pos(), ids[i].End(), diag.UnknownPolicyKey, "policy.%s has no key %s%s", strings.Join(names[1:i], "."), names[i], diag.DidYouMean(names[i], v.Keys()))
			return bad()
		}
		v = next
		x.Path = append(x.Path, names[i])
		x.Type = x.Type.ElemType()
	}
	return x
}

// callIn checks a call used in context where (expr, emit, derive, route).
func (c *checker) callIn(e *ast.CallExpr, sc *scope, where string) *ir.Expr {
	if e == nil {
		return nil
	}
	names, ids, ok := chain(e.Fun)
	if !ok || len(names) > 2 {
		c.errorf(e.Fun.Pos(), e.Fun.End(), diag.UnknownFunc, "%s is not a function", c.text(e.Fun))
		return nil
	}
	name := strings.Join(names, ".")
	f, ok := c.funcs[name]
	if !ok {
		var cands []string
		for _, n := range abi.FuncNames("") {
			if contains(c.funcs[n].Where, where) {
				cands = append(cands, n)
			}
		}
		c.errorf(ids[0].Pos(), ids[len(ids)-1].End(), diag.UnknownFunc, "unknown function %s%s", name, diag.DidYouMean(name, cands))
		return nil
	}
	if !contains(f.Where, where) {
		c.errorf(e.Fun.Pos(), e.Fun.End(), diag.WrongContext, "%s %s cannot be used %s; it belongs %s", f.Kind, name, whereText(where), whereText(f.Where[0]))
		return nil
	}
	if f.Inputs != nil {
		for _, in := range sc.inputs {
			if !contains(f.Inputs, in) {
				c.errorf(e.Fun.Pos(), e.Fun.End(), diag.WrongContext, "kernel %s works on %s inputs, not %s", name, strings.Join(f.Inputs, "|"), in)
				return nil
			}
		}
	}
	minArgs, maxArgs := len(f.Params)-f.OptionalParams(), len(f.Params)
	if f.Variadic {
		minArgs, maxArgs = 1, 1<<30
	}
	if len(e.Args) < minArgs || len(e.Args) > maxArgs {
		c.errorf(e.Pos(), e.End(), diag.BadArgs, "%s takes %s, got %d (signature: %s)", name, argCount(minArgs, maxArgs), len(e.Args), f.Sig)
		return nil
	}
	x := &ir.Expr{Type: f.Result, Name: name}
	switch f.Kind {
	case "builtin":
		x.Op = ir.OpCall
	case "kernel":
		x.Op = ir.OpKernel
	case "host":
		x.Op = ir.OpHost
		if f.Cap != "" {
			if _, ok := sc.used[f.Cap]; !ok {
				sc.used[f.Cap] = e.Fun.Pos()
				sc.usedAt[f.Cap] = e.Fun.End()
			}
		}
	}
	if f.Symbols != nil {
		seen := map[string]bool{}
		for _, a := range e.Args {
			id, ok := a.(*ast.Ident)
			if !ok || !contains(f.Symbols, id.Name) {
				c.errorf(a.Pos(), a.End(), diag.BadArgs, "%s takes the names %s, not %s%s", name, strings.Join(f.Symbols, ", "), c.text(a), diag.DidYouMean(c.text(a), f.Symbols))
				continue
			}
			if seen[id.Name] {
				c.errorf(a.Pos(), a.End(), diag.Repeated, "%s names %s twice", name, id.Name)
				continue
			}
			seen[id.Name] = true
			x.Args = append(x.Args, &ir.Expr{Op: ir.OpSymbol, Type: ir.TString, Name: id.Name, Pos: a.Pos().String()})
		}
		return x
	}
	if name == "has" {
		a := c.expr(e.Args[0], sc)
		if a.Op != ir.OpField {
			c.errorf(e.Args[0].Pos(), e.Args[0].End(), diag.BadArgs, "has takes a field (has(data.gross)), not %s", c.text(e.Args[0]))
			return nil
		}
		return &ir.Expr{Op: ir.OpHas, Type: ir.TBool, Name: a.Name, Path: a.Path}
	}
	for i, a := range e.Args {
		ax := c.expr(a, sc)
		want := f.Params[min(i, len(f.Params)-1)]
		if !assignable(ax.Type, want) {
			c.errorf(a.Pos(), a.End(), diag.BadArgs, "argument %d of %s must be a %s, not a %s (signature: %s)", i+1, name, want, ax.Type, f.Sig)
		}
		if name == "len" && !ax.Type.Loose() && ax.Type.Kind != ir.String && ax.Type.Kind != ir.List && ax.Type.Kind != ir.Map {
			c.errorf(a.Pos(), a.End(), diag.BadArgs, "len takes a string, list or map, not a %s", ax.Type)
		}
		x.Args = append(x.Args, ax)
	}
	return x
}

func argCount(lo, hi int) string {
	switch {
	case lo == hi && lo == 1:
		return "1 argument"
	case lo == hi:
		return itoa(lo) + " arguments"
	case hi > 100:
		return "at least " + itoa(lo) + " arguments"
	}
	return itoa(lo) + " to " + itoa(hi) + " arguments"
}

func itoa(i int) string { return ir.FormatMicros(int64(i) * ir.NumberScale) }

func whereText(w string) string {
	switch w {
	case abi.InEmit:
		return "after emit: EVENT with"
	case abi.InDerive:
		return "after derive EVENT on"
	case abi.InRoute:
		return "after route ... to"
	}
	return "in an expression"
}

func (c *checker) binary(e *ast.BinaryExpr, sc *scope) *ir.Expr {
	x := c.expr(e.X, sc)
	y := c.expr(e.Y, sc)
	mk := func(op ir.Op, t ir.Type) *ir.Expr {
		return &ir.Expr{Op: op, Type: t, Args: []*ir.Expr{x, y}, Pos: e.OpPos.String()}
	}
	mismatch := func(what string) *ir.Expr {
		c.errorf(e.Pos(), e.End(), diag.TypeMismatch, "%s: cannot %s a %s and a %s", c.text(e), what, x.Type, y.Type)
		return bad()
	}
	loose := x.Type.Loose() || y.Type.Loose()
	switch e.Op {
	case token.AND, token.OR:
		for _, o := range []struct {
			x *ir.Expr
			n ast.Expr
		}{{x, e.X}, {y, e.Y}} {
			if o.x.Type.Kind != ir.Bool && !o.x.Type.Loose() {
				c.errorf(o.n.Pos(), o.n.End(), diag.TypeMismatch, "%s needs bool operands, but %s is a %s", e.Op, c.text(o.n), o.x.Type)
			}
		}
		op := ir.OpAnd
		if e.Op == token.OR {
			op = ir.OpOr
		}
		return mk(op, ir.TBool)
	case token.EQL, token.NEQ:
		if !loose && !assignable(x.Type, y.Type) {
			return mismatch("compare")
		}
		if e.Op == token.EQL {
			return mk(ir.OpEq, ir.TBool)
		}
		return mk(ir.OpNe, ir.TBool)
	case token.LSS, token.LEQ, token.GTR, token.GEQ:
		ordered := func(t ir.Type) bool {
			return t.Numeric() || t.Kind == ir.Duration || t.Kind == ir.Timestamp || t.Kind == ir.String || t.Loose()
		}
		if !ordered(x.Type) || !ordered(y.Type) || (!loose && !assignable(x.Type, y.Type)) {
			return mismatch("order")
		}
		op := map[token.Kind]ir.Op{token.LSS: ir.OpLt, token.LEQ: ir.OpLe, token.GTR: ir.OpGt, token.GEQ: ir.OpGe}[e.Op]
		return mk(op, ir.TBool)
	case token.IN:
		if y.Type.Kind != ir.List && !y.Type.Loose() {
			c.errorf(e.Y.Pos(), e.Y.End(), diag.TypeMismatch, "in needs a list on its right, but %s is a %s", c.text(e.Y), y.Type)
			return bad()
		}
		if !assignable(x.Type, y.Type.ElemType()) {
			return mismatch("look for")
		}
		return mk(ir.OpIn, ir.TBool)
	case token.MATCHES:
		if x.Type.Kind != ir.String && !x.Type.Loose() {
			c.errorf(e.X.Pos(), e.X.End(), diag.TypeMismatch, "matches needs a string on its left, but %s is a %s", c.text(e.X), x.Type)
			return bad()
		}
		if y.Op != ir.OpConst || y.Type.Kind != ir.String {
			c.errorf(e.Y.Pos(), e.Y.End(), diag.BadGlob, "matches needs a constant glob string on its right (e.g. \"sale.*\")")
			return bad()
		}
		if reason := abi.ValidGlob(y.Value.Str()); reason != "" {
			c.errorf(e.Y.Pos(), e.Y.End(), diag.BadGlob, "%s", reason)
			return bad()
		}
		return mk(ir.OpMatches, ir.TBool)
	case token.ADD, token.SUB:
		op := ir.OpAdd
		if e.Op == token.SUB {
			op = ir.OpSub
		}
		xk, yk := x.Type.Kind, y.Type.Kind
		switch {
		case loose:
			t := x.Type
			if t.Loose() {
				t = y.Type
			}
			if t.Loose() {
				t = ir.TNumber
			}
			return mk(op, t)
		case x.Type.Numeric() && y.Type.Numeric():
			return mk(op, ir.TNumber)
		case xk == ir.Duration && yk == ir.Duration:
			return mk(op, ir.TDuration)
		case xk == ir.Timestamp && yk == ir.Duration:
			return mk(op, ir.TTimestamp)
		case xk == ir.Timestamp && yk == ir.Timestamp && op == ir.OpSub:
			return mk(op, ir.TDuration)
		case xk == ir.String && yk == ir.String && op == ir.OpAdd:
			return mk(op, ir.TString)
		}
		return mismatch(map[ir.Op]string{ir.OpAdd: "add", ir.OpSub: "subtract"}[op])
	case token.MUL, token.QUO:
		op := ir.OpMul
		if e.Op == token.QUO {
			op = ir.OpDiv
		}
		xk, yk := x.Type.Kind, y.Type.Kind
		switch {
		case loose:
			return mk(op, ir.TNumber)
		case x.Type.Numeric() && y.Type.Numeric():
			return mk(op, ir.TNumber)
		case xk == ir.Duration && y.Type.Numeric():
			return mk(op, ir.TDuration)
		case x.Type.Numeric() && yk == ir.Duration && op == ir.OpMul:
			return mk(op, ir.TDuration)
		}
		return mismatch(map[ir.Op]string{ir.OpMul: "multiply", ir.OpDiv: "divide"}[op])
	}
	return bad()
}
