package lll_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/span"
)

// hostFunc is a Host made of a function.
type hostFunc func(ctx context.Context, name string, args []ir.Value) (ir.Value, error)

func (f hostFunc) Call(ctx context.Context, name string, args []ir.Value) (ir.Value, error) {
	return f(ctx, name, args)
}

// kernelFunc is a Kernels made of a function.
type kernelFunc func(ctx context.Context, name string, in eval.Input, args []ir.Value) (ir.Value, error)

func (f kernelFunc) Kernel(ctx context.Context, name string, in eval.Input, args []ir.Value) (ir.Value, error) {
	return f(ctx, name, in, args)
}

// returns is a host whose every call returns v.
func returns(v ir.Value) eval.Host {
	return hostFunc(func(context.Context, string, []ir.Value) (ir.Value, error) { return v, nil })
}

// blocks is a host whose calls wait for their context to end.
func blocks() eval.Host {
	return hostFunc(func(ctx context.Context, _ string, _ []ir.Value) (ir.Value, error) {
		<-ctx.Done()
		return ir.Value{}, ctx.Err()
	})
}

// chain returns "x + x + ... + x" with n terms.
func chain(x string, n int) string {
	return strings.TrimSuffix(strings.Repeat(x+" + ", n), " + ")
}

// listOf returns "[x, x, ..., x]" with n elements.
func listOf(x string, n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(x+", ", n), ", ") + "]"
}

// whoSpan returns a span whose who is a string of n bytes.
func whoSpan(t testing.TB, n int) *span.Span {
	return spanOf(t, fmt.Sprintf(`{"id":"a","who":%q,"did":"sale.post"}`, strings.Repeat("x", n)))
}

// dataSpan returns a span whose data.s is a string of n bytes.
func dataSpan(t testing.TB, n int) *span.Span {
	return spanOf(t, fmt.Sprintf(`{"id":"a","who":"w","did":"sale.post","data":{"s":%q}}`, strings.Repeat("x", n)))
}

// TestEvalLimits runs programs that exceed each limit of an evaluation:
// each fails alone, with an *eval.Error of the limit's code.
func TestEvalLimits(t *testing.T) {
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	big := ir.StringValue(strings.Repeat("x", 5<<20))
	bigList := ir.ListValue(make([]ir.Value, 100_000))
	tests := []struct {
		name    string
		guard   string // the route's guard
		uses    string // a capability the guard needs
		span    *span.Span
		env     *eval.Env
		ctx     context.Context
		code    diag.Code
		wantMsg string
	}{
		{name: "string concatenation, default budget", guard: "len(" + chain("who", 12) + ") > 0", span: whoSpan(t, 60<<10),
			code: diag.ByteBudget, wantMsg: fmt.Sprintf("budget of %d bytes", eval.DefaultMaxBytes)},
		{name: "string concatenation within the budget", guard: "len(" + chain("who", 3) + ") > 0", span: whoSpan(t, 1000)},
		{name: "lower and upper", guard: `lower(upper(lower(upper(data.s)))) != ""`, span: dataSpan(t, 1000),
			env: &eval.Env{MaxBytes: 6000}, code: diag.ByteBudget, wantMsg: "budget of 6000 bytes"},
		{name: "huge list", guard: "len(" + listOf("who", 200) + ") > 0", span: dataSpan(t, 10),
			env: &eval.Env{MaxBytes: 8 << 10}, code: diag.ByteBudget},
		{name: "nested lists", guard: "len(" + listOf(listOf("who", 20), 20) + ") > 0", span: dataSpan(t, 10),
			env: &eval.Env{MaxBytes: 16 << 10}, code: diag.ByteBudget},
		{name: "map literal", guard: "len({a: who, b: who, c: who, d: who, e: who, f: who, g: who, h: who}) > 0", span: dataSpan(t, 10),
			env: &eval.Env{MaxBytes: 1000}, code: diag.ByteBudget},
		{name: "span data decoded", guard: `data.s != ""`, span: dataSpan(t, 20<<10),
			env: &eval.Env{MaxBytes: 16 << 10}, code: diag.ByteBudget},
		{name: "has(data.x) does not hide the budget", guard: `has(data.s)`, span: dataSpan(t, 20<<10),
			env: &eval.Env{MaxBytes: 16 << 10}, code: diag.ByteBudget},
		{name: "host call returns a big string", guard: `kv.get("k") != ""`, uses: "kv.get", span: dataSpan(t, 10),
			env: &eval.Env{Host: returns(big)}, code: diag.ByteBudget},
		{name: "host call returns a big list", guard: `kv.get("k") != ""`, uses: "kv.get", span: dataSpan(t, 10),
			env: &eval.Env{Host: returns(bigList)}, code: diag.ByteBudget},
		{name: "host call returns a small value", guard: `kv.get("k") != ""`, uses: "kv.get", span: dataSpan(t, 10),
			env: &eval.Env{Host: returns(ir.StringValue("v")), Timeout: time.Minute}},
		{name: "slow host call", guard: `kv.get("k") != ""`, uses: "kv.get", span: dataSpan(t, 10),
			env: &eval.Env{Host: blocks(), Timeout: 5 * time.Millisecond}, code: diag.Deadline, wantMsg: "deadline of 5ms"},
		{name: "deadline at the periodic check", guard: "len(" + chain("who", 300) + ") > 0", span: dataSpan(t, 10),
			env: &eval.Env{Timeout: time.Nanosecond}, code: diag.Deadline, wantMsg: "deadline of 1ns"},
		{name: "many steps within the deadline", guard: "len(" + chain("who", 300) + ") > 0", span: dataSpan(t, 10),
			env: &eval.Env{Timeout: time.Minute}},
		{name: "the caller's deadline", guard: "len(" + chain("who", 300) + ") > 0", span: dataSpan(t, 10),
			ctx: expired, code: diag.Canceled},
		{name: "the caller's deadline in a slow host call", guard: `kv.get("k") != ""`, uses: "kv.get", span: dataSpan(t, 10),
			env: &eval.Env{Host: blocks()}, ctx: shortCtx(t), code: diag.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uses := `uses "ws.send"`
			if tt.uses != "" {
				uses += "\n  uses " + fmt.Sprintf("%q", tt.uses)
			}
			ep := compileEval(t, fmt.Sprintf("router r {\n  %s\n  route when %s to ws.send(\"c\")\n}\n", uses, tt.guard))
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			acts, err := ep.Routers()[0].Route(ctx, eval.Input{Span: tt.span}, tt.env)
			if tt.code == "" {
				if err != nil || len(acts) != 1 {
					t.Fatalf("got %d actions, error %v; want 1 action", len(acts), err)
				}
				return
			}
			var e *eval.Error
			if !errors.As(err, &e) {
				t.Fatalf("got error %v (%T), want an *eval.Error %s", err, err, tt.code)
			}
			if e.Code != tt.code || !strings.Contains(e.Msg, tt.wantMsg) || e.Pos == "" {
				t.Errorf("got %v, want code %s, a position and a message with %q", e, tt.code, tt.wantMsg)
			}
		})
	}
}

// shortCtx returns a context that ends in 5ms.
func shortCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

// TestEvalLimitsOfKernels charges the value a kernel returns and checks
// the deadline after it returns.
func TestEvalLimitsOfKernels(t *testing.T) {
	ep := compileEval(t, `validator v {
  input: "trajectory_quality"
  check percentile(score) >= 0
}`)
	ev := ir.MapValue(map[string]ir.Value{"type": ir.StringValue("trajectory_quality"), "score": ir.IntValue(50)})
	big := ir.StringValue(strings.Repeat("x", 5<<20)) // made before the run, which must not take its time
	tests := []struct {
		name   string
		kernel kernelFunc
		env    eval.Env
		code   diag.Code
	}{
		{"big result", func(context.Context, string, eval.Input, []ir.Value) (ir.Value, error) {
			return big, nil
		}, eval.Env{}, diag.ByteBudget},
		{"slow", func(context.Context, string, eval.Input, []ir.Value) (ir.Value, error) {
			time.Sleep(2 * time.Millisecond)
			return ir.IntValue(1), nil
		}, eval.Env{Timeout: time.Millisecond}, diag.Deadline},
		{"quick", func(context.Context, string, eval.Input, []ir.Value) (ir.Value, error) {
			return ir.IntValue(1), nil
		}, eval.Env{Timeout: time.Minute}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			env.Kernels = tt.kernel
			res, err := ep.Validator("v").CheckEvent(t.Context(), ev, &env)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if res.Violation != nil {
				got = res.Violation.Detail
			}
			if want := string(tt.code); !strings.Contains(got, want) || (want == "") != (got == "") {
				t.Errorf("got violation %q, want one with %q", got, want)
			}
		})
	}
}

// TestEvalLimitsFailAlone runs evaluations that exceed the byte budget
// and the deadline at the same time as ordinary ones, on one Program:
// only the former fail.
func TestEvalLimitsFailAlone(t *testing.T) {
	ep := compileEval(t, `router r {
  uses "ws.send"
  uses "kv.get"
  route when len(who + who + who) > 0 and kv.get("k") != "" to ws.send("c")
}`)
	rt := ep.Routers()[0]
	s := whoSpan(t, 1000)
	good := &eval.Env{Host: returns(ir.StringValue("v")), Timeout: time.Minute}
	bad := []*eval.Env{{Host: returns(ir.StringValue("v")), MaxBytes: 2000}, {Host: blocks(), Timeout: time.Millisecond}}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		env := good
		if i%4 == 0 {
			env = bad[i/4%2]
		}
		wg.Go(func() {
			acts, err := rt.Route(t.Context(), eval.Input{Span: s}, env)
			switch {
			case env == good && (err != nil || len(acts) != 1):
				errs <- fmt.Errorf("an ordinary evaluation: %d actions, %v", len(acts), err)
			case env != good && err == nil:
				errs <- fmt.Errorf("an evaluation over its limits did not fail")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestDefaultMaxBytesFitsSpans checks that the data of the largest span the
// default span limits admit (an array of 32K zeros) decodes within the
// default byte budget.
func TestDefaultMaxBytesFitsSpans(t *testing.T) {
	n := (span.DefaultMaxBytes - 64) / 2
	src := `{"id":"a","data":{"a":[0` + strings.Repeat(",0", n-1) + `]}}`
	ep := compileEval(t, `validator v { check len(data.a) > 0 }`)
	if vi := ep.Validator("v").CheckSpan(t.Context(), spanOf(t, src), nil); vi != nil {
		t.Errorf("a span of %d bytes: %v", len(src), vi)
	}
}
