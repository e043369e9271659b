package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/span"
)

// TraceFormat names the trace format; a bundle's replay_token names the
// format its traces are replayed with.
const TraceFormat = "logline-trace/1"

// A trace records router evaluations so that they can be replayed: one
// header line, then one line per evaluation of a router over an input:
//
//	{"trace":"logline-trace/1","bundle":"sha256:…"}
//	{"seq":12,"tenant":"acme","router":"tills","input":"span","span":"{…canonical span…}",
//	 "calls":[{"name":"env.get","args":["hook"],"result":"https://…"}],
//	 "actions":[{"call":"http.request","args":["https://…","{…}"]}]}
//
// input is span (the span's canonical JSON in span), a derived event type
// or webhook (the input in event). calls are the host calls the evaluation
// made, in order, with what they returned (the only source of the outside
// world: env values, crypto results); actions what it asked for; error the
// evaluation's error. Replay re-runs each evaluation with the trace as its
// host and compares.
type TraceLine struct {
	Seq     uint64          `json:"seq"`
	Tenant  string          `json:"tenant"`
	Router  string          `json:"router"`
	Input   string          `json:"input"`
	Span    string          `json:"span,omitempty"`
	Event   json.RawMessage `json:"event,omitempty"`
	Calls   []TraceCall     `json:"calls,omitempty"`
	Actions []TraceAction   `json:"actions,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// TraceCall is one host call of an evaluation.
type TraceCall struct {
	Name   string `json:"name"`
	Args   []any  `json:"args"`
	Result any    `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
}

// TraceAction is one action an evaluation asked for.
type TraceAction struct {
	Call string `json:"call"`
	Args []any  `json:"args"`
}

type traceHeader struct {
	Trace  string `json:"trace"`
	Bundle string `json:"bundle"`
}

// tracer writes trace lines.
type tracer struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func newTracer(w io.Writer, bundleHash string) (*tracer, error) {
	t := &tracer{w: bufio.NewWriterSize(w, 64<<10)}
	return t, t.write(traceHeader{Trace: TraceFormat, Bundle: bundleHash})
}

func (t *tracer) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.w.Write(b)
	return t.w.WriteByte('\n')
}

func (t *tracer) flush() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.w.Flush()
}

// recordingHost records the calls made through it.
type recordingHost struct {
	h     eval.Host
	calls []TraceCall
}

func (r *recordingHost) Call(ctx context.Context, name string, args []ir.Value) (ir.Value, error) {
	v, err := r.h.Call(ctx, name, args)
	c := TraceCall{Name: name, Args: plain(args)}
	if err != nil {
		c.Error = err.Error()
	} else {
		c.Result = v.Interface()
	}
	r.calls = append(r.calls, c)
	return v, err
}

// Stage passes a route's action to the host it records, so that a kv.set
// is read back by the evaluation's later routes.
func (r *recordingHost) Stage(ctx context.Context, a *eval.Action) error {
	if st, ok := r.h.(eval.Stager); ok {
		return st.Stage(ctx, a)
	}
	return nil
}

func plain(vs []ir.Value) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v.Interface()
	}
	return out
}

func traceActions(acts []eval.Action) []TraceAction {
	var out []TraceAction
	for _, a := range acts {
		out = append(out, TraceAction{Call: a.Call, Args: plain(a.Args)})
	}
	return out
}

// Divergence is where a replay first differs from its trace.
type Divergence struct {
	Line     int    // the trace line, from 1
	Seq      uint64 // the record
	Router   string
	What     string // "call 2", "actions", "error", "input"
	Recorded string
	Got      string
}

func (d *Divergence) Error() string {
	return fmt.Sprintf("trace line %d, seq %d, router %s: %s differs: recorded %s, replay gives %s", d.Line, d.Seq, d.Router, d.What, d.Recorded, d.Got)
}

// ErrBadTrace is returned for a trace that cannot be read.
var ErrBadTrace = errors.New("runtime: bad trace")

// Replay re-runs every evaluation of the trace read from r with routers,
// the trace as the host, and returns how many it replayed and the first
// divergence (nil when every evaluation gives the recorded calls, actions
// and errors, byte for byte).
//
// An evaluation recorded as ended by its wall-clock deadline (LLL106) or
// its context (LLL101), as one may under load, depends on the clock: it is
// compared as far as it went (its host calls, in order) and counted in
// Replayed.Cut, not as a divergence.
func Replay(routers []*eval.Router, r io.Reader) (Replayed, *Divergence, error) {
	var res Replayed
	n, div, err := replay(routers, r, &res)
	res.Evaluations = n
	return res, div, err
}

// Replayed counts what Replay compared.
type Replayed struct {
	Evaluations int // identical, Cut included
	Cut         int // recorded as ended by a deadline: compared up to it
}

// clockBound reports whether a recorded evaluation error came from the
// clock (its deadline or its context), not from what it evaluated.
func clockBound(err string) bool {
	return strings.Contains(err, "error["+string(diag.Deadline)+"]") || strings.Contains(err, "error["+string(diag.Canceled)+"]")
}

func replay(routers []*eval.Router, r io.Reader, res *Replayed) (int, *Divergence, error) {
	byName := map[string]*eval.Router{}
	for _, rt := range routers {
		byName[rt.IR.Name] = rt
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	n, lineNo := 0, 0
	torn := 0 // a line that did not decode: only a crash's torn last line may
	for sc.Scan() {
		lineNo++
		if torn > 0 && !bytes.HasPrefix(sc.Bytes(), []byte(`{"trace":`)) {
			return n, nil, fmt.Errorf("%w: line %d does not decode", ErrBadTrace, torn)
		}
		torn = 0
		if bytes.HasPrefix(sc.Bytes(), []byte(`{"trace":`)) {
			// A header: the first line, and again after each start of
			// the server that appends to the trace.
			var h traceHeader
			if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Trace != TraceFormat {
				return n, nil, fmt.Errorf("%w: line %d: a header of another format (this runtime replays %s)", ErrBadTrace, lineNo, TraceFormat)
			}
			continue
		}
		if lineNo == 1 {
			return 0, nil, fmt.Errorf("%w: the first line is not a %s header", ErrBadTrace, TraceFormat)
		}
		var tl TraceLine
		if err := json.Unmarshal(sc.Bytes(), &tl); err != nil {
			// Torn by a crash if the next line is a header (the next
			// start), or there is none; else the trace is damaged.
			torn = lineNo
			continue
		}
		div := replayOne(byName, &tl)
		if div == nil && clockBound(tl.Error) {
			res.Cut++
		}
		if div != nil {
			div.Line, div.Seq, div.Router = lineNo, tl.Seq, tl.Router
			return n, div, nil
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return n, nil, fmt.Errorf("%w: %v", ErrBadTrace, err)
	}
	return n, nil, nil
}

func replayOne(byName map[string]*eval.Router, tl *TraceLine) *Divergence {
	rt, ok := byName[tl.Router]
	if !ok {
		return &Divergence{What: "router", Recorded: tl.Router, Got: "no such router in the bundle"}
	}
	var in eval.Input
	switch tl.Input {
	case abi.InputSpan:
		s, err := span.Parse([]byte(tl.Span), span.Limits{})
		if err != nil {
			return &Divergence{What: "input", Recorded: tl.Span, Got: err.Error()}
		}
		in.Span = s
	default:
		v, err := eventValue(tl.Event)
		if err != nil {
			return &Divergence{What: "input", Recorded: string(tl.Event), Got: err.Error()}
		}
		if tl.Input == InputWebhook {
			v = withTimestamp(v, "received_at")
		}
		in.Event = v
	}
	host := &replayHost{calls: tl.Calls, cut: clockBound(tl.Error)}
	acts, err := rt.Route(context.Background(), in, &eval.Env{Host: host, Timeout: -1})
	if host.div != nil {
		return host.div
	}
	if host.cut {
		// Cut short by the clock when recorded: its calls matched as far
		// as it went; what it did not reach cannot be compared.
		if host.next < len(tl.Calls) {
			return &Divergence{What: fmt.Sprintf("call %d", host.next+1), Recorded: show(tl.Calls[host.next]), Got: "no call"}
		}
		return nil
	}
	if host.next < len(tl.Calls) {
		return &Divergence{What: fmt.Sprintf("call %d", host.next+1), Recorded: show(tl.Calls[host.next]), Got: "no call"}
	}
	gotErr := ""
	if err != nil {
		gotErr = err.Error()
	}
	if gotErr != tl.Error {
		return &Divergence{What: "error", Recorded: tl.Error, Got: gotErr}
	}
	if want, got := show(tl.Actions), show(traceActions(acts)); want != got {
		return &Divergence{What: "actions", Recorded: want, Got: got}
	}
	return nil
}

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// replayHost answers host calls from a trace, in order, and notes the
// first call that is not the recorded one.
type replayHost struct {
	calls []TraceCall
	next  int
	div   *Divergence
	// cut: the recorded evaluation ended at its deadline, so a call past
	// the recorded ones is where it stopped, not a divergence.
	cut bool
}

// errCut ends the replay of an evaluation past where its recording stopped.
var errCut = errors.New("replay: the recorded evaluation stopped here (its deadline)")

func (h *replayHost) Call(_ context.Context, name string, args []ir.Value) (ir.Value, error) {
	i := h.next
	h.next++
	got := TraceCall{Name: name, Args: plain(args)}
	if i >= len(h.calls) && h.cut {
		return ir.Value{}, errCut
	}
	if i >= len(h.calls) {
		h.fail(fmt.Sprintf("call %d", i+1), "no call", show(got))
		return ir.Value{}, errors.New("replay: the trace has no more calls")
	}
	rec := h.calls[i]
	if rec.Name != name || show(rec.Args) != show(got.Args) {
		h.fail(fmt.Sprintf("call %d", i+1), show(TraceCall{Name: rec.Name, Args: rec.Args}), show(got))
		return ir.Value{}, errors.New("replay: diverged")
	}
	if rec.Error != "" {
		return ir.Value{}, errors.New(rec.Error)
	}
	v, err := decodeValue([]byte(show(rec.Result)))
	if err != nil {
		h.fail(fmt.Sprintf("call %d result", i+1), show(rec.Result), err.Error())
		return ir.Value{}, err
	}
	return v, nil
}

func (h *replayHost) fail(what, recorded, got string) {
	if h.div == nil {
		h.div = &Divergence{What: what, Recorded: recorded, Got: got}
	}
}
