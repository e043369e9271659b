package backend

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/wasmtest"
	"github.com/loglineos/loglineos/internal/runtime"
)

// gateHostPrograms are the gate's programs with host calls and routers
// beside the golden ones: the key-value and hook routers of loglinerun's
// examples, a router over every action with map and list literals and
// the input omitted, and a validator with every host call of
// expressions.
var gateHostPrograms = map[string]string{
	"kv_firsts": firstsRouter,
	"hooks": `router tills {
  uses "http.request"
  uses "env.get"
  route when did == "sale.post" to http.request(env.get("hook"))
}
router signed {
  uses "ws.send"
  route when did == "signed" or crypto.verify(data.key, data.msg, data.sig) to ws.send("signed")
}
`,
	"actions": `policy p {
  d: 5m
}
router r {
  uses "ws.send", "kv.set", "kv.get", "ledger.append", "http.request", "env.get"
  route when did == "sale.post" and data.gross >= 10 to ws.send("big-sales")
  route when did matches "*.*" to ws.send("dotted", {id: id, who: who, n: len(who) * 2, ok: has(this), l: [1, "a", false], d: policy.p.d * 2})
  route to kv.set(who, did)
  route when kv.get(who) == did and features.diamond to ledger.append({who: upper(who), did: "seen", this: this})
  route when env.get("hook") != "" to http.request(env.get("hook") + "/" + lower(did), {after: kv.get(who), l: [kv.get("n"), 1], g: data.gross})
}
`,
	"host_validator": `validator v {
  uses "env.get", "kv.get"
  check env.get("region") == "eu" or who == "dan" else "region"
  check len(kv.get(this)) < 12 else "short"
  check crypto.verify(who, did, env.get("hook") + "x") == false else "sig"
}
`,
}

// TestShadowGateRouters is the gate for host calls and routers: every
// router of spans of the golden programs and of gateHostPrograms, and the
// validators with host calls, run in shadow mode over the whole span
// corpus with the host loglinerun uses (runtime.StaticHost: env.get,
// kv.get reading the run's kv.set, crypto.verify), at the default step
// budget and at random smaller ones; the backends never diverge (actions,
// errors, steps, host calls), and the module answers most evaluations.
// Every module passes wasm-validate and wazero's CompileModule.
func TestShadowGateRouters(t *testing.T) {
	ctx := context.Background()
	spans := gateCorpus(t)
	type prog struct {
		name string
		srcs []lll.Source
	}
	var progs []prog
	for _, c := range goldenCases(t) {
		progs = append(progs, prog{c.name, c.srcs})
	}
	for _, name := range []string{"actions", "hooks", "host_validator", "kv_firsts"} {
		progs = append(progs, prog{name, []lll.Source{{Name: name + ".lll", Text: []byte(gateHostPrograms[name])}}})
	}
	r := rand.New(rand.NewPCG(13, 2))
	var runs, fallbacks, actions, failed, programs int64
	for _, gp := range progs {
		p, errs := lll.Compile(gp.srcs)
		if len(errs) > 0 || len(codegen.Routers(p)) == 0 && !strings.HasSuffix(gp.name, "_validator") {
			continue
		}
		out, err := codegen.Compile(p)
		if err != nil {
			t.Errorf("%s: %v", gp.name, err)
			continue
		}
		wasmtest.Validate(t, gp.name, out.Wasm)
		ep, err := eval.Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		vs := spanValidators(ep)
		var divs []Divergence
		c, err := newSpans(ctx, Shadow, vs, p, out, Options{OnDivergence: func(d Divergence) { divs = append(divs, d) }}, nil)
		if err != nil {
			t.Fatalf("%s: %v", gp.name, err)
		}
		programs++
		host := &runtime.StaticHost{Caps: abi.Caps(), Env: map[string]string{"region": "eu", "hook": "https://h.example"}}
		for i, s := range spans {
			env := &eval.Env{Host: host, Timeout: -1}
			if i%2 == 1 {
				env.MaxSteps = 1 + r.Int64N(30)
			}
			if i%4 >= 2 {
				env.Features = map[string]bool{"diamond": true}
			}
			for _, v := range vs {
				if vi := c.CheckSpan(ctx, v, s, env); vi != nil {
					failed++
				}
			}
			for _, rt := range ep.Routers() {
				if !slices.Contains(rt.IR.Input, abi.InputSpan) {
					continue
				}
				acts, err := c.Route(ctx, rt, eval.Input{Span: s}, env)
				actions += int64(len(acts))
				if err != nil {
					failed++
				}
			}
		}
		st := c.Stats()
		runs, fallbacks = runs+st.Runs, fallbacks+st.Fallbacks
		_ = c.Close(ctx)
		for i, d := range divs {
			if i == 5 {
				t.Errorf("%s: ... %d divergences in all", gp.name, len(divs))
				break
			}
			t.Errorf("%s: divergence: %s", gp.name, d)
		}
		t.Logf("%s: %d evaluations, %d answered by the interpreter, %d divergences", gp.name, st.Runs, st.Fallbacks, st.Divergences)
	}
	if programs < 5 || actions == 0 || failed == 0 || fallbacks*4 > runs {
		t.Errorf("%d programs, %d evaluations (%d answered by the interpreter), %d actions, %d failures: want 5 programs, actions, failures and the module answering most",
			programs, runs, fallbacks, actions, failed)
	}
	t.Logf("%d programs, %d spans, %d evaluations in shadow, %d answered by the interpreter, %d actions, %d failures", programs, len(spans), runs, fallbacks, actions, failed)
}
