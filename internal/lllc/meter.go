package lllc

import (
	"context"
	"fmt"
	"sort"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
)

// meter is a small reference implementation of the meter kernels
// (percentile, window_count, threshold) for loglinerun: an exact sliding
// window of the latest scores, in input order. The derivation has its own.
type meter struct {
	window []int64 // scores in micros, oldest first
	size   int
}

// NewMeter returns reference meter kernels for b (see meter).
func NewMeter(b *bundle.Bundle) eval.Kernels {
	m := &meter{size: 1000}
	if p, ok := b.Policy("quality_meter"); ok {
		if n, ok := p.Number("window"); ok && n >= 1 {
			m.size = int(n)
		}
	}
	return m
}

func (m *meter) observe(score int64) {
	m.window = append(m.window, score)
	if len(m.window) > m.size {
		m.window = m.window[len(m.window)-m.size:]
	}
}

// Kernel implements eval.Kernels.
func (m *meter) Kernel(_ context.Context, name string, _ eval.Input, args []ir.Value) (ir.Value, error) {
	n := int64(len(m.window))
	switch name {
	case "window_count":
		return ir.IntValue(n), nil
	case "percentile":
		if n == 0 {
			return ir.IntValue(0), nil
		}
		x, le := args[0].Micros(), int64(0)
		for _, s := range m.window {
			if s <= x {
				le++
			}
		}
		return ir.NumberMicros(le * 100 * ir.NumberScale / n), nil
	case "threshold":
		if n == 0 {
			return ir.MapValue(map[string]ir.Value{"threshold": ir.IntValue(0)}), nil
		}
		sorted := append([]int64(nil), m.window...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		// nearest rank: ceil(p/100 * n), 1-based
		p := args[0].Micros()
		rank := (p*n + 100*ir.NumberScale - 1) / (100 * ir.NumberScale)
		rank = max(rank, 1)
		return ir.MapValue(map[string]ir.Value{"threshold": ir.NumberMicros(sorted[rank-1])}), nil
	}
	return ir.Value{}, fmt.Errorf("kernel %s runs in the derivation (logline serve, logline quality simulate), not in loglinerun", name)
}
