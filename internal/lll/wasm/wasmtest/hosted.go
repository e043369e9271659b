package wasmtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
)

// HostedProgram writes a program with host calls: the policy p of
// Program, a span validator h whose checks make host calls of
// expressions (env.get, kv.get read as a string, a number and a bool,
// crypto.verify) among Gen's conditions, and a router r of one to four
// routes over spans, their guards such conditions, their actions each of
// ledger.append, kv.set, ws.send and http.request, with arguments of
// string, number and bool expressions, map and list literals of them,
// the input sometimes omitted. It declares the capabilities it uses.
func (g Gen) HostedProgram() string {
	caps := map[string]bool{}
	var b strings.Builder
	b.WriteString("policy p {\n  n: 3\n  s: \"dan\"\n  b: true\n  d: 90m\n  l: [\"dan\", \"x\"]\n  m: { k: 2, t: \"x\" }\n}\n")
	var checks []string
	for range 1 + g.R.IntN(3) {
		checks = append(checks, g.hostBool(2, caps))
	}
	b.WriteString("validator h {\n")
	writeUses(&b, caps)
	for i, c := range checks {
		fmt.Fprintf(&b, "  check %s else \"rule %d\"\n", c, i)
	}
	b.WriteString("  on_fail \"warn\"\n}\n")
	clear(caps)
	var routes []string
	for range 1 + g.R.IntN(4) {
		route := "  route "
		if g.R.IntN(3) != 0 {
			route += "when " + g.hostBool(2, caps) + " "
		}
		routes = append(routes, route+"to "+g.action(caps)+"\n")
	}
	b.WriteString("router r {\n")
	writeUses(&b, caps)
	for _, r := range routes {
		b.WriteString(r)
	}
	b.WriteString("}\n")
	return b.String()
}

func writeUses(b *strings.Builder, caps map[string]bool) {
	names := make([]string, 0, len(caps))
	for c := range caps {
		names = append(names, c)
	}
	slices.Sort(names)
	for _, c := range names {
		fmt.Fprintf(b, "  uses %q\n", c)
	}
}

// hostBool is a condition: a host call's, or one of Gen's.
func (g Gen) hostBool(depth int, caps map[string]bool) string {
	key := func() string { return g.pick(append([]string{`"k"`, `"n"`, `"b"`, `"odd"`}, genStrFields()...)) }
	switch g.R.IntN(7) {
	case 0:
		caps["env.get"] = true
		return "env.get(" + g.pick([]string{`"region"`, `"none"`, "who"}) + ") == " + g.str()
	case 1:
		caps["kv.get"] = true
		return "len(kv.get(" + key() + ")) < " + fmt.Sprint(g.R.IntN(6))
	case 2:
		caps["kv.get"] = true
		return "kv.get(" + key() + ") > " + g.pick(genNumbers())
	case 3:
		caps["kv.get"] = true
		return "kv.get(" + key() + ")"
	case 4:
		return "crypto.verify(" + g.strExpr(1) + ", " + g.pick([]string{`"ok"`, "did", "who"}) + ", " + g.str() + ")"
	case 5:
		return "not (" + g.hostBool(depth-1, caps) + ")"
	}
	return g.boolean(depth)
}

// leafStr is a string whose kind the checker knows: a field, a constant,
// the policy's, lower, upper or a concatenation of those.
func (g Gen) leafStr(depth int) string {
	s := g.pick(append(append([]string{"policy.p.s"}, genStrings()...), genStrFields()...))
	if depth <= 0 || g.R.IntN(3) != 0 {
		return s
	}
	switch g.R.IntN(3) {
	case 0:
		return "lower(" + g.leafStr(depth-1) + ")"
	case 1:
		return "upper(" + g.leafStr(depth-1) + ")"
	}
	return "(" + g.leafStr(depth-1) + " + " + g.leafStr(depth-1) + ")"
}

// payload is an action's payload: a leaf (kv.get's value and values below
// data among them), or a map or list literal.
func (g Gen) payload(depth int, caps map[string]bool) string {
	switch n := g.R.IntN(7); {
	case n == 0:
		return g.num(1)
	case n == 4:
		return g.pick([]string{"data.gross", "data.note", "data.m", "data.m.k"})
	case n == 5:
		caps["kv.get"] = true
		return "kv.get(" + g.pick([]string{`"k"`, `"odd"`, "this", "who"}) + ")"
	case n == 1:
		return "(" + g.boolean(1) + ")"
	case n == 2 && depth > 0:
		elems := make([]string, g.R.IntN(3))
		for i := range elems {
			elems[i] = g.payload(depth-1, caps)
		}
		return "[" + strings.Join(elems, ", ") + "]"
	case n == 3 && depth > 0:
		keys := []string{"a", "b", "c"}[:1+g.R.IntN(3)]
		elems := make([]string, len(keys))
		for i, k := range keys {
			elems[i] = k + ": " + g.payload(depth-1, caps)
		}
		return "{" + strings.Join(elems, ", ") + "}"
	}
	return g.leafStr(1)
}

// action is a route's action, its capability added to caps.
func (g Gen) action(caps map[string]bool) string {
	call := g.pick([]string{"ws.send", "http.request", "kv.set", "ledger.append"})
	caps[call] = true
	switch call {
	case "kv.set":
		return "kv.set(" + g.leafStr(1) + ", " + g.payload(0, caps) + ")"
	case "ledger.append":
		return "ledger.append({who: " + g.leafStr(1) + ", n: " + g.payload(2, caps) + "})"
	}
	if g.R.IntN(2) == 0 {
		return call + "(" + g.leafStr(1) + ")" // the input as the payload
	}
	return call + "(" + g.leafStr(1) + ", " + g.payload(2, caps) + ")"
}

// Host is a host of generated runs: env.get reads Env, kv.get reads KV
// (a Stager: a route's kv.set writes it for the routes after it),
// crypto.verify holds when the message is "ok"; the call named Fail (or
// the staging of a kv.set, for "kv.set") fails.
type Host struct {
	Env  map[string]string
	KV   map[string]ir.Value
	Fail string
}

// errFail is the failure of Host.Fail.
var errFail = errors.New("the host is down")

// Call performs a host call of expressions.
func (h *Host) Call(_ context.Context, name string, args []ir.Value) (ir.Value, error) {
	if name == h.Fail {
		return ir.Value{}, errFail
	}
	switch name {
	case "env.get":
		if v, ok := h.Env[args[0].Str()]; ok && args[0].Kind() == ir.String {
			return ir.StringValue(v), nil
		}
	case "kv.get":
		if v, ok := h.KV[args[0].Str()]; ok && args[0].Kind() == ir.String {
			return v, nil
		}
	case "crypto.verify":
		return ir.BoolValue(args[1].Kind() == ir.String && args[1].Str() == "ok"), nil
	}
	return ir.NullValue(), nil
}

// Stage writes a kv.set to KV.
func (h *Host) Stage(_ context.Context, a *eval.Action) error {
	if a.Call != "kv.set" {
		return nil
	}
	if h.Fail == "kv.set" {
		return errFail
	}
	if a.Args[0].Kind() == ir.String {
		h.KV[a.Args[0].Str()] = a.Args[1]
	}
	return nil
}

// Host draws the host of a generated world: env.get's values, kv.get's
// (strings, numbers, bools, null, a list the module does not read), and
// now and then a call that fails.
func (g Gen) Host() *Host {
	h := &Host{Env: map[string]string{}, KV: map[string]ir.Value{}}
	if g.R.IntN(2) == 0 {
		h.Env["region"] = g.pick([]string{"dan", "eu", ""})
	}
	vals := []ir.Value{ir.StringValue("dan"), ir.StringValue(""), ir.StringValue("sale.post"), ir.IntValue(3),
		ir.NumberMicros(9223372036853999999), ir.BoolValue(true), ir.BoolValue(false), ir.NullValue(),
		ir.ListValue([]ir.Value{ir.IntValue(1)})}
	for _, k := range append([]string{"k", "n", "b", "odd"}, "dan", "sale.post", "x", "order:12345") {
		if g.R.IntN(3) != 0 {
			h.KV[k] = vals[g.R.IntN(len(vals))]
		}
	}
	if g.R.IntN(8) == 0 {
		h.Fail = g.pick([]string{"env.get", "kv.get", "crypto.verify", "kv.set"})
	}
	return h
}
