package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/span"
)

// Outcomes of an action, the outcome label of runtime_actions_total.
const (
	OutcomeQueued    = "queued"      // in the outbox
	OutcomeSent      = "sent"        // ws.send published
	OutcomeStored    = "stored"      // kv.set performed
	OutcomeDenied    = "denied"      // a capability the tenant does not allow
	OutcomeNoRoute   = "not_allowed" // http.request to a URL the tenant does not list
	OutcomeDepth     = "depth"       // ledger.append past MaxDepth
	OutcomeBadAction = "invalid"     // arguments the call cannot take
	OutcomeError     = "error"       // the router's evaluation failed
)

// Record routes one record and the events derived from it; the cycle calls
// it in ledger order. Records the outbox says are routed already (a
// restart re-derives from the cycle's last snapshot) are skipped, and the
// actions of the last record routed before a crash are recognised by id.
func (rt *Runtime) Record(rec ledger.Record, evs []derive.Event) error {
	if len(rt.byInput) == 0 {
		return nil
	}
	routed, seen := rt.ob.marks()
	if rec.Seq < routed || (seen > 0 && rec.Seq+1 < seen) {
		return nil
	}
	var acts []eval.Action
	var tenants []string
	// The cycle routes one record at a time: its kv transaction is reused.
	txn := &rt.txn
	txn.w = txn.w[:0]
	if rec.Kind == ledgerfmt.KindSpan {
		if rs := rt.byInput[abi.InputSpan]; len(rs) > 0 {
			s, err := span.Parse(rec.Body, span.Limits{})
			if err == nil {
				acts, tenants = rt.route(rs, eval.Input{Span: s}, abi.InputSpan, nil, rec.Seq, s.Tenant, txn, acts, tenants)
			}
		}
	}
	var line []byte
	for i := range evs {
		ev := &evs[i]
		rs := rt.byInput[ev.Type.String()]
		if len(rs) == 0 {
			continue
		}
		line = ev.AppendJSON(line[:0])
		v, err := eventValue(line)
		if err != nil {
			rt.log.Error("derived event does not decode", "seq", rec.Seq, "err", err)
			continue
		}
		n := len(acts)
		acts, tenants = rt.route(rs, eval.Input{Event: v}, ev.Type.String(), line, rec.Seq, ev.Tenant, txn, acts, tenants)
		for j := n; j < len(acts); j++ {
			if a := &acts[j]; a.Input {
				// The event itself: sent as the derivation wrote it.
				a.Args[len(a.Args)-1] = ir.StringValue(string(line))
			}
		}
	}
	for i := range acts {
		rt.perform(rec, i, &acts[i], tenants[i])
	}
	if len(acts) > 0 {
		// The record is routed whole: its actions in the outbox before
		// this mark are all of them (a crash that tears them leaves the
		// record to be routed again, its kv writes left out of the store).
		if err := rt.ob.add(&entry{T: "r", Seq: rec.Seq + 1}); err != nil {
			rt.log.Error("outbox write failed", "err", err)
		}
	}
	return nil
}

// route runs routers over one input of tenant and appends their actions.
// kind is the input type, raw the input's JSON (for the trace), seq the
// record (0 for a webhook), txn the kv writes of the record's evaluations
// so far (nil for a webhook).
func (rt *Runtime) route(rs []*eval.Router, in eval.Input, kind string, raw []byte, seq uint64, tenant string, txn *kvTxn, acts []eval.Action, tenants []string) ([]eval.Action, []string) {
	h := &Host{rt: rt, tenant: tenant, txn: txn}
	host := eval.Host(h)
	for _, r := range rs {
		h.staged = h.staged[:0]
		var rec *recordingHost
		if rt.trace != nil {
			rec = &recordingHost{h: host}
		}
		env := &eval.Env{Host: host, Timeout: rt.cfg.EvalTimeout}
		if rec != nil {
			env.Host = rec
		}
		var out []eval.Action
		var err error
		if rt.cfg.Route != nil {
			out, err = rt.cfg.Route(context.Background(), r, in, env)
		} else {
			out, err = r.Route(context.Background(), in, env)
		}
		if rec != nil {
			rt.writeTrace(r, in, kind, raw, seq, tenant, rec.calls, out, err)
		}
		if err != nil {
			rt.m.actions.WithLabelValues(rt.m.tenant(tenant), r.IR.Name, "", OutcomeError).Inc()
			rt.log.Warn("router failed", "router", r.IR.Name, "tenant", tenant, "span", spanID(in), "err", err)
			continue
		}
		if txn != nil {
			txn.w = append(txn.w, h.staged...)
		}
		for range out {
			tenants = append(tenants, tenant)
		}
		acts = append(acts, out...)
	}
	return acts, tenants
}

// writeTrace writes one evaluation to the trace.
func (rt *Runtime) writeTrace(r *eval.Router, in eval.Input, kind string, raw []byte, seq uint64, tenant string, calls []TraceCall, out []eval.Action, err error) {
	tl := TraceLine{Seq: seq, Tenant: tenant, Router: r.IR.Name, Input: kind, Calls: calls, Actions: traceActions(out)}
	if in.Span != nil {
		tl.Span = string(in.Span.Canonical())
	} else {
		tl.Event = raw
	}
	if err != nil {
		tl.Error = err.Error()
	}
	if werr := rt.trace.write(tl); werr != nil {
		rt.log.Error("trace write failed", "err", werr)
	}
}

func spanID(in eval.Input) string {
	if in.Span != nil {
		return in.Span.ID
	}
	if v, ok := in.Event.Get("trajectory_id"); ok {
		return v.Str()
	}
	return ""
}

// perform carries out the i-th action of record rec.
func (rt *Runtime) perform(rec ledger.Record, i int, a *eval.Action, tenant string) {
	outcome := rt.do(rec, i, a, tenant)
	rt.m.actions.WithLabelValues(rt.m.tenant(tenant), a.Router, a.Call, outcome).Inc()
	if outcome != OutcomeQueued && outcome != OutcomeSent && outcome != OutcomeStored {
		rt.log.Warn("router action not performed", "router", a.Router, "call", a.Call, "at", a.Pos,
			"tenant", tenant, "seq", rec.Seq, "outcome", outcome)
	}
}

func (rt *Runtime) do(rec ledger.Record, i int, a *eval.Action, tenant string) string {
	depth := 0
	if a.Call == "ledger.append" {
		depth = depthOf(rec)
	}
	return rt.doKeyed(msgID(rec.Seq, i), rec.Seq, a, tenant, depth, rec.TS)
}

// doKeyed carries out an action whose effects are identified by id (the
// webhook-id of a delivery; "rt<depth>_" and its tail for a span).
func (rt *Runtime) doKeyed(id string, seq uint64, a *eval.Action, tenant string, depth int, durable time.Time) string {
	if !rt.allowed(tenant, a.Call) {
		return OutcomeDenied
	}
	switch a.Call {
	case "kv.set":
		return rt.setKV(id, seq, a, tenant)
	case "ws.send":
		if len(a.Args) < 1 || a.Args[0].Kind() != ir.String {
			return OutcomeBadAction
		}
		body, err := payload(a)
		if err != nil {
			return OutcomeBadAction
		}
		rt.hub.publish(tenant, a.Args[0].Str(), body)
		return OutcomeSent
	case "http.request":
		if len(a.Args) < 1 || a.Args[0].Kind() != ir.String {
			return OutcomeBadAction
		}
		url := a.Args[0].Str()
		if _, ok := rt.cfg.Tenants.Runtime(tenant).Endpoint(url); !ok {
			return OutcomeNoRoute
		}
		body, err := payload(a)
		if err != nil {
			return OutcomeBadAction
		}
		return rt.enqueue(&entry{T: "q", ID: id, Seq: seq, Tenant: tenant,
			Router: a.Router, Call: a.Call, URL: url, Body: string(body)}, durable)
	case "ledger.append":
		if depth >= MaxDepth {
			return OutcomeDepth
		}
		body, err := spanBody(a, tenant, fmt.Sprintf("rt%d_%s", depth+1, strings.TrimPrefix(id, "msg_")))
		if err != nil {
			return OutcomeBadAction
		}
		return rt.enqueue(&entry{T: "q", ID: id, Seq: seq, Tenant: tenant,
			Router: a.Router, Call: a.Call, Body: string(body), Depth: depth + 1}, durable)
	}
	return OutcomeBadAction
}

// allowed reports whether call may run for tenant: the bundle's caps, the
// server's and the tenant's. crypto.verify needs none.
func (rt *Runtime) allowed(tenant, call string) bool {
	c, ok := hostCaps[call]
	if !ok {
		return false
	}
	if c == "" {
		return true
	}
	return slices.Contains(rt.cfg.BundleCaps, c) && slices.Contains(rt.cfg.ServerCaps, c) &&
		rt.cfg.Tenants.Runtime(tenant).Allows(c)
}

// hostCaps maps each host call to the capability it needs ("" for none).
var hostCaps = func() map[string]string {
	m := map[string]string{}
	for name, f := range abi.Funcs() {
		if f.Kind == "host" {
			m[name] = f.Cap
		}
	}
	return m
}()

// payload is the body an action sends: its last argument as JSON (the
// span's canonical JSON when the route passed the input itself).
func payload(a *eval.Action) ([]byte, error) {
	if len(a.Args) < 2 {
		return []byte("null"), nil
	}
	v := a.Args[len(a.Args)-1]
	if a.Input && v.Kind() == ir.String {
		return []byte(v.Str()), nil
	}
	return json.Marshal(v.Interface())
}

// spanBody is the span ledger.append appends: the payload (a map, or a
// string holding a JSON object), with the tenant and id the runtime sets.
func spanBody(a *eval.Action, tenant, id string) ([]byte, error) {
	if len(a.Args) < 1 {
		return nil, fmt.Errorf("no payload")
	}
	v := a.Args[0]
	var m map[string]any
	switch {
	case v.Kind() == ir.String:
		if err := json.Unmarshal([]byte(v.Str()), &m); err != nil {
			return nil, err
		}
	case v.Kind() == ir.Map:
		m, _ = v.Interface().(map[string]any)
	default:
		return nil, fmt.Errorf("payload is %s", v.Kind())
	}
	if m == nil {
		return nil, fmt.Errorf("payload is null")
	}
	if t, ok := m["tenant"]; ok && t != tenant {
		return nil, fmt.Errorf("tenant %v is not the router's tenant", t)
	}
	m["tenant"], m["id"] = tenant, id
	return json.Marshal(m)
}

// depthOf is how many router appends led to rec: the n of an "rt<n>_" id.
func depthOf(rec ledger.Record) int {
	if rec.Kind != ledgerfmt.KindSpan {
		return 0
	}
	var probe struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(rec.Body, &probe) != nil || !strings.HasPrefix(probe.ID, "rt") {
		return 0
	}
	n, rest, ok := strings.Cut(probe.ID[2:], "_")
	if !ok || rest == "" {
		return 0
	}
	d, err := strconv.Atoi(n)
	if err != nil || d < 0 {
		return 0
	}
	return d
}

// Sync makes the actions queued so far durable, and marks every record
// below next as routed. The cycle calls it before its cursor moves past
// them durably.
func (rt *Runtime) Sync(next uint64) error {
	if len(rt.byInput) == 0 {
		return nil
	}
	if rt.kv.pendingWrites() {
		// The writes are in the outbox before they are in the ledger, and
		// in the ledger before the mark.
		if err := rt.syncOutbox(); err != nil {
			return err
		}
		if err := rt.kv.syncKV(context.Background()); err != nil {
			return err
		}
	}
	return rt.markRouted(next)
}

// decodeValue decodes a JSON text into a value of the language.
func decodeValue(b []byte) (ir.Value, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		return ir.Value{}, err
	}
	if d.More() {
		return ir.Value{}, errors.New("more than one JSON value")
	}
	return ir.FromJSON(x)
}

// eventValue decodes a derived event, its ts a timestamp as its input type
// declares.
func eventValue(line []byte) (ir.Value, error) {
	v, err := decodeValue(line)
	if err != nil {
		return v, err
	}
	return withTimestamp(v, "ts"), nil
}

// withTimestamp returns map v with its member name, an RFC 3339 string in
// JSON, as the timestamp its input type declares.
func withTimestamp(v ir.Value, name string) ir.Value {
	ts, ok := v.Get(name)
	if v.Kind() != ir.Map || !ok || ts.Kind() != ir.String {
		return v
	}
	t, ok := abi.ValidRFC3339(ts.Str())
	if !ok {
		return v
	}
	m := map[string]ir.Value{}
	for _, k := range v.Keys() {
		m[k], _ = v.Get(k)
	}
	m[name] = ir.TimestampValue(t)
	return ir.MapValue(m)
}
