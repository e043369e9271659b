// Package check resolves and type-checks .lll syntax trees and lowers them
// to the typed IR (package ir).
//
// Check takes every file of a compilation unit at once, since a validator
// may refer to a policy declared in another file. It reports, each with a
// code and, for a near miss, a "did you mean" suggestion:
//   - duplicate declarations and keys;
//   - unknown names: fields of the input, formats, builtins, kernels, host
//     calls, feature flags, policies and policy keys, event types;
//   - type errors in expressions and in the values of the standard
//     policies (abi.StandardPolicies);
//   - capabilities: every host call must be covered by a "uses" of its
//     declaration, and every "uses" must be used. The union of the
//     capabilities is Program.Caps, which becomes the bundle's caps_allow.
//
// The Program is returned even when there are errors (for inspection); it
// must not be executed unless the diagnostic list is empty.
package check

import (
	"fmt"
	"sort"
	"strings"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/ast"
	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/scanner"
	"github.com/loglineos/loglineos/internal/lll/token"
)

type checker struct {
	errs      diag.List
	src       map[string][]byte
	policies  map[string]*ir.Policy
	policyAST map[string]*ast.Decl
	schemas   map[string]bool
	schemaAST map[string][]*ast.SchemaField // the fields of each schema, as written
	inputs    map[string][]abi.Field
	formats   map[string]abi.Format
	funcs     map[string]abi.Func
	std       map[string][]abi.PolicyKey
}

// Check checks the files of one compilation unit and returns the program
// and the sorted diagnostics (nil when there are none).
func Check(files []*ast.File) (*ir.Program, diag.List) {
	c := &checker{
		src:       map[string][]byte{},
		policies:  map[string]*ir.Policy{},
		policyAST: map[string]*ast.Decl{},
		schemas:   map[string]bool{},
		schemaAST: map[string][]*ast.SchemaField{},
		inputs:    abi.Inputs(),
		formats:   abi.Formats(),
		funcs:     abi.Funcs(),
		std:       abi.StandardPolicies(),
	}
	for _, f := range files {
		c.src[f.Name] = f.Src
	}
	// Pass 1: declarations, duplicates.
	seen := map[string]*ast.Decl{}
	var decls []*ast.Decl
	for _, f := range files {
		for _, d := range f.Decls {
			if d.Name == nil || d.Name.Name == "_" {
				continue
			}
			key := d.Keyword.String() + " " + d.Name.Name
			if prev, ok := seen[key]; ok {
				c.errorf(d.Name.Pos(), d.Name.End(), diag.DuplicateDecl, "%s %s is declared twice (first at %s)", d.Keyword, d.Name.Name, prev.Name.Pos())
				continue
			}
			seen[key] = d
			decls = append(decls, d)
			switch d.Keyword {
			case token.POLICY:
				c.policyAST[d.Name.Name] = d
			case token.SCHEMA:
				c.schemas[d.Name.Name] = true
			}
		}
	}
	prog := &ir.Program{ABI: ir.ABI, Caps: []string{}, Policies: []*ir.Policy{}, Validators: []*ir.Validator{},
		Pipelines: []*ir.Pipeline{}, Routers: []*ir.Router{}, Schemas: []*ir.Schema{}}
	// Pass 2: policies first, so that references resolve to their types.
	for _, d := range decls {
		if d.Keyword == token.POLICY {
			p := c.policy(d)
			c.policies[p.Name] = p
			prog.Policies = append(prog.Policies, p)
		}
	}
	caps := map[string]bool{}
	for _, d := range decls {
		switch d.Keyword {
		case token.VALIDATOR:
			v := c.validator(d)
			prog.Validators = append(prog.Validators, v)
			addAll(caps, v.Caps)
		case token.PIPELINE:
			p := c.pipeline(d)
			prog.Pipelines = append(prog.Pipelines, p)
			addAll(caps, p.Caps)
		case token.ROUTER:
			r := c.router(d)
			prog.Routers = append(prog.Routers, r)
			addAll(caps, r.Caps)
		case token.SCHEMA:
			prog.Schemas = append(prog.Schemas, c.schema(d))
		}
	}
	c.schemaAgrees(prog)
	for k := range caps {
		prog.Caps = append(prog.Caps, k)
	}
	sort.Strings(prog.Caps)
	sort.Slice(prog.Policies, func(i, j int) bool { return prog.Policies[i].Name < prog.Policies[j].Name })
	sort.Slice(prog.Validators, func(i, j int) bool { return prog.Validators[i].Name < prog.Validators[j].Name })
	sort.Slice(prog.Pipelines, func(i, j int) bool { return prog.Pipelines[i].Name < prog.Pipelines[j].Name })
	sort.Slice(prog.Routers, func(i, j int) bool { return prog.Routers[i].Name < prog.Routers[j].Name })
	sort.Slice(prog.Schemas, func(i, j int) bool { return prog.Schemas[i].Name < prog.Schemas[j].Name })
	c.errs.Sort()
	if len(c.errs) == 0 {
		return prog, nil
	}
	return prog, c.errs
}

func addAll(m map[string]bool, s []string) {
	for _, x := range s {
		m[x] = true
	}
}

func (c *checker) errorf(pos, end token.Pos, code diag.Code, format string, args ...any) {
	c.errs.Add(pos, end, code, format, args...)
}

// text returns the source text of a node.
func (c *checker) text(n ast.Node) string {
	src := c.src[n.Pos().File]
	a, b := n.Pos().Offset, n.End().Offset
	if a < 0 || b > len(src) || a > b {
		return ""
	}
	return string(src[a:b])
}

// ---- policies ----

func (c *checker) policy(d *ast.Decl) *ir.Policy {
	p := &ir.Policy{Name: d.Name.Name, Pos: d.Pos().String(), Fields: []*ir.PolicyField{}}
	std, isStd := c.std[p.Name]
	keys := map[string]*ast.Field{}
	aliases := abi.PolicyAliases()[p.Name]
	for _, s := range d.Body {
		f, ok := s.(*ast.Field)
		if !ok {
			continue
		}
		name := f.Key.Name
		if canon, ok := aliases[name]; ok {
			name = canon
		}
		if prev, dup := keys[name]; dup {
			also := ""
			if prev.Key.Name != f.Key.Name {
				alias := f.Key.Name
				if alias == name {
					alias = prev.Key.Name
				}
				also = fmt.Sprintf(" (%s is another name of %s)", alias, name)
			}
			c.errorf(f.Key.Pos(), f.Key.End(), diag.DuplicateKey, "policy %s: key %s is given twice (first at %s)%s", p.Name, name, prev.Key.Pos(), also)
			continue
		}
		keys[name] = f
		var want *abi.PolicyKey
		if isStd {
			for i := range std {
				if std[i].Name == name {
					want = &std[i]
				}
			}
			if want == nil {
				names := make([]string, len(std))
				for i, k := range std {
					names[i] = k.Name
				}
				c.errorf(f.Key.Pos(), f.Key.End(), diag.UnknownPolicyKey, "policy %s has no key %s%s (its keys are %s)",
					p.Name, name, diag.DidYouMean(name, names), strings.Join(names, ", "))
				continue
			}
		}
		v, t, ok := c.constValue(f.Value, want, p.Name+"."+name)
		if !ok {
			continue
		}
		p.Fields = append(p.Fields, &ir.PolicyField{Key: name, Type: t, Value: v, Pos: f.Key.Pos().String()})
	}
	sort.Slice(p.Fields, func(i, j int) bool { return p.Fields[i].Key < p.Fields[j].Key })
	return p
}

// sniff gives a string in a policy the type its text says: a duration
// ("24h"), a percentile ("p96") or a string.
func sniff(s string) (ir.Value, ir.Type) {
	if d, ok := scanner.ParseDuration(s); ok {
		return ir.DurationValue(d), ir.TDuration
	}
	if p, ok := parsePercentile(s); ok {
		return ir.PercentileMicros(p), ir.TPercentile
	}
	return ir.StringValue(s), ir.TString
}

func parsePercentile(s string) (int64, bool) {
	if len(s) < 2 || s[0] != 'p' || s[1] < '0' || s[1] > '9' {
		return 0, false
	}
	n, err := ir.ParseMicros(s[1:])
	if err != nil || n < 0 || n > 100*ir.NumberScale {
		return 0, false
	}
	return n, true
}

// constValue evaluates a constant expression of a policy.
func (c *checker) constValue(e ast.Expr, want *abi.PolicyKey, where string) (ir.Value, ir.Type, bool) {
	v, t, ok := c.constExpr(e, where)
	if !ok || want == nil {
		return v, t, ok
	}
	// Coerce strings to the declared duration or percentile.
	if t.Kind == ir.String && (want.Type.Kind == ir.Duration || want.Type.Kind == ir.Percentile) {
		c.errorf(e.Pos(), e.End(), diag.PolicyType, "%s must be a %s, found %s%s", where, want.Type, c.text(e), hint(want.Type))
		return v, t, false
	}
	if !assignable(t, want.Type) {
		c.errorf(e.Pos(), e.End(), diag.PolicyType, "%s must be a %s, found %s %s", where, want.Type, t, c.text(e))
		return v, t, false
	}
	switch {
	case len(want.Keys) > 0:
		m, _ := e.(*ast.MapLit)
		for _, k := range v.Keys() {
			if !contains(want.Keys, k) {
				pos, end := e.Pos(), e.End()
				if m != nil {
					for _, en := range m.Entries {
						if en.Key.Name == k {
							pos, end = en.Key.Pos(), en.Key.End()
						}
					}
				}
				c.errorf(pos, end, diag.UnknownPolicyKey, "%s has no key %s%s (its keys are %s)", where, k, diag.DidYouMean(k, want.Keys), strings.Join(want.Keys, ", "))
				return v, t, false
			}
		}
	case want.Pattern != "":
		l, _ := e.(*ast.ListLit)
		okAll := true
		for i, el := range v.List() {
			var n ast.Node = e
			if l != nil && i < len(l.Elems) {
				n = l.Elems[i]
			}
			if r := abi.CheckPattern(want.Pattern, el.Str()); r != "" {
				code := diag.BadGlob
				if want.Pattern == "key_field" || !strings.Contains(r, "glob") && !strings.Contains(r, "field:glob") {
					code = diag.UnknownField
				}
				c.errorf(n.Pos(), n.End(), code, "%s: %s", where, r)
				okAll = false
			}
		}
		if !okAll {
			return v, t, false
		}
	}
	if r := want.Check(v); r != "" {
		c.errorf(e.Pos(), e.End(), diag.BadValue, "%s %s", where, r)
		return v, t, false
	}
	if want.Type.Kind == ir.Map || want.Type.Kind == ir.List {
		t = want.Type
	}
	return v, t, true
}

func hint(t ir.Type) string {
	switch t.Kind {
	case ir.Duration:
		return ` (write a duration such as "6h" or "1h30m")`
	case ir.Percentile:
		return ` (write a percentile such as "p96")`
	}
	return ""
}

func (c *checker) constExpr(e ast.Expr, where string) (ir.Value, ir.Type, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		return c.literal(e, true)
	case *ast.UnaryExpr:
		if e.Op == token.SUB {
			v, t, ok := c.constExpr(e.X, where)
			if ok && t.Kind == ir.Number {
				return ir.NumberMicros(-v.Micros()), t, true
			}
			if ok && t.Kind == ir.Duration {
				c.errorf(e.Pos(), e.End(), diag.BadValue, "%s: durations cannot be negative", where)
				return v, t, false
			}
		}
	case *ast.ListLit:
		elems := make([]ir.Value, 0, len(e.Elems))
		var et *ir.Type
		okAll := true
		for _, x := range e.Elems {
			v, t, ok := c.constExpr(x, where)
			if !ok {
				okAll = false
				continue
			}
			elems = append(elems, v)
			if et == nil {
				et = &t
			} else if !et.Equal(t) {
				any_ := ir.TAny
				et = &any_
			}
		}
		if et == nil {
			any_ := ir.TAny
			et = &any_
		}
		return ir.ListValue(elems), ir.ListOf(*et), okAll
	case *ast.MapLit:
		m := map[string]ir.Value{}
		var et *ir.Type
		okAll := true
		for _, f := range e.Entries {
			if _, dup := m[f.Key.Name]; dup {
				c.errorf(f.Key.Pos(), f.Key.End(), diag.DuplicateKey, "%s: key %s is given twice", where, f.Key.Name)
				continue
			}
			v, t, ok := c.constExpr(f.Value, where+"."+f.Key.Name)
			if !ok {
				okAll = false
				continue
			}
			m[f.Key.Name] = v
			if et == nil {
				et = &t
			} else if !et.Equal(t) {
				any_ := ir.TAny
				et = &any_
			}
		}
		if et == nil {
			any_ := ir.TAny
			et = &any_
		}
		return ir.MapValue(m), ir.MapOf(*et), okAll
	case *ast.ParenExpr:
		return c.constExpr(e.X, where)
	case *ast.BadExpr:
		return ir.Value{}, ir.TInvalid, false
	}
	c.errorf(e.Pos(), e.End(), diag.WrongContext, "%s: a policy value must be a constant (string, number, duration, bool, list or map)", where)
	return ir.Value{}, ir.TInvalid, false
}

// literal converts a literal; in a policy (sniff) a string may be a
// duration or a percentile.
func (c *checker) literal(l *ast.BasicLit, sniffStrings bool) (ir.Value, ir.Type, bool) {
	switch l.Kind {
	case token.STRING:
		if sniffStrings {
			v, t := sniff(l.Value)
			return v, t, true
		}
		return ir.StringValue(l.Value), ir.TString, true
	case token.NUMBER:
		n, err := ir.ParseMicros(l.Value)
		if err != nil {
			c.errorf(l.Pos(), l.End(), diag.BadValue, "%v", err)
			return ir.Value{}, ir.TNumber, false
		}
		return ir.NumberMicros(n), ir.TNumber, true
	case token.DURATION:
		d, ok := scanner.ParseDuration(l.Value)
		if !ok {
			return ir.Value{}, ir.TDuration, false // reported by the scanner
		}
		return ir.DurationValue(d), ir.TDuration, true
	case token.TRUE, token.FALSE:
		return ir.BoolValue(l.Kind == token.TRUE), ir.TBool, true
	}
	return ir.Value{}, ir.TInvalid, false
}

// ---- helpers ----

func contains(s []string, x string) bool {
	for _, y := range s {
		if x == y {
			return true
		}
	}
	return false
}

func fieldNames(fs []abi.Field) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Name
	}
	return out
}

// assignable reports whether a value of type got may stand where want is
// expected.
func assignable(got, want ir.Type) bool {
	switch {
	case got.Loose() || want.Loose():
		return true
	case got.Numeric() && want.Numeric():
		return true
	case got.Kind == ir.Null || want.Kind == ir.Null:
		return got.Kind == want.Kind
	case got.Kind != want.Kind:
		return false
	case got.Kind == ir.List || got.Kind == ir.Map:
		return assignable(got.ElemType(), want.ElemType())
	}
	return true
}
