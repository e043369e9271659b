package lllc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/cycle"
	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/backend"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/runtime"
	"github.com/loglineos/loglineos/internal/span"
	"github.com/loglineos/loglineos/internal/tenant"
)

const loglinerunUsage = `usage: loglinerun [--backend eval|wasm|shadow] --bundle X.lllb --trust KEY.pub [--allow-cap CAP]... [--env NAME=VALUE]... [--replay TOKEN|TRACE] --in spans.ndjson [--derived FILE]

Verifies a bundle (hash, signature, trusted key, ABI, capabilities) and runs
it over NDJSON input ("-" for standard input): each span line goes through
the span validators and routers, each derived-event line (an object whose
"type" is a derived event) through the validators of its type, each
webhook line ({"type":"webhook","source":S,"id":ID,"received_at":RFC3339,
"tenant":T,"payload":JSON}) through the webhook routers. One JSON result
per input line is written to standard output.

The accepted spans then go through the derivation, the same as logline
serve's, under the bundle's pipeline, validators and policies; --derived
receives its events as NDJSON: what a server running the bundle derives
after ingesting the same lines into an empty ledger (no clock ticks).
Kernels (percentile, window_count, ...) run only there: a derived-event
line whose validator calls one reports an error.

--backend wasm runs the span validators, the routers and the derivation's
event validators (--derived) on the WebAssembly module the bundle carries
(loglinec --backend wasm); --backend shadow runs them on both the
interpreter and the module and compares every outcome (violation,
actions or emitted event, errors, steps counted, host and kernel calls
made): each divergence is written to standard error as a line
"loglinerun: divergence: {json}" with the input's id and both outcomes.
The results written are the interpreter's. Derived-event lines and the
routers of webhooks that read their input run on the interpreter under
every backend.
Exit status: 0 ok, 1 when the bundle or the input cannot be used, 2 on usage
errors, 3 when --backend shadow saw a divergence (or the module failed).

Flags:
`

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

// RunMain runs loglinerun with args (without the program name).
func RunMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loglinerun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	backendName := fs.String("backend", "eval", "run the span validators and routers on `BACKEND`: eval (the interpreter), wasm (the bundle's module) or shadow (both, compared)")
	bundlePath := fs.String("bundle", "", "the bundle `FILE` (.lllb)")
	var trust, caps multi
	fs.Var(&trust, "trust", "trust the ed25519 public key in `FILE` (PEM); repeatable")
	fs.Var(&caps, "allow-cap", "allow the capability `CAP` (e.g. ws.send); repeatable; none by default")
	replay := fs.String("replay", "", "replay the trace `FILE` a server recorded (runtime.trace) and report the first divergence; a value that is not a file is a token: run only if the bundle's replay_token is it")
	in := fs.String("in", "", "read NDJSON from `FILE` (- for standard input)")
	features := fs.String("features", "", "turn on the feature flags in `LIST` (e.g. trajectory,diamond) for the validators of the input lines")
	derived := fs.String("derived", "", "write the derived events of the accepted spans to `FILE` (NDJSON)")
	var envs multi
	fs.Var(&envs, "env", "give env.get the value `NAME=VALUE` (the recorded environment); repeatable")
	fs.Usage = func() {
		fmt.Fprint(stderr, loglinerunUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "loglinerun: "+format+"\n", a...)
		return 2
	}
	kind, err := backend.ParseKind(*backendName)
	switch {
	case err != nil:
		return usage("--backend %s: want eval, wasm or shadow", *backendName)
	case fs.NArg() > 0:
		return usage("unexpected argument %q", fs.Arg(0))
	case *bundlePath == "":
		return usage("--bundle is required")
	case len(trust) == 0:
		return usage("--trust is required: only bundles signed by a trusted key run")
	case *in == "" && !isFile(*replay):
		return usage("--in is required (or --replay TRACE)")
	}
	host := &runtime.StaticHost{Caps: caps, Env: map[string]string{}}
	for _, kv := range envs {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return usage("--env %q: want NAME=VALUE", kv)
		}
		host.Env[name] = value
	}
	env := &eval.Env{Features: map[string]bool{}, Host: host}
	for _, f := range strings.Split(*features, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !contains(abi.Features(), f) {
			return usage("--features: unknown flag %q (flags are %s)", f, strings.Join(abi.Features(), ", "))
		}
		env.Features[f] = true
	}
	data, err := os.ReadFile(*bundlePath)
	if err != nil {
		fmt.Fprintf(stderr, "loglinerun: %v\n", err)
		return 1
	}
	b, err := bundle.Load(data, bundle.LoadOptions{TrustedFiles: trust, AllowedCaps: caps})
	if errors.Is(err, bundle.ErrCapNotAllowed) {
		err = fmt.Errorf("%w; --allow-cap grants it", err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "loglinerun: %s: %v\n", *bundlePath, err)
		return 1
	}
	if isFile(*replay) {
		return replayTrace(b, *replay, stdout, stderr)
	}
	enc := json.NewEncoder(stderr)
	opts := backend.Options{OnDivergence: func(d backend.Divergence) {
		fmt.Fprint(stderr, "loglinerun: divergence: ")
		_ = enc.Encode(d)
	}}
	spans, events, err := backend.Open(context.Background(), b, kind, opts)
	if err != nil {
		fmt.Fprintf(stderr, "loglinerun: %s: --backend %s: %v\n", *bundlePath, kind, err)
		return 1
	}
	defer spans.Close(context.Background())
	defer events.Close(context.Background())
	if *replay != "" && *replay != b.Manifest.ReplayToken {
		fmt.Fprintf(stderr, "loglinerun: --replay %q does not match the bundle's replay_token %q\n", *replay, b.Manifest.ReplayToken)
		return 1
	}
	var r io.Reader = stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			fmt.Fprintf(stderr, "loglinerun: %v\n", err)
			return 1
		}
		defer f.Close()
		r = f
	}
	var accepted []*span.Span
	counts, err := RunOn(context.Background(), spans, b, env, r, stdout, func(s *span.Span) { accepted = append(accepted, s) })
	if err == nil && *derived != "" {
		err = Derive(b, events, accepted, *derived)
	}
	if err != nil {
		fmt.Fprintf(stderr, "loglinerun: %v\n", err)
		return 1
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	fmt.Fprintf(stderr, "loglinerun: %s\n", strings.Join(parts, ", "))
	if kind != backend.Eval {
		st, es := spans.Stats(), events.Stats()
		fmt.Fprintf(stderr, "loglinerun: backend %s: %d module runs, %d answered by the interpreter, %d divergences\n", kind, st.Runs, st.Fallbacks, st.Divergences)
		if *derived != "" {
			fmt.Fprintf(stderr, "loglinerun: backend %s: event validators: %d module runs, %d answered by the interpreter, %d divergences\n", kind, es.Runs, es.Fallbacks, es.Divergences)
		}
		if st.Divergences > 0 || es.Divergences > 0 {
			return 3
		}
	}
	return 0
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if x == y {
			return true
		}
	}
	return false
}

type result struct {
	Line      int               `json:"line"`
	ID        string            `json:"id,omitempty"`
	Type      string            `json:"type,omitempty"`
	Status    string            `json:"status"`
	Violation *eval.Violation   `json:"violation,omitempty"`
	Warnings  []*eval.Violation `json:"warnings,omitempty"`
	Error     string            `json:"error,omitempty"`
	Actions   []action          `json:"actions,omitempty"`
	Emitted   []any             `json:"emitted,omitempty"`
}

type action struct {
	Router string `json:"router"`
	Call   string `json:"call"`
	Args   []any  `json:"args"`
	At     string `json:"at"`
}

// Run runs a loaded bundle over NDJSON from r, writing one JSON result per
// line to w, and returns how many lines had each status (accepted,
// rejected, checked, routed, error). accept, if not nil, receives every
// accepted span in order.
func Run(ctx context.Context, b *bundle.Bundle, env *eval.Env, r io.Reader, w io.Writer, accept func(*span.Span)) (map[string]int, error) {
	spans, err := backend.New(ctx, b, backend.Eval, backend.Options{})
	if err != nil {
		return nil, err
	}
	return RunOn(ctx, spans, b, env, r, w, accept)
}

// RunOn is Run with the span validators on the backend of spans, which
// was made from b.
func RunOn(ctx context.Context, spans *backend.Spans, b *bundle.Bundle, env *eval.Env, r io.Reader, w io.Writer, accept func(*span.Span)) (map[string]int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), span.DefaultMaxBytes+1)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	counts := map[string]int{}
	events := abi.EventNames()
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		res := result{Line: n}
		var probe struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(line, &probe) // a line that is not an object is a span line, which span.Parse refuses
		switch {
		case contains(events, probe.Type):
			runEvent(ctx, b, env, line, &res)
		case probe.Type == abi.InputWebhook:
			runWebhook(ctx, spans, b, env, line, &res)
		default:
			if s := runSpan(ctx, spans, b, env, line, &res); s != nil && accept != nil {
				accept(s)
			}
		}
		counts[res.Status]++
		if err := enc.Encode(res); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	return counts, nil
}

// runSpan checks one span line and returns the span when it is accepted.
func runSpan(ctx context.Context, spans *backend.Spans, b *bundle.Bundle, env *eval.Env, line []byte, res *result) *span.Span {
	s, err := span.Parse(line, span.Limits{})
	if err != nil {
		res.Status, res.Error = "rejected", err.Error()
		return nil
	}
	res.ID = s.ID
	for _, v := range spans.Validators() {
		if vi := spans.CheckSpan(ctx, v, s, env); vi != nil {
			if vi.Action == "warn" {
				res.Warnings = append(res.Warnings, vi)
				continue
			}
			res.Status, res.Violation = "rejected", vi
			return nil
		}
	}
	res.Status = "accepted"
	runRouters(ctx, spans, b, env, abi.InputSpan, eval.Input{Span: s}, res)
	return s
}

// runRouters runs the routers of the input type typ on the backend of
// spans; a router that fails gives the result's error, and the others
// still run.
func runRouters(ctx context.Context, spans *backend.Spans, b *bundle.Bundle, env *eval.Env, typ string, in eval.Input, res *result) {
	for _, rt := range b.Routers() {
		if !contains(rt.IR.Input, typ) {
			continue
		}
		acts, err := spans.Route(ctx, rt, in, env)
		if err != nil {
			res.Error = fmt.Sprintf("%s: %v", rt.IR.Name, err)
			continue
		}
		for _, a := range acts {
			res.Actions = append(res.Actions, toAction(a))
		}
	}
}

// Derive runs the derivation of b (its pipeline, validators and policies,
// as logline serve does) over spans numbered as an empty ledger would
// number them (cycle.DryRun), its event validators on the backend of
// events (made from b; nil: the interpreter), and writes the derived
// events to the file out as NDJSON.
func Derive(b *bundle.Bundle, events *backend.Events, spans []*span.Span, out string) error {
	def, err := tenant.ParseConfig(tenant.BasePolicies(b))
	if err != nil {
		return fmt.Errorf("the bundle's policies: %w", err)
	}
	ef, err := cycle.CreateEventFile(out)
	if err != nil {
		return err
	}
	rules := derive.CompileRules(b.Program())
	if events != nil && events.Kind() != backend.Eval {
		rules.CheckEvent = events.CheckEvent
	}
	_, err = cycle.DryRun(spans, def, rules, derive.SimConfig{OnEvent: ef.Write})
	if cerr := ef.Close(); err == nil {
		err = cerr
	}
	return err
}

// runWebhook runs the webhook routers over a webhook line.
func runWebhook(ctx context.Context, spans *backend.Spans, b *bundle.Bundle, env *eval.Env, line []byte, res *result) {
	var w struct {
		Type       string          `json:"type"`
		Source     string          `json:"source"`
		ID         string          `json:"id"`
		ReceivedAt string          `json:"received_at"`
		Tenant     string          `json:"tenant"`
		Payload    json.RawMessage `json:"payload"`
	}
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	res.Type = abi.InputWebhook
	if err := d.Decode(&w); err != nil {
		res.Status, res.Error = "rejected", "webhook: "+err.Error()
		return
	}
	res.ID = w.ID
	at, ok := abi.ValidRFC3339(w.ReceivedAt)
	switch {
	case w.Source == "":
		res.Status, res.Error = "rejected", "webhook: source is required"
		return
	case w.ID == "":
		res.Status, res.Error = "rejected", "webhook: id is required"
		return
	case !ok:
		res.Status, res.Error = "rejected", fmt.Sprintf("webhook: received_at is not RFC 3339: %q", w.ReceivedAt)
		return
	}
	in, err := eval.Webhook{Source: w.Source, ID: w.ID, ReceivedAt: at, Tenant: w.Tenant, Payload: w.Payload}.Input()
	if err != nil {
		res.Status, res.Error = "rejected", "webhook: "+err.Error()
		return
	}
	res.Status = "routed"
	runRouters(ctx, spans, b, env, abi.InputWebhook, in, res)
}

func toAction(a eval.Action) action {
	out := action{Router: a.Router, Call: a.Call, At: a.Pos, Args: []any{}}
	for _, x := range a.Args {
		out.Args = append(out.Args, x.Interface())
	}
	return out
}

func runEvent(ctx context.Context, b *bundle.Bundle, env *eval.Env, line []byte, res *result) {
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		res.Status, res.Error = "rejected", err.Error()
		return
	}
	ev, err := ir.FromJSON(x)
	if err != nil {
		res.Status, res.Error = "rejected", err.Error()
		return
	}
	typ, _ := ev.Get("type")
	res.Type = typ.Str()
	res.Status = "checked"
	for _, v := range b.EventValidators(typ.Str()) {
		r, err := v.CheckEvent(ctx, ev, env)
		if err != nil {
			res.Status, res.Error = "error", fmt.Sprintf("%s: %v", v.Name(), err)
			return
		}
		if r.Violation != nil {
			res.Status, res.Violation = "rejected", r.Violation
			return
		}
		if r.Emitted != nil {
			res.Emitted = append(res.Emitted, r.Emitted.Interface())
		}
	}
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return path != "" && err == nil && fi.Mode().IsRegular()
}

// replayTrace re-runs the routers of the evaluations a trace recorded, with
// the trace as their host, and says whether every one gives the recorded
// calls and actions (exit 0) or where the first differs (exit 1).
func replayTrace(b *bundle.Bundle, path string, stdout, stderr io.Writer) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "loglinerun: %v\n", err)
		return 1
	}
	defer f.Close()
	res, div, err := runtime.Replay(b.Routers(), f)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "loglinerun: %s: %v\n", path, err)
		return 1
	case div != nil:
		fmt.Fprintf(stdout, "divergence after %d identical evaluations: %v\n", res.Evaluations, div)
		return 1
	}
	fmt.Fprintf(stdout, "replayed %d evaluations: identical\n", res.Evaluations)
	if res.Cut > 0 {
		fmt.Fprintf(stdout, "note: %d of them ended at their deadline when recorded (a loaded machine): compared as far as they went\n", res.Cut)
	}
	return 0
}
