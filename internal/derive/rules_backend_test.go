package derive

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/backend"
	"github.com/loglineos/loglineos/stdlib"
)

// TestRulesOnBackend: the derivation whose score and meter run on
// backend.Events (Rules.CheckEvent; wasm, then shadow) derives what it
// derives on the interpreter, event for event, the module answering the
// meter's runs, all of them, with no divergence.
func TestRulesOnBackend(t *testing.T) {
	ctx := context.Background()
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	data, errs, err := bundle.Compile(stdlib.Sources(), key, bundle.BuildOptions{Wasm: true})
	if err != nil || errs != nil {
		t.Fatal(err, errs)
	}
	b, err := bundle.Load(data, bundle.LoadOptions{Trusted: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, AllowedCaps: abi.Caps()})
	if err != nil {
		t.Fatal(err)
	}
	ledger := defaultLedger(8_000)
	sim := SimConfig{CloseAtEnd: true, KeepEvents: true}
	want, err := Simulate(ledger.ledger(), Config{Rules: CompileRules(b.Program())}, sim)
	if err != nil {
		t.Fatal(err)
	}
	if want.Candidates == 0 {
		t.Fatal("no candidates: the test needs some")
	}
	for _, k := range []backend.Kind{backend.Wasm, backend.Shadow} {
		var divs []backend.Divergence
		e, err := backend.NewEvents(ctx, b, k, backend.Options{OnDivergence: func(d backend.Divergence) { divs = append(divs, d) }})
		if err != nil {
			t.Fatal(err)
		}
		r := CompileRules(b.Program())
		r.CheckEvent = e.CheckEvent
		got, err := Simulate(ledger.ledger(), Config{Rules: r}, sim)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: the derivation differs (-eval +%s):\n%s", k, k, diff)
		}
		st := e.Stats()
		if len(divs) > 0 || st.Divergences != 0 || st.Runs == 0 || st.Fallbacks != 0 {
			t.Errorf("%s: stats %+v, divergences %v", k, st, divs)
		}
		_ = e.Close(ctx)
	}
}
