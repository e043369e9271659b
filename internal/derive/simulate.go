package derive

import (
	"iter"
	"math"
	"time"

	"github.com/loglineos/loglineos/internal/span"
)

// SpanInputs numbers spans as an empty ledger would if they were ingested
// in this order: seq 0, 1, ..., a span whose (tenant, id) came before being
// a duplicate that is skipped, as ingest would answer it. Deriving them
// (without clock ticks) gives what a server derives after ingesting the
// same spans into an empty ledger.
func SpanInputs(spans iter.Seq[*span.Span]) iter.Seq[Input] {
	type key struct{ tenant, id string }
	return func(yield func(Input) bool) {
		seen := map[key]bool{}
		var seq uint64
		for s := range spans {
			k := key{s.Tenant, s.ID}
			if seen[k] {
				continue
			}
			seen[k] = true
			if !yield(Input{Seq: seq, Kind: KindSpan, Span: s}) {
				return
			}
			seq++
		}
	}
}

// SimConfig configures one Simulate run.
type SimConfig struct {
	// CloseAtEnd appends one Tick input after the last input (seq one past
	// the last), late enough that every open trajectory closes by timeout:
	// the latest tenant clock plus that tenant's window, plus 1ns. It is an
	// ordinary tick through the same Step, so the result is what a server
	// would derive if its clock ticked that far. Without it, trajectories
	// still open at the end of the input stay open (and unscored), exactly
	// as after ingesting the same records into an empty ledger.
	CloseAtEnd bool
	// KeepEvents keeps every derived event in Summary.Events.
	KeepEvents bool
	// OnEvent, if set, is called with every derived event in order; an
	// error stops the simulation and is returned.
	OnEvent func(*Event) error
	// Progress, if set, is called with the number of inputs consumed so
	// far every SimProgressEvery inputs and after the last one.
	Progress func(inputs uint64)
}

// SimProgressEvery is how many inputs Simulate consumes between calls of
// SimConfig.Progress.
const SimProgressEvery = 4096

// Summary is the outcome of a simulation (a dry run of the cycle).
type Summary struct {
	Inputs  uint64 // records consumed
	Spans   uint64
	Ticks   uint64 // including the CloseAtEnd tick
	Configs uint64

	Trajectories uint64 // opened
	Open         uint64 // still open at the end
	Timeout      uint64 // closed with reason timeout
	Rule         uint64 // closed with reason rule
	Evicted      uint64 // closed with reason evicted
	Excepted     uint64 // spans never linked because of an exception

	Scored        uint64
	Histogram     [NumScores]uint64 // all scores, by score
	P50, P95, P99 int               // nearest rank over Histogram; 0 if none

	Candidates uint64
	// CandidatePPM is floor(1e6 * Candidates / Scored), in parts per
	// million (integer, like everything the cycle computes).
	CandidatePPM uint64
	// Threshold is the meter threshold of the last score decided (over all
	// tenants, in ledger order); -1 if none.
	Threshold int

	Shed       uint64 // events shed by guardrails
	EventCount uint64 // events derived (shed ones excluded)
	Events     []Event
}

// Simulate runs the whole cycle over inputs with a fresh Engine configured by
// cfg, writes nothing anywhere, and summarizes. It uses Step, so its events
// are byte for byte those a server derives from the same records. A slice
// is passed as slices.Values(inputs).
func Simulate(inputs iter.Seq[Input], cfg Config, sim SimConfig) (Summary, error) {
	e, err := New(cfg)
	if err != nil {
		return Summary{}, err
	}
	var sum Summary
	var buf []Event
	emit := func(evs []Event) error {
		sum.EventCount += uint64(len(evs))
		if sim.KeepEvents {
			sum.Events = append(sum.Events, evs...)
		}
		if sim.OnEvent != nil {
			for i := range evs {
				if err := sim.OnEvent(&evs[i]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for in := range inputs {
		buf, err = e.Step(buf[:0], in)
		if err != nil {
			return sum, err
		}
		sum.Inputs++
		switch in.Kind {
		case KindSpan:
			sum.Spans++
		case KindTick:
			sum.Ticks++
		case KindConfig:
			sum.Configs++
		}
		if err := emit(buf); err != nil {
			return sum, err
		}
		if sim.Progress != nil && sum.Inputs%SimProgressEvery == 0 {
			sim.Progress(sum.Inputs)
		}
	}
	if sim.Progress != nil && sum.Inputs%SimProgressEvery != 0 {
		sim.Progress(sum.Inputs)
	}
	if sim.CloseAtEnd && len(e.tenants) > 0 {
		tick := int64(math.MinInt64)
		for _, t := range e.tenants {
			if t.clock != noClock {
				tick = max(tick, addSat(addSat(t.clock, t.cfg.window), 1))
			}
		}
		if tick != math.MinInt64 {
			seq, _ := e.LastSeq()
			buf, err = e.Step(buf[:0], Input{Seq: seq + 1, Kind: KindTick, Tick: time.Unix(0, tick)})
			if err != nil {
				return sum, err
			}
			sum.Inputs++
			sum.Ticks++
			if err := emit(buf); err != nil {
				return sum, err
			}
		}
	}
	sum.Threshold = -1
	var lastSeq uint64
	for _, t := range e.tenants {
		st := &t.stats
		sum.Trajectories += st.Opened
		sum.Open += st.Open
		sum.Timeout += st.Timeout
		sum.Rule += st.Rule
		sum.Evicted += st.Evicted
		sum.Excepted += st.Excepted
		sum.Scored += st.Scored
		sum.Candidates += st.Candidates
		for i, c := range st.Histogram {
			sum.Histogram[i] += c
		}
		for _, c := range st.Shed {
			sum.Shed += c
		}
		if st.LastThreshold >= 0 && (sum.Threshold < 0 || st.LastThresholdSeq > lastSeq) {
			sum.Threshold, lastSeq = st.LastThreshold, st.LastThresholdSeq
		}
	}
	if sum.Scored > 0 {
		sum.P50 = histPercentile(&sum.Histogram, sum.Scored, 50)
		sum.P95 = histPercentile(&sum.Histogram, sum.Scored, 95)
		sum.P99 = histPercentile(&sum.Histogram, sum.Scored, 99)
		sum.CandidatePPM = sum.Candidates * 1_000_000 / sum.Scored
	}
	return sum, nil
}
