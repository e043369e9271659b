package backend

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/span"
)

func compile(t testing.TB, src string, wasm bool) *bundle.Bundle {
	t.Helper()
	return build(t, []lll.Source{{Name: "v.lll", Text: []byte(src)}}, wasm)
}

// compileText builds src with its module.
func compileText(t testing.TB, src string) *bundle.Bundle { return compile(t, src, true) }

// compileSources builds srcs with their module.
func compileSources(t testing.TB, srcs []lll.Source) *bundle.Bundle { return build(t, srcs, true) }

func build(t testing.TB, srcs []lll.Source, wasm bool) *bundle.Bundle {
	t.Helper()
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	data, errs, err := bundle.Compile(srcs, key, bundle.BuildOptions{Wasm: wasm})
	if err != nil || errs != nil {
		t.Fatal(err, errs)
	}
	b, err := bundle.Load(data, bundle.LoadOptions{Trusted: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, AllowedCaps: abi.Caps()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parse(t testing.TB, line string) *span.Span {
	t.Helper()
	s, err := span.Parse([]byte(line), span.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const statusContract = `validator v {
  require field "status" in ["confirmed", "pending"]
}
`

// TestShadowReportsDivergence runs a bundle in shadow mode with a module
// compiled from another program (a rule with a shorter list): the spans on
// which they disagree are reported with both outcomes, the interpreter's
// answer is returned, the others are not reported. (The module's
// violation is worded by the bundle's validator, hence its list.)
func TestShadowReportsDivergence(t *testing.T) {
	ctx := context.Background()
	b := compile(t, statusContract, false)
	other := compile(t, strings.Replace(statusContract, `, "pending"`, "", 1), true)
	var divs []Divergence
	c, err := newSpans(ctx, Shadow, b.IngestValidators(), b.IR, other.Wasm(), Options{OnDivergence: func(d Divergence) { divs = append(divs, d) }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	v := c.Validators()[0]
	if vi := c.CheckSpan(ctx, v, parse(t, `{"id":"a","status":"confirmed"}`), nil); vi != nil {
		t.Errorf("confirmed: %v", vi)
	}
	if vi := c.CheckSpan(ctx, v, parse(t, `{"id":"b","status":"pending"}`), nil); vi != nil {
		t.Errorf("pending: got the module's %v, want the interpreter's pass", vi)
	}
	if vi := c.CheckSpan(ctx, v, parse(t, `{"id":"c","status":"shipped"}`), nil); vi == nil {
		t.Error("shipped passed")
	}
	if len(divs) != 1 || c.Stats().Divergences != 1 {
		t.Fatalf("divergences %v (stats %+v), want one, on span b", divs, c.Stats())
	}
	d := divs[0]
	if d.SpanID != "b" || d.Validator != "v" || d.Eval.Violation != nil || d.Wasm.Violation == nil || !strings.Contains(d.Wasm.Violation.Detail, "is not one of") {
		t.Errorf("divergence %+v", d)
	}
	if got := d.String(); !strings.Contains(got, `span "b", validator v: eval pass, 0 steps; wasm status: field "status" is not one of "confirmed", "pending": "pending" (require field "status" in ["confirmed", "pending"] at v.lll:2:3, reject), 0 steps`) {
		t.Errorf("String() = %s", got)
	}
}

// TestWasmAnswers: the wasm backend answers from the module (here one
// compiled from another program, to tell the answers apart) and counts
// its runs; eval never touches it.
func TestWasmAnswers(t *testing.T) {
	ctx := context.Background()
	b := compile(t, statusContract, false)
	other := compile(t, strings.Replace(statusContract, `, "pending"`, "", 1), true)
	c, err := newSpans(ctx, Wasm, b.IngestValidators(), b.IR, other.Wasm(), Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	s := parse(t, `{"id":"b","status":"pending"}`)
	if vi := c.CheckSpan(ctx, c.Validators()[0], s, nil); vi == nil {
		t.Error("the wasm backend gave the interpreter's answer")
	}
	if st := c.Stats(); st.Runs != 1 || st.Fallbacks != 0 || st.Divergences != 0 {
		t.Errorf("stats %+v", st)
	}
	e, err := New(ctx, b, Eval, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if vi := e.CheckSpan(ctx, e.Validators()[0], s, nil); vi != nil || e.Stats().Runs != 0 {
		t.Errorf("eval: %v, stats %+v", vi, e.Stats())
	}
}

// TestNew: wasm and shadow need a module covering every span validator;
// an unknown backend is refused.
func TestNew(t *testing.T) {
	ctx := context.Background()
	plain := compile(t, statusContract, false)
	for _, k := range []Kind{Wasm, Shadow} {
		if _, err := New(ctx, plain, k, Options{}); !errors.Is(err, ErrNoModule) {
			t.Errorf("%s without a module: err = %v", k, err)
		}
	}
	if _, err := New(ctx, plain, "jit", Options{}); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("jit: err = %v", err)
	}
	if _, err := ParseKind("WASM"); err == nil {
		t.Error("ParseKind is not exact")
	}
	two := compile(t, statusContract+"validator w {\n  require field \"who\"\n}\n", false)
	one := compile(t, statusContract, true)
	if _, err := newSpans(ctx, Wasm, two.IngestValidators(), two.IR, one.Wasm(), Options{}, nil); !errors.Is(err, ErrNoModule) || !strings.Contains(err.Error(), "does not export w") {
		t.Errorf("module without w: err = %v", err)
	}
	w := compile(t, statusContract, true)
	c, err := New(ctx, w, Shadow, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if c.Kind() != Shadow {
		t.Errorf("Kind() = %s", c.Kind())
	}
	if vi := c.CheckSpan(ctx, c.Validators()[0], parse(t, `{"id":"x","status":"pending"}`), &eval.Env{}); vi != nil || c.Stats().Divergences != 0 {
		t.Errorf("own module: %v, %+v", vi, c.Stats())
	}
}

// TestOpenShares: Open compiles the module once for the span validators
// and the event validators; closing one leaves the other running, and
// the last Close closes the module.
func TestOpenShares(t *testing.T) {
	ctx := context.Background()
	b := compile(t, statusContract, true)
	sp, evs, err := Open(ctx, b, Wasm, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sp.mod == nil || sp.mod != evs.mod || sp.mod.refs.Load() != 2 {
		t.Fatalf("the Spans' module %p and the Events' %p are not one with two shares", sp.mod, evs.mod)
	}
	m := sp.mod
	if err := evs.Close(ctx); err != nil {
		t.Fatal(err)
	}
	v := sp.Validators()[0]
	if vi := sp.CheckSpan(ctx, v, parse(t, `{"id":"c","status":"shipped"}`), nil); vi == nil {
		t.Error("shipped passed")
	}
	if st := sp.Stats(); st.Runs != 1 || st.Fallbacks != 0 {
		t.Errorf("stats %+v after the Events closed, want one run on the module", st)
	}
	if err := sp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := m.refs.Load(); n != 0 {
		t.Errorf("%d shares left after both closed", n)
	}
	if _, err := m.m.NewInstance(ctx); err == nil {
		t.Error("the module still instantiates after the last Close")
	}

	// On eval there is no module to share.
	sp, evs, err = Open(ctx, b, Eval, Options{})
	if err != nil || sp.mod != nil || evs.mod != nil {
		t.Fatalf("eval: %v, modules %p %p", err, sp.mod, evs.mod)
	}
	if err := errors.Join(sp.Close(ctx), evs.Close(ctx)); err != nil {
		t.Fatal(err)
	}
}
