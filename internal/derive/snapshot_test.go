package derive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// eventStream runs inputs through e, appending the canonical JSON of every
// event, one per line, to out.
func eventStream(t testing.TB, e *Engine, inputs []Input, out []byte) []byte {
	t.Helper()
	var evs []Event
	for _, in := range inputs {
		var err error
		if evs, err = e.Step(evs[:0], in); err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			out = evs[i].AppendJSON(out)
			out = append(out, '\n')
		}
	}
	return out
}

func TestSnapshotResumeEqualsUninterrupted(t *testing.T) {
	n := 200_000
	if testing.Short() || raceEnabled {
		n = 30_000
	}
	inputs := slices.Collect(defaultLedger(n).ledger())
	whole, _ := New(Config{})
	want := eventStream(t, whole, inputs, nil)
	wantState, err := whole.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 4; trial++ {
		// Cut the ledger at random points; at each, snapshot, throw the
		// engine away and resume from the bytes in a new one.
		cuts := []int{0}
		for k := 0; k < 1+trial*3; k++ {
			cuts = append(cuts, rng.IntN(len(inputs)))
		}
		cuts = append(cuts, len(inputs))
		slices.Sort(cuts)
		e, _ := New(Config{})
		var got []byte
		for k := 0; k+1 < len(cuts); k++ {
			got = eventStream(t, e, inputs[cuts[k]:cuts[k+1]], got)
			snap, err := e.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			e = &Engine{} // a zero engine: everything comes from the snapshot
			if err := e.UnmarshalBinary(snap); err != nil {
				t.Fatalf("resume at %d: %v", cuts[k+1], err)
			}
			again, _ := e.MarshalBinary()
			if !bytes.Equal(snap, again) {
				t.Fatalf("snapshot at %d does not round-trip", cuts[k+1])
			}
		}
		if !bytes.Equal(want, got) {
			t.Fatalf("trial %d (cuts %v): resumed event stream differs from the uninterrupted one", trial, cuts)
		}
		gotState, _ := e.MarshalBinary()
		if !bytes.Equal(wantState, gotState) {
			t.Fatalf("trial %d: final state bytes differ", trial)
		}
	}
	for _, name := range whole.Tenants() {
		p50, p95, p99 := whole.Percentiles(name)
		t.Logf("%s: %+v; p50/p95/p99 %d/%d/%d", name, whole.Stats(name).Open, p50, p95, p99)
	}
}

func TestSnapshotKeepsConfigAndCursor(t *testing.T) {
	c := DefaultTenantConfig()
	c.Linker.CloseTimeout = 3 * h
	c.Meter.PercentileTarget = "p99.5"
	e, _ := New(Config{Default: &c})
	custom := DefaultTenantConfig()
	custom.Linker.KeyFields = []string{"this", "who"}
	run(t, e, spanIn(7, "s1", "order:1", 0), cfgIn(9, "u", &custom))
	snap, _ := e.MarshalBinary()
	var r Engine
	if err := r.UnmarshalBinary(snap); err != nil {
		t.Fatal(err)
	}
	if seq, ok := r.LastSeq(); !ok || seq != 9 {
		t.Errorf("LastSeq = %d %v, want 9 true", seq, ok)
	}
	if diff := cmp.Diff(c, r.TenantConfig("t")); diff != "" {
		t.Errorf("default config (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(custom.Linker.KeyFields, r.TenantConfig("u").Linker.KeyFields); diff != "" {
		t.Errorf("tenant config (-want +got):\n%s", diff)
	}
	if _, err := r.Step(nil, spanIn(9, "s2", "order:1", 0)); !errors.Is(err, ErrBadInput) {
		t.Errorf("seq 9 after resume: err = %v, want ErrBadInput", err)
	}
}

func TestSnapshotCorruption(t *testing.T) {
	e, _ := New(Config{})
	run(t, e, spanIn(1, "s1", "order:1", 0, confirmedBy("a")), spanIn(2, "s2", "order:2", 7*h), tickIn(3, 20*h))
	good, _ := e.MarshalBinary()
	before, _ := e.MarshalBinary()

	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 1
	cases := map[string][]byte{
		"empty":        nil,
		"wrong magic":  append([]byte("LLDERIV\x01"), good[8:]...),
		"flipped byte": flipped,
		"truncated":    good[:len(good)-5],
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if err := e.UnmarshalBinary(data); !errors.Is(err, ErrBadSnapshot) {
				t.Errorf("err = %v, want ErrBadSnapshot", err)
			}
			after, _ := e.MarshalBinary()
			if !bytes.Equal(before, after) {
				t.Error("a failed UnmarshalBinary changed the engine")
			}
		})
	}
}

// FuzzUnmarshalBinary feeds mutated snapshots (checksum fixed up) to the
// decoder. The seed is a real snapshot of a few kilobytes; minimizing inputs
// that size is slow, so run it with a bounded minimization, e.g.
//
//	go test -run '^$' -fuzz FuzzUnmarshalBinary -fuzztime 60s -fuzzminimizetime 50x
func FuzzUnmarshalBinary(f *testing.F) {
	e, _ := New(Config{})
	var inputs []Input
	for in := range defaultLedger(60).ledger() {
		inputs = append(inputs, in)
	}
	eventStream(f, e, inputs, nil)
	snap, _ := e.MarshalBinary()
	f.Add(snap)
	f.Add([]byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Fix the checksum up, so that the fuzzer reaches the decoder.
		if len(data) >= 4 {
			binary.BigEndian.PutUint32(data[len(data)-4:], crc32.ChecksumIEEE(data[:len(data)-4]))
		}
		var e Engine
		if e.UnmarshalBinary(data) != nil {
			return
		}
		// Whatever is accepted marshals to a canonical form that is
		// stable, and keeps working.
		canon, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var e2 Engine
		if err := e2.UnmarshalBinary(canon); err != nil {
			t.Fatalf("canonical form refused: %v", err)
		}
		if again, _ := e2.MarshalBinary(); !bytes.Equal(again, canon) {
			t.Fatalf("canonical form does not round-trip")
		}
		seq, _ := e.LastSeq()
		if _, err := e.Step(nil, tickIn(seq+1, 1000*h)); err != nil {
			t.Fatal(err)
		}
	})
}
