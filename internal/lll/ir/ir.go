// Package ir is the typed intermediate representation of .lll programs,
// the form that is signed into bundles and that every backend executes.
//
// The checker (package check) produces a Program from syntax trees: every
// name is resolved (a field of the input, a policy key, a feature flag, a
// builtin, a kernel or a host call), every expression carries its type,
// every rule its source position and text. Nothing in the IR refers back to
// the syntax tree, so a Program can be encoded (JSON, see Encode) and
// decoded on its own, executed by the interpreter (package eval) or, later,
// compiled to WebAssembly by a second backend: expressions are trees of a
// small, closed set of operators over fixed-point numbers, strings,
// durations and timestamps, with all state behind named kernels and host
// calls.
//
// Shaped for a second backend. The AOT-WASM backend (package wasm; so far
// span validators: field rules, and guards and checks over a subset of the
// expressions) compiles this same IR: every value is an int64 (numbers as
// millionths, durations and timestamps as nanoseconds, bools as 0/1) or a
// string, list or map that lives in linear memory; every operator maps to a
// short instruction sequence (arithmetic with explicit overflow checks, as
// the interpreter does); field reads become loads from a span record the
// host lays out; OpKernel and OpHost become imported functions, the only
// way out of the sandbox; policy values are constants or imports (for
// tenant overrides). No operator depends on the host's clock, locale or
// randomness, so both backends can agree bit for bit, as the shadow run
// requires.
//
// The text form (Program.String) is for people: golden tests, loglinec
// --emit ir and audits.
package ir

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// ABI is the ABI version of programs this package describes.
const ABI = "v1"

// Op is an operator of an expression.
type Op string

// The operators. Operands are in Args unless said otherwise.
const (
	OpConst   Op = "const"   // Value
	OpField   Op = "field"   // input field Name, then Path into it (data.gross)
	OpHas     Op = "has"     // whether field Name (and Path) is present
	OpPolicy  Op = "policy"  // policy value Name ("quality_meter"), Path (["min_score"])
	OpFeature Op = "feature" // feature flag Name
	OpNot     Op = "not"
	OpNeg     Op = "neg"
	OpAnd     Op = "and" // short-circuit
	OpOr      Op = "or"  // short-circuit
	OpEq      Op = "eq"
	OpNe      Op = "ne"
	OpLt      Op = "lt"
	OpLe      Op = "le"
	OpGt      Op = "gt"
	OpGe      Op = "ge"
	OpIn      Op = "in"      // Args[0] in Args[1] (a list)
	OpMatches Op = "matches" // Args[0] matches the glob Args[1]
	OpAdd     Op = "add"
	OpSub     Op = "sub"
	OpMul     Op = "mul"
	OpDiv     Op = "div"
	OpIndex   Op = "index"  // Args[0][Args[1]]
	OpList    Op = "list"   // list of Args
	OpMap     Op = "map"    // map of Path[i]: Args[i]
	OpCall    Op = "call"   // pure builtin Name(Args)
	OpKernel  Op = "kernel" // stateful kernel Name(Args) provided by the host
	OpHost    Op = "host"   // host call Name(Args), gated by a capability
	OpSymbol  Op = "symbol" // a bare name passed to a kernel (components(mass))
)

// Ops lists every operator, for decoders that must refuse unknown ones.
func Ops() []Op {
	return []Op{OpConst, OpField, OpHas, OpPolicy, OpFeature, OpNot, OpNeg, OpAnd, OpOr, OpEq, OpNe,
		OpLt, OpLe, OpGt, OpGe, OpIn, OpMatches, OpAdd, OpSub, OpMul, OpDiv, OpIndex, OpList, OpMap,
		OpCall, OpKernel, OpHost, OpSymbol}
}

// Expr is a typed expression node.
type Expr struct {
	Op    Op       `json:"op"`
	Type  Type     `json:"type"`
	Value *Value   `json:"value,omitempty"`
	Name  string   `json:"name,omitempty"`
	Path  []string `json:"path,omitempty"`
	Args  []*Expr  `json:"args,omitempty"`
	Pos   string   `json:"pos,omitempty"`
}

// Program is a compiled set of declarations.
type Program struct {
	ABI string `json:"abi"`
	// Caps is the sorted union of the capabilities the declarations use.
	Caps       []string     `json:"caps"`
	Policies   []*Policy    `json:"policies"`
	Validators []*Validator `json:"validators"`
	Pipelines  []*Pipeline  `json:"pipelines"`
	Routers    []*Router    `json:"routers"`
	Schemas    []*Schema    `json:"schemas"`
}

// Policy is a named set of typed values.
type Policy struct {
	Name   string         `json:"name"`
	Pos    string         `json:"pos"`
	Fields []*PolicyField `json:"fields"` // sorted by key
}

// PolicyField is one key of a policy.
type PolicyField struct {
	Key   string `json:"key"`
	Type  Type   `json:"type"`
	Value Value  `json:"value"`
	Pos   string `json:"pos"`
}

// Field returns the field of key, or nil.
func (p *Policy) Field(key string) *PolicyField {
	i := sort.Search(len(p.Fields), func(i int) bool { return p.Fields[i].Key >= key })
	if i < len(p.Fields) && p.Fields[i].Key == key {
		return p.Fields[i]
	}
	return nil
}

// RuleKind is the kind of a validator rule.
type RuleKind string

// The rule kinds.
const (
	RuleRequire RuleKind = "require" // Field must be present (non-empty), match Format and be one of In
	RuleAllow   RuleKind = "allow"   // Field may be present; if so it must match Format and be one of In
	RuleClosed  RuleKind = "closed"  // only the members in Allowed may be present
	RuleCheck   RuleKind = "check"   // Cond must hold
)

// Rule is one rule of a validator, checked in order; the first that fails
// is the violation.
type Rule struct {
	Kind    RuleKind `json:"kind"`
	Pos     string   `json:"pos"`
	Source  string   `json:"source"`            // the rule as written
	Field   string   `json:"field,omitempty"`   // "when", "data.gross"
	Format  string   `json:"format,omitempty"`  // "rfc3339"
	Allowed []string `json:"allowed,omitempty"` // closed: sorted member names
	// In lists the values the field may take (require/allow ... in [...]),
	// in source order; empty: any value.
	In      []Value `json:"in,omitempty"`
	Cond    *Expr   `json:"cond,omitempty"`    // check
	Message string  `json:"message,omitempty"` // check: else message
}

// Validator checks (and may emit from) inputs of the listed types.
type Validator struct {
	Name   string   `json:"name"`
	Pos    string   `json:"pos"`
	Input  []string `json:"input"`   // "span" or derived event types
	OnFail string   `json:"on_fail"` // "reject" or "warn"
	Guard  *Expr    `json:"guard,omitempty"`
	Rules  []*Rule  `json:"rules"`
	Emit   *Emit    `json:"emit,omitempty"`
	Caps   []string `json:"caps"`
}

// Emit is the event a validator emits when its guard holds and its rules pass.
type Emit struct {
	Event string  `json:"event"`
	With  []*Expr `json:"with,omitempty"` // kernel calls whose results become members
	Pos   string  `json:"pos"`
}

// Pipeline names the kernels that derive events, gated by a condition.
type Pipeline struct {
	Name      string    `json:"name"`
	Pos       string    `json:"pos"`
	Guard     *Expr     `json:"guard,omitempty"`
	PolicyRef string    `json:"policy_ref,omitempty"`
	Derives   []*Derive `json:"derives"`
	Caps      []string  `json:"caps"`
}

// Derive is one "derive EVENT on KERNEL(...)".
type Derive struct {
	Event  string  `json:"event"`
	Kernel string  `json:"kernel"`
	Args   []*Expr `json:"args,omitempty"`
	Pos    string  `json:"pos"`
}

// Router sends inputs to host calls.
type Router struct {
	Name   string   `json:"name"`
	Pos    string   `json:"pos"`
	Input  []string `json:"input"`
	Routes []*Route `json:"routes"`
	Caps   []string `json:"caps"`
}

// Route is one "route [when COND] to CALL(...)".
type Route struct {
	Pos    string  `json:"pos"`
	Source string  `json:"source"`
	Guard  *Expr   `json:"guard,omitempty"`
	Call   string  `json:"call"`
	Args   []*Expr `json:"args,omitempty"`
}

// Schema is a named data shape.
type Schema struct {
	Name string `json:"name"`
	Pos  string `json:"pos"`
	Type *SType `json:"type"`
}

// SType is a schema type.
type SType struct {
	Kind   string    `json:"kind"` // string int number bool any object list const union ref
	Format string    `json:"format,omitempty"`
	Min    string    `json:"min,omitempty"`
	Max    string    `json:"max,omitempty"`
	Elem   *SType    `json:"elem,omitempty"`
	Fields []*SField `json:"fields,omitempty"`
	Open   bool      `json:"open,omitempty"`
	Const  string    `json:"const,omitempty"`
	Alts   []*SType  `json:"alts,omitempty"`
	Ref    string    `json:"ref,omitempty"`
}

// SField is a member of an object schema type.
type SField struct {
	Name     string `json:"name"`
	Optional bool   `json:"optional,omitempty"`
	Type     *SType `json:"type"`
}

// Policy returns the policy called name, or nil.
func (p *Program) Policy(name string) *Policy {
	for _, x := range p.Policies {
		if x.Name == name {
			return x
		}
	}
	return nil
}

// Encode returns the JSON encoding of the program (deterministic).
func (p *Program) Encode() ([]byte, error) { return json.Marshal(p) }

// ---- text form ----

// String returns the text form of the program.
func (p *Program) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "abi %s\ncaps %s\n", p.ABI, list(p.Caps))
	for _, x := range p.Policies {
		b.WriteString(x.String())
	}
	for _, x := range p.Validators {
		b.WriteString(x.String())
	}
	for _, x := range p.Pipelines {
		b.WriteString(x.String())
	}
	for _, x := range p.Routers {
		b.WriteString(x.String())
	}
	for _, x := range p.Schemas {
		b.WriteString(x.String())
	}
	return b.String()
}

func list(s []string) string { return "[" + strings.Join(s, " ") + "]" }

func (p *Policy) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "policy %s @%s\n", p.Name, p.Pos)
	for _, f := range p.Fields {
		fmt.Fprintf(&b, "  %s: %s = %s\n", f.Key, f.Type, f.Value)
	}
	return b.String()
}

func (v *Validator) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "validator %s @%s input=%s on_fail=%s caps=%s\n", v.Name, v.Pos, list(v.Input), v.OnFail, list(v.Caps))
	if v.Guard != nil {
		fmt.Fprintf(&b, "  guard %s\n", v.Guard)
	}
	for _, r := range v.Rules {
		fmt.Fprintf(&b, "  rule %s @%s %q\n", r.Kind, r.Pos, r.Source)
		switch r.Kind {
		case RuleRequire, RuleAllow:
			fmt.Fprintf(&b, "    field=%s format=%s", r.Field, orDash(r.Format))
			if len(r.In) > 0 {
				fmt.Fprintf(&b, " in=%s", ListValue(r.In))
			}
			b.WriteString("\n")
		case RuleClosed:
			fmt.Fprintf(&b, "    allowed=%s\n", list(r.Allowed))
		case RuleCheck:
			fmt.Fprintf(&b, "    cond %s\n", r.Cond)
			if r.Message != "" {
				fmt.Fprintf(&b, "    message %q\n", r.Message)
			}
		}
	}
	if v.Emit != nil {
		fmt.Fprintf(&b, "  emit %s @%s", v.Emit.Event, v.Emit.Pos)
		for _, w := range v.Emit.With {
			fmt.Fprintf(&b, " with %s", w)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (p *Pipeline) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pipeline %s @%s policy=%s caps=%s\n", p.Name, p.Pos, orDash(p.PolicyRef), list(p.Caps))
	if p.Guard != nil {
		fmt.Fprintf(&b, "  guard %s\n", p.Guard)
	}
	for _, d := range p.Derives {
		fmt.Fprintf(&b, "  derive %s on %s%s @%s\n", d.Event, d.Kernel, args(d.Args), d.Pos)
	}
	return b.String()
}

func args(a []*Expr) string {
	parts := make([]string, len(a))
	for i, x := range a {
		parts[i] = x.String()
	}
	return "(" + strings.Join(parts, " ") + ")"
}

func (r *Router) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "router %s @%s input=%s caps=%s\n", r.Name, r.Pos, list(r.Input), list(r.Caps))
	for _, rt := range r.Routes {
		fmt.Fprintf(&b, "  route @%s %q\n", rt.Pos, rt.Source)
		if rt.Guard != nil {
			fmt.Fprintf(&b, "    guard %s\n", rt.Guard)
		}
		fmt.Fprintf(&b, "    to %s%s\n", rt.Call, args(rt.Args))
	}
	return b.String()
}

func (s *Schema) String() string {
	return fmt.Sprintf("schema %s @%s\n  %s\n", s.Name, s.Pos, s.Type)
}

func (t *SType) String() string {
	if t == nil {
		return "?"
	}
	var s string
	switch t.Kind {
	case "object":
		parts := make([]string, 0, len(t.Fields)+1)
		for _, f := range t.Fields {
			q := ""
			if f.Optional {
				q = "?"
			}
			parts = append(parts, f.Name+q+": "+f.Type.String())
		}
		if t.Open {
			parts = append(parts, "...")
		}
		s = "{" + strings.Join(parts, ", ") + "}"
	case "list":
		s = "[" + t.Elem.String() + "]"
	case "const":
		s = fmt.Sprintf("%q", t.Const)
	case "union":
		parts := make([]string, len(t.Alts))
		for i, a := range t.Alts {
			parts[i] = a.String()
		}
		s = strings.Join(parts, " | ")
	case "ref":
		s = "@" + t.Ref
	default:
		s = t.Kind
		if t.Min != "" || t.Max != "" {
			s += "(" + t.Min + ".." + t.Max + ")"
		}
	}
	if t.Format != "" {
		s += " as " + fmt.Sprintf("%q", t.Format)
	}
	return s
}

// String returns the expression as a typed S-expression:
// (ge:bool (kernel:number percentile (field:number score)) ...).
func (e *Expr) String() string {
	if e == nil {
		return "<nil>"
	}
	switch e.Op {
	case OpConst:
		if e.Value == nil {
			return "<nil const>"
		}
		return e.Value.String() + ":" + e.Type.String()
	case OpField, OpHas, OpPolicy:
		name := e.Name
		for _, p := range e.Path {
			name += "." + p
		}
		return fmt.Sprintf("(%s:%s %s)", e.Op, e.Type, name)
	case OpFeature, OpSymbol:
		return fmt.Sprintf("(%s:%s %s)", e.Op, e.Type, e.Name)
	case OpMap:
		parts := make([]string, len(e.Args))
		for i, a := range e.Args {
			k := ""
			if i < len(e.Path) {
				k = e.Path[i]
			}
			parts[i] = k + "=" + a.String()
		}
		return fmt.Sprintf("(map:%s %s)", e.Type, strings.Join(parts, " "))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "(%s:%s", e.Op, e.Type)
	if e.Name != "" {
		b.WriteString(" " + e.Name)
	}
	for _, a := range e.Args {
		b.WriteString(" " + a.String())
	}
	b.WriteString(")")
	return b.String()
}
