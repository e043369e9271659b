package bundle

import (
	"crypto/ed25519"
	"fmt"
	"sort"
	"time"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/scanner"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
)

// Aliases of the types a bundle hands out, so that callers need import
// only this package.
type (
	// Validator is a compiled validator; Validate(s) checks a span.
	Validator = eval.Validator
	// Violation is a failed rule: Validator, Rule, Field, Detail, Pos.
	Violation = eval.Violation
	// Value is a typed policy value.
	Value = ir.Value
	// Env is what a run may see (features, policy overrides, kernels).
	Env = eval.Env
)

// Bundle is a verified, loaded bundle, ready to run.
type Bundle struct {
	Manifest Manifest
	IR       *ir.Program
	// Sources are the .lll sources the bundle carries (for audits).
	Sources []lll.Source
	prog    *eval.Program
	wasm    *codegen.Output
}

// Hash returns the bundle's hash (the manifest's "sha256:...").
func (b *Bundle) Hash() string { return b.Manifest.Hash }

// Program returns the executable program.
func (b *Bundle) Program() *eval.Program { return b.prog }

// Validators returns every validator, sorted by name.
func (b *Bundle) Validators() []*Validator { return b.prog.Validators() }

// Validator returns the validator called name, or nil.
func (b *Bundle) Validator(name string) *Validator { return b.prog.Validator(name) }

// IngestValidators returns the validators that apply to incoming spans
// (input "span"), sorted by name; canonical_contract_v1 in the standard
// bundle.
func (b *Bundle) IngestValidators() []*Validator {
	var out []*Validator
	for _, v := range b.prog.Validators() {
		if v.AppliesTo(abi.InputSpan) {
			out = append(out, v)
		}
	}
	return out
}

// EventValidators returns the validators that take the derived event type
// typ (e.g. "trajectory_quality"), sorted by name.
func (b *Bundle) EventValidators(typ string) []*Validator {
	var out []*Validator
	for _, v := range b.prog.Validators() {
		if v.AppliesTo(typ) {
			out = append(out, v)
		}
	}
	return out
}

// Pipelines returns the compiled pipelines.
func (b *Bundle) Pipelines() []*eval.Pipeline { return b.prog.Pipelines() }

// Routers returns the compiled routers.
func (b *Bundle) Routers() []*eval.Router { return b.prog.Routers() }

// Policy returns the policy called name.
func (b *Bundle) Policy(name string) (*Policy, bool) {
	p := b.IR.Policy(name)
	if p == nil {
		return nil, false
	}
	return &Policy{ir: p}, true
}

// PolicyNames returns the names of the policies, sorted.
func (b *Bundle) PolicyNames() []string { return b.Manifest.Resources.Policies }

// Policy is a policy's typed values.
type Policy struct {
	ir *ir.Policy
}

// Name returns the policy's name.
func (p *Policy) Name() string { return p.ir.Name }

// IR returns the policy in IR form (for Env.Policies).
func (p *Policy) IR() *ir.Policy { return p.ir }

// Keys returns the policy's keys, sorted.
func (p *Policy) Keys() []string {
	out := make([]string, len(p.ir.Fields))
	for i, f := range p.ir.Fields {
		out[i] = f.Key
	}
	return out
}

// Get returns the value of key.
func (p *Policy) Get(key string) (Value, bool) {
	f := p.ir.Field(key)
	if f == nil {
		return Value{}, false
	}
	return f.Value, true
}

// Type returns the type of key ("duration", "list<string>", ...).
func (p *Policy) Type(key string) (ir.Type, bool) {
	f := p.ir.Field(key)
	if f == nil {
		return ir.Type{}, false
	}
	return f.Type, true
}

func (p *Policy) typed(key string, k ir.Kind) (Value, bool) {
	v, ok := p.Get(key)
	if !ok || v.Kind() != k {
		return Value{}, false
	}
	return v, true
}

// String returns a string value.
func (p *Policy) String(key string) (string, bool) {
	v, ok := p.typed(key, ir.String)
	return v.Str(), ok
}

// Number returns a number value.
func (p *Policy) Number(key string) (float64, bool) {
	v, ok := p.typed(key, ir.Number)
	return v.Float64(), ok
}

// Micros returns a number value in millionths (exact).
func (p *Policy) Micros(key string) (int64, bool) {
	v, ok := p.typed(key, ir.Number)
	return v.Micros(), ok
}

// Duration returns a duration value.
func (p *Policy) Duration(key string) (time.Duration, bool) {
	v, ok := p.typed(key, ir.Duration)
	return v.Duration(), ok
}

// Percentile returns a percentile value ("p96" is 96).
func (p *Policy) Percentile(key string) (float64, bool) {
	v, ok := p.typed(key, ir.Percentile)
	return v.Float64(), ok
}

// Strings returns a list of strings.
func (p *Policy) Strings(key string) ([]string, bool) {
	v, ok := p.typed(key, ir.List)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(v.List()))
	for _, e := range v.List() {
		if e.Kind() != ir.String {
			return nil, false
		}
		out = append(out, e.Str())
	}
	return out, true
}

// Numbers returns a map of numbers (e.g. quality_meter.weights).
func (p *Policy) Numbers(key string) (map[string]float64, bool) {
	v, ok := p.typed(key, ir.Map)
	if !ok {
		return nil, false
	}
	out := map[string]float64{}
	for _, k := range v.Keys() {
		e, _ := v.Get(k)
		if e.Kind() != ir.Number {
			return nil, false
		}
		out[k] = e.Float64()
	}
	return out, true
}

// With returns the policy with some keys replaced, as read from a tenant
// configuration (YAML or JSON decoded to Go values). Each value must fit
// the key's declared type: durations and percentiles are written as in
// .lll ("2h", "p96"), numbers as numbers. Unknown keys are refused.
func (p *Policy) With(overrides map[string]any) (*Policy, error) {
	np := &ir.Policy{Name: p.ir.Name, Pos: p.ir.Pos}
	std := abi.StandardPolicies()[p.ir.Name]
	aliases := abi.PolicyAliases()[p.ir.Name]
	over := map[string]any{}
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := k
		if canon, ok := aliases[k]; ok {
			name = canon
		}
		if p.ir.Field(name) == nil {
			return nil, fmt.Errorf("policies.%s: unknown key %s%s", p.ir.Name, k, diag.DidYouMean(k, p.Keys()))
		}
		if _, dup := over[name]; dup {
			return nil, fmt.Errorf("policies.%s: %s is given twice (under two names)", p.ir.Name, name)
		}
		over[name] = overrides[k]
	}
	for _, f := range p.ir.Fields {
		nf := *f
		if x, ok := over[f.Key]; ok {
			v, err := coerce(x, f.Type)
			if err != nil {
				return nil, fmt.Errorf("policies.%s.%s: %v", p.ir.Name, f.Key, err)
			}
			for _, sk := range std {
				if sk.Name == f.Key {
					if r := sk.Check(v); r != "" {
						return nil, fmt.Errorf("policies.%s.%s %s", p.ir.Name, f.Key, r)
					}
				}
			}
			nf.Value = v
			nf.Pos = "override"
		}
		np.Fields = append(np.Fields, &nf)
	}
	return &Policy{ir: np}, nil
}

// coerce converts a Go value to a value of type t.
func coerce(x any, t ir.Type) (Value, error) {
	switch t.Kind {
	case ir.Duration:
		if s, ok := x.(string); ok {
			if d, ok := scanner.ParseDuration(s); ok {
				return ir.DurationValue(d), nil
			}
			return Value{}, fmt.Errorf("%q is not a duration (write \"6h\", \"1h30m\", \"7d\")", s)
		}
		if d, ok := x.(time.Duration); ok {
			return ir.DurationValue(d), nil
		}
		return Value{}, fmt.Errorf("want a duration such as \"6h\", have %T", x)
	case ir.Percentile:
		if s, ok := x.(string); ok && len(s) > 1 && s[0] == 'p' {
			if n, err := ir.ParseMicros(s[1:]); err == nil && n >= 0 && n <= 100*ir.NumberScale {
				return ir.PercentileMicros(n), nil
			}
		}
		return Value{}, fmt.Errorf("want a percentile such as \"p96\", have %v", x)
	case ir.List:
		l, ok := x.([]any)
		if !ok {
			if ss, ok2 := x.([]string); ok2 {
				for _, s := range ss {
					l = append(l, s)
				}
				ok = true
			}
		}
		if !ok {
			return Value{}, fmt.Errorf("want a list, have %T", x)
		}
		out := make([]Value, len(l))
		for i, e := range l {
			v, err := coerce(e, t.ElemType())
			if err != nil {
				return Value{}, fmt.Errorf("[%d]: %v", i, err)
			}
			out[i] = v
		}
		return ir.ListValue(out), nil
	case ir.Map:
		m, ok := x.(map[string]any)
		if !ok {
			return Value{}, fmt.Errorf("want a map, have %T", x)
		}
		out := map[string]Value{}
		for k, e := range m {
			v, err := coerce(e, t.ElemType())
			if err != nil {
				return Value{}, fmt.Errorf("%s: %v", k, err)
			}
			out[k] = v
		}
		return ir.MapValue(out), nil
	}
	v, err := ir.FromJSON(x)
	if err != nil {
		return Value{}, err
	}
	if t.Kind != ir.Any && v.Kind() != t.Kind {
		return Value{}, fmt.Errorf("want a %s, have %s %s", t, v.Kind(), v)
	}
	return v, nil
}

// Compile compiles .lll sources and builds a signed bundle in one step.
// When the sources have errors it returns them as a diag.List (and no
// bundle).
func Compile(srcs []lll.Source, key ed25519.PrivateKey, opts BuildOptions) ([]byte, diag.List, error) {
	prog, errs := lll.Compile(srcs)
	if len(errs) > 0 {
		return nil, errs, nil
	}
	sorted := append([]lll.Source(nil), srcs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	b, err := Build(prog, sorted, key, opts)
	return b, nil, err
}
