package lllc

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
)

// meter is a small reference implementation of the meter kernels
// (percentile, window_count, threshold) for loglinerun: an exact window of
// the scores whose ts lies within the policy's window before the current
// event, in input order. It implements the plain definitions of
// docs/lll.md; the derivation's meter (internal/derive), which also keeps
// the candidate rate in bounds, is authoritative in logline serve.
type meter struct {
	scores []scored // oldest first
	window time.Duration
}

type scored struct {
	ts    int64 // Unix ns
	score int64 // micros
}

// NewMeter returns reference meter kernels for b (see meter).
func NewMeter(b *bundle.Bundle) eval.Kernels {
	m := &meter{window: 168 * time.Hour}
	if p, ok := b.Policy("quality_meter"); ok {
		if d, ok := p.Duration("window"); ok && d > 0 {
			m.window = d
		}
	}
	return m
}

// slide drops the scores older than the window before ts.
func (m *meter) slide(ts int64) {
	i := 0
	for i < len(m.scores) && m.scores[i].ts <= ts-int64(m.window) {
		i++
	}
	m.scores = m.scores[i:]
}

func (m *meter) observe(ts, score int64) { m.scores = append(m.scores, scored{ts, score}) }

func tsOf(in eval.Input) int64 {
	if v, ok := in.Event.Get("ts"); ok {
		if v.Kind() == ir.Timestamp {
			return v.Micros()
		}
		if v.Kind() == ir.String {
			if t, err := time.Parse(time.RFC3339Nano, v.Str()); err == nil {
				return t.UnixNano()
			}
		}
	}
	return 0
}

// Kernel implements eval.Kernels.
func (m *meter) Kernel(_ context.Context, name string, in eval.Input, args []ir.Value) (ir.Value, error) {
	switch name {
	case "window_count", "percentile", "threshold":
		m.slide(tsOf(in))
	}
	n := int64(len(m.scores))
	switch name {
	case "window_count":
		return ir.IntValue(n), nil
	case "percentile":
		if n == 0 {
			return ir.IntValue(0), nil
		}
		x, le := args[0].Micros(), int64(0)
		for _, s := range m.scores {
			if s.score <= x {
				le++
			}
		}
		return ir.NumberMicros(le * 100 * ir.NumberScale / n), nil
	case "threshold":
		if n == 0 {
			return ir.MapValue(map[string]ir.Value{"threshold": ir.IntValue(0)}), nil
		}
		sorted := make([]int64, n)
		for i, s := range m.scores {
			sorted[i] = s.score
		}
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		// nearest rank: ceil(p/100 * n), 1-based
		p := args[0].Micros()
		rank := (p*n + 100*ir.NumberScale - 1) / (100 * ir.NumberScale)
		rank = max(rank, 1)
		return ir.MapValue(map[string]ir.Value{"threshold": ir.NumberMicros(sorted[rank-1])}), nil
	}
	return ir.Value{}, fmt.Errorf("kernel %s runs in the derivation (logline serve, logline quality simulate), not in loglinerun", name)
}
