package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/vm"
)

// kvHost is a host with a key-value store that a Stager's kv.set writes
// (read-your-writes), counting what it is asked.
type kvHost struct {
	kv     map[string]ir.Value
	calls  []string
	staged []string
}

func (h *kvHost) Call(_ context.Context, name string, args []ir.Value) (ir.Value, error) {
	h.calls = append(h.calls, name+ir.ListValue(args).String())
	if name == "kv.get" {
		if v, ok := h.kv[args[0].Str()]; ok {
			return v, nil
		}
	}
	return ir.NullValue(), nil
}

func (h *kvHost) Stage(_ context.Context, a *eval.Action) error {
	h.staged = append(h.staged, a.Call+ir.ListValue(a.Args).String())
	if a.Call == "kv.set" {
		h.kv[a.Args[0].Str()] = a.Args[1]
	}
	return nil
}

const firstsRouter = `router firsts {
  uses "kv.get", "kv.set", "ws.send"
  route when len(kv.get(this)) == 0 to ws.send("first", {this: this})
  route to kv.set(this, id)
  route when kv.get(this) == id to ws.send("same")
}
`

// TestRouteBackends: a router of spans gives the interpreter's actions on
// every backend, its kv.set told to the host once (and read back by the
// later route); shadow compares and finds nothing; a run the module
// leaves to the interpreter (kv.get gives a number) is answered by it
// with the module's calls replayed: nothing is asked or staged twice.
func TestRouteBackends(t *testing.T) {
	ctx := context.Background()
	b := compileText(t, firstsRouter)
	rt := b.Routers()[0]
	lines := []string{`{"id":"a","this":"o:1"}`, `{"id":"b","this":"o:1"}`, `{"id":"c","this":"o:2"}`, `{"id":"d","this":"n"}`}
	run := func(kind Kind) ([][]eval.Action, []string, *kvHost, Stats) {
		var divs []Divergence
		c, err := New(ctx, b, kind, Options{OnDivergence: func(d Divergence) { divs = append(divs, d) }})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		h := &kvHost{kv: map[string]ir.Value{"n": ir.IntValue(7)}}
		var out [][]eval.Action
		var errs []string
		for _, line := range lines {
			acts, err := c.Route(ctx, rt, eval.Input{Span: parse(t, line)}, &eval.Env{Host: h, Timeout: -1})
			out = append(out, acts)
			errs = append(errs, errText(err))
		}
		if len(divs) > 0 {
			t.Errorf("%s: divergences %v", kind, divs)
		}
		return out, errs, h, c.Stats()
	}
	want, wantErrs, wh, _ := run(Eval)
	if len(want[0]) != 3 || len(want[1]) != 2 || !strings.Contains(wantErrs[3], "LLL102") {
		t.Fatalf("eval's actions %v, errors %q: want the first sighting of o:1, then the same; len of a number", want, wantErrs)
	}
	for _, kind := range []Kind{Wasm, Shadow} {
		got, errs, h, st := run(kind)
		if diff := cmp.Diff(wantErrs, errs); diff != "" {
			t.Errorf("%s: errors (-eval +%s):\n%s", kind, kind, diff)
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b ir.Value) bool { return a.Equal(b) })); diff != "" {
			t.Errorf("%s: actions (-eval +%s):\n%s", kind, kind, diff)
		}
		if diff := cmp.Diff(wh.calls, h.calls); diff != "" {
			t.Errorf("%s: host calls (-eval +%s):\n%s", kind, kind, diff)
		}
		if diff := cmp.Diff(wh.staged, h.staged); diff != "" {
			t.Errorf("%s: staged (-eval +%s):\n%s", kind, kind, diff)
		}
		if st.Runs != 4 || st.Fallbacks != 1 || st.Divergences != 0 {
			t.Errorf("%s: stats %+v, want 4 runs, 1 answered by the interpreter (d: kv.get gives a number)", kind, st)
		}
	}
}

// TestRouteShadowDivergence runs a router in shadow mode with a module
// compiled from another program (another channel, another key): the
// first host call (or action told to the host) that differs is reported,
// the interpreter's actions returned, each told to the host once.
func TestRouteShadowDivergence(t *testing.T) {
	ctx := context.Background()
	b := compile(t, firstsRouter, false)
	other := compile(t, strings.NewReplacer(`"first"`, `"fiRst"`, "kv.get(this) == id", "kv.get(id  ) == id").Replace(firstsRouter), true)
	var divs []Divergence
	c, err := newSpans(ctx, Shadow, nil, b.IR, other.Wasm(), Options{OnDivergence: func(d Divergence) { divs = append(divs, d) }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	h := &kvHost{kv: map[string]ir.Value{}}
	acts, err := c.Route(ctx, b.Routers()[0], eval.Input{Span: parse(t, `{"id":"a","this":"o:1"}`)}, &eval.Env{Host: h})
	if err != nil || len(acts) != 3 || acts[0].Args[0].Str() != "first" {
		t.Fatalf("actions %v, %v: want the interpreter's", acts, err)
	}
	if len(divs) != 1 || divs[0].Router != "firsts" || divs[0].Name() != "firsts" || divs[0].SpanID != "a" {
		t.Fatalf("divergences %+v, want one of router firsts", divs)
	}
	if got := divs[0].String(); !strings.Contains(got, `host calls differ: call 2 is stage ws.send["fiRst", {this: "o:1"}], the interpreter's stage ws.send["first", {this: "o:1"}]`) {
		t.Errorf("String() = %s", got)
	}
	if len(h.staged) != 3 {
		t.Errorf("staged %v: want the interpreter's three actions, once each", h.staged)
	}
}

// TestRouteCapabilities: a module importing http.request cannot be
// instantiated under capabilities that do not grant it: New fails, naming
// the call and the capability.
func TestRouteCapabilities(t *testing.T) {
	ctx := context.Background()
	b := compileText(t, "router hook {\n  uses \"http.request\"\n  route to http.request(\"https://x.example\")\n}\n")
	_, err := newSpans(ctx, Wasm, nil, b.IR, b.Wasm(), Options{caps: []string{"ws.send"}}, nil)
	if !errors.Is(err, vm.ErrCapability) || !strings.Contains(err.Error(), `http.request, which needs the capability "http.request"`) {
		t.Fatalf("err %v, want vm.ErrCapability naming http.request", err)
	}
	c, err := New(ctx, b, Wasm, Options{})
	if err != nil {
		t.Fatalf("with the bundle's caps_allow: %v", err)
	}
	_ = c.Close(ctx)
}

// TestCheckSpanHostCalls: a validator's host calls are made once an
// evaluation under every backend (shadow replays the interpreter's to the
// module), with the interpreter's answers; a kv.get the module does not
// read (a number where it reads a string) is answered by the interpreter.
func TestCheckSpanHostCalls(t *testing.T) {
	ctx := context.Background()
	b := compileText(t, "validator v {\n  uses \"kv.get\"\n  check len(kv.get(this)) < 3 else \"long\"\n}\n")
	lines := []string{`{"id":"a","this":"short"}`, `{"id":"b","this":"long"}`, `{"id":"c","this":"none"}`, `{"id":"d","this":"n"}`}
	store := map[string]ir.Value{"short": ir.StringValue("ab"), "long": ir.StringValue("abcd"), "n": ir.IntValue(3)}
	var want []string
	for _, kind := range Kinds() {
		var divs []Divergence
		c, err := New(ctx, b, kind, Options{OnDivergence: func(d Divergence) { divs = append(divs, d) }})
		if err != nil {
			t.Fatal(err)
		}
		h := &kvHost{kv: store}
		var got []string
		for _, line := range lines {
			vi := c.CheckSpan(ctx, c.Validators()[0], parse(t, line), &eval.Env{Host: h, Timeout: -1})
			got = append(got, fmt.Sprint(vi))
		}
		_ = c.Close(ctx)
		if want == nil {
			want = got
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: violations (-eval +%s):\n%s", kind, kind, diff)
		}
		if len(h.calls) != len(lines) || len(divs) > 0 {
			t.Errorf("%s: host calls %q, divergences %v: want one call a span, no divergence", kind, h.calls, divs)
		}
		if st := c.Stats(); kind != Eval && (st.Runs != 4 || st.Fallbacks != 1) {
			t.Errorf("%s: stats %+v, want 4 runs, 1 answered by the interpreter", kind, st)
		}
	}
}

// TestRouteEvents: a router of webhooks that does not read its input runs
// on the module (the webhook its payload), one that reads it on the
// interpreter, under every backend with the same actions.
func TestRouteEvents(t *testing.T) {
	ctx := context.Background()
	b := compileText(t, `router all {
  input: "webhook"
  uses "ws.send", "env.get"
  route to ws.send(env.get("channel"))
}
router stripe {
  input: "webhook"
  uses "ws.send"
  route when source == "stripe" to ws.send("stripe")
}
`)
	in, err := eval.Webhook{Source: "stripe", ID: "msg_1", Payload: []byte(`{"a":1}`)}.Input()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, kind := range Kinds() {
		var divs []Divergence
		c, err := New(ctx, b, kind, Options{OnDivergence: func(d Divergence) { divs = append(divs, d) }})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, rt := range b.Routers() {
			acts, err := c.Route(ctx, rt, in, &eval.Env{Host: &kvHost{kv: map[string]ir.Value{}}})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, words(acts)...)
		}
		if want == nil {
			want = got
		}
		if diff := cmp.Diff(want, got); diff != "" || len(divs) > 0 {
			t.Errorf("%s: actions (-eval +%s):\n%s\ndivergences %v", kind, kind, diff, divs)
		}
		if st := c.Stats(); kind != Eval && st.Runs != 1 {
			t.Errorf("%s: %d module runs, want 1 (the router that does not read its input)", kind, st.Runs)
		}
		_ = c.Close(ctx)
	}
	if len(want) != 2 || !strings.Contains(want[0], `"msg_1"`) {
		t.Errorf("actions %q: want the webhook as the first's payload, and the second's", want)
	}
}
