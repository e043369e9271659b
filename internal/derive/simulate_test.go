package derive

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestSimulateSmall(t *testing.T) {
	inputs := []Input{
		spanIn(1, "s1", "order:1", 0, confirmedBy("a")),
		spanIn(2, "s2", "order:1", 1*h, confirmedBy("b")),
		spanIn(3, "hb", "heartbeat-1", 1*h),
		spanIn(4, "s3", "order:2", 2*h),
		tickIn(5, 7*h+1), // closes order:1 (last 1h)
		spanIn(6, "s4", "order:3", 7*h+2),
	}
	tests := []struct {
		name string
		opts SimConfig
		want Summary
	}{{
		name: "open trajectories stay open at the end",
		want: Summary{
			Inputs: 6, Spans: 5, Ticks: 1,
			Trajectories: 3, Open: 2, Timeout: 1, Excepted: 1,
			// order:1: mass 2/10*40=8, persistence 1h/12h*30=2.5->3,
			// verification 2/2*(3+2)/6*30=25
			Scored: 1, Histogram: hist(map[int]uint64{36: 1}), P50: 36, P95: 36, P99: 36,
			Threshold: -1, EventCount: 6,
		},
	}, {
		name: "CloseAtEnd ticks past every deadline",
		opts: SimConfig{CloseAtEnd: true},
		want: Summary{
			Inputs: 7, Spans: 5, Ticks: 2,
			Trajectories: 3, Open: 0, Timeout: 3, Excepted: 1,
			Scored: 3, Histogram: hist(map[int]uint64{4: 2, 36: 1}), P50: 4, P95: 36, P99: 36,
			Threshold: 36, EventCount: 10,
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Simulate(slices.Values(inputs), Config{}, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(Summary{}, "Events")); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func hist(m map[int]uint64) (h [NumScores]uint64) {
	for s, c := range m {
		h[s] = c
	}
	return h
}

// Simulate derives exactly what Step does, event for event.
func TestSimulateMatchesStep(t *testing.T) {
	inputs := slices.Collect(defaultLedger(100_000).ledger())
	e, _ := New(Config{})
	want := eventStream(t, e, inputs, nil)
	var got []byte
	sum, err := Simulate(slices.Values(inputs), Config{}, SimConfig{
		KeepEvents: true,
		OnEvent: func(ev *Event) error {
			got = ev.AppendJSON(got)
			got = append(got, '\n')
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, got) {
		t.Fatal("Simulate's events differ from Step's")
	}
	if uint64(len(sum.Events)) != sum.EventCount {
		t.Errorf("kept %d events, counted %d", len(sum.Events), sum.EventCount)
	}
	t.Logf("%d spans: %d trajectories (%d open), %d scored, p50/p95/p99 %d/%d/%d, %d candidates (%d ppm), threshold %d, %d shed",
		sum.Spans, sum.Trajectories, sum.Open, sum.Scored, sum.P50, sum.P95, sum.P99, sum.Candidates, sum.CandidatePPM, sum.Threshold, sum.Shed)
}

// TestSimulateProgress: progress every SimProgressEvery inputs and after
// the last, never twice for the same count.
func TestSimulateProgress(t *testing.T) {
	for _, n := range []int{0, 10_000, 2 * SimProgressEvery} {
		inputs := slices.Collect(defaultLedger(n).ledger())
		var got []uint64
		if _, err := Simulate(slices.Values(inputs), Config{}, SimConfig{Progress: func(in uint64) { got = append(got, in) }}); err != nil {
			t.Fatal(err)
		}
		var want []uint64
		for i := SimProgressEvery; i <= len(inputs); i += SimProgressEvery {
			want = append(want, uint64(i))
		}
		if len(inputs)%SimProgressEvery != 0 {
			want = append(want, uint64(len(inputs)))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%d inputs: progress (-want +got):\n%s", len(inputs), diff)
		}
	}
}

func TestSimulateWorkloadRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	scores := make([]int, 30_000)
	for i := range scores {
		scores[i] = 4 + rng.IntN(97)
	}
	sum, err := Simulate(slices.Values(trajectoryLedger(t, scores)), Config{}, SimConfig{CloseAtEnd: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Scored != 30_000 || sum.Open != 0 {
		t.Fatalf("scored %d, open %d; want 30000, 0", sum.Scored, sum.Open)
	}
	if sum.CandidatePPM < 20_000 || sum.CandidatePPM > 40_000 {
		t.Errorf("candidate rate %d ppm, want 2%%..4%%", sum.CandidatePPM)
	}
	t.Logf("rate %d ppm, threshold %d, p50/p95/p99 %d/%d/%d", sum.CandidatePPM, sum.Threshold, sum.P50, sum.P95, sum.P99)
}

func TestSimulateStopsOnErrors(t *testing.T) {
	bad := []Input{spanIn(2, "s1", "order:1", 0), spanIn(1, "s2", "order:1", 0)}
	if _, err := Simulate(slices.Values(bad), Config{}, SimConfig{}); !errors.Is(err, ErrBadInput) {
		t.Errorf("err = %v, want ErrBadInput", err)
	}
	stop := errors.New("stop")
	_, err := Simulate(slices.Values(bad[:1]), Config{}, SimConfig{OnEvent: func(*Event) error { return stop }})
	if !errors.Is(err, stop) {
		t.Errorf("err = %v, want the OnEvent error", err)
	}
	badCfg := DefaultTenantConfig()
	badCfg.Linker.KeyFields = nil
	if _, err := Simulate(slices.Values(bad[:1]), Config{Default: &badCfg}, SimConfig{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("err = %v, want ErrInvalidConfig", err)
	}
}
