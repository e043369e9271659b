package bundle_test

import (
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/span"
	"github.com/loglineos/loglineos/stdlib"
)

// testKey is deterministic so that failures reproduce.
func testKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	return ed25519.NewKeyFromSeed(s)
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func stdBundle(t testing.TB) []byte {
	t.Helper()
	b, err := stdlib.Build(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func load(t testing.TB, data []byte) *bundle.Bundle {
	t.Helper()
	b, err := bundle.Load(data, bundle.LoadOptions{Trusted: []ed25519.PublicKey{pub(testKey(1))}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parse(t testing.TB, s string) *span.Span {
	t.Helper()
	sp, err := span.Parse([]byte(s), span.Limits{})
	if err != nil {
		t.Fatalf("span.Parse(%s): %v", s, err)
	}
	return sp
}

const good = `{"id":"s_01JD8X3K2M4N5P6Q7R8S9T0V1W","tenant":"t_voulezvous","who":"dan","did":"sale.post","this":"order:12345","when":"2025-10-05T22:18:07Z","confirmed_by":["pos://register-7"],"status":"confirmed","data":{"gross":19.90,"items":3}}`

func TestCanonicalContract(t *testing.T) {
	b := load(t, stdBundle(t))
	vs := b.IngestValidators()
	if len(vs) != 1 || vs[0].Name() != "canonical_contract_v1" {
		t.Fatalf("IngestValidators = %v, want [canonical_contract_v1]", vs)
	}
	v := vs[0]
	tests := []struct {
		name string
		in   string
		want *bundle.Violation
	}{
		{"ok", good, nil},
		{"minimal", `{"id":"a","tenant":"t","who":"w","did":"d","this":"x","when":"2025-10-05T22:18:07+02:00","status":"pending"}`, nil},
		{"status rejected", strings.Replace(good, `"status":"confirmed"`, `"status":"rejected"`, 1), nil},
		{"status cancelled", strings.Replace(good, `"status":"confirmed"`, `"status":"cancelled"`, 1), nil},
		{"status not allowed", strings.Replace(good, `"status":"confirmed"`, `"status":"shipped"`, 1), &bundle.Violation{
			Validator: "canonical_contract_v1", Rule: `require field "status" in ["confirmed", "pending", "rejected", "cancelled"]`, Field: "status",
			Detail: `field "status" is not one of "confirmed", "pending", "rejected", "cancelled": "shipped"`, Pos: "stdlib/canonical.lll:10:3", Action: "reject"}},
		{"status in capitals", strings.Replace(good, `"status":"confirmed"`, `"status":"Confirmed"`, 1), &bundle.Violation{
			Validator: "canonical_contract_v1", Rule: `require field "status" in ["confirmed", "pending", "rejected", "cancelled"]`, Field: "status",
			Detail: `field "status" is not one of "confirmed", "pending", "rejected", "cancelled": "Confirmed"`, Pos: "stdlib/canonical.lll:10:3", Action: "reject"}},
		{"bad when", strings.Replace(good, "2025-10-05T22:18:07Z", "2025-13-45", 1), &bundle.Violation{
			Validator: "canonical_contract_v1", Rule: `require field "when" as "rfc3339"`, Field: "when",
			Detail: `field "when" is not RFC 3339: "2025-13-45"`, Pos: "stdlib/canonical.lll:6:3", Action: "reject"}},
		{"missing who", strings.Replace(good, `"who":"dan",`, "", 1), &bundle.Violation{
			Validator: "canonical_contract_v1", Rule: `require field "who"`, Field: "who",
			Detail: `field "who" is required`, Pos: "stdlib/canonical.lll:7:3", Action: "reject"}},
		{"empty id", strings.Replace(good, `"id":"s_01JD8X3K2M4N5P6Q7R8S9T0V1W"`, `"id":""`, 1), &bundle.Violation{
			Validator: "canonical_contract_v1", Rule: `require field "id"`, Field: "id",
			Detail: `field "id" is empty`, Pos: "stdlib/canonical.lll:4:3", Action: "reject"}},
		{"unknown member", strings.Replace(good, `"who":"dan"`, `"who":"dan","extra":1`, 1), &bundle.Violation{
			Validator: "canonical_contract_v1", Rule: `reject unknown fields`, Field: "extra",
			Detail: `unknown field "extra" (allowed: confirmed_by, data, did, id, status, tenant, this, when, who)`, Pos: "stdlib/canonical.lll:13:3", Action: "reject"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := v.Validate(parse(t, tt.in))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPolicies(t *testing.T) {
	b := load(t, stdBundle(t))
	p, ok := b.Policy("trajectory_linker")
	if !ok {
		t.Fatal("no policy trajectory_linker")
	}
	if d, _ := p.Duration("close_timeout"); d.String() != "6h0m0s" {
		t.Errorf("close_timeout = %v, want 6h", d)
	}
	if l, _ := p.Strings("exceptions"); !cmp.Equal(l, []string{"this:heartbeat-*"}) {
		t.Errorf("exceptions = %v", l)
	}
	q, _ := b.Policy("quality_meter")
	if pc, _ := q.Percentile("percentile_target"); pc != 96 {
		t.Errorf("percentile_target = %v, want 96", pc)
	}
	if w, _ := q.Numbers("weights"); !cmp.Equal(w, map[string]float64{"mass": 0.4, "persistence": 0.3, "verification": 0.3}) {
		t.Errorf("weights = %v", w)
	}
	o, err := p.With(map[string]any{"close_timeout": "2h"})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := o.Duration("close_timeout"); d.String() != "2h0m0s" {
		t.Errorf("override close_timeout = %v, want 2h", d)
	}
	for _, bad := range []struct {
		over map[string]any
		want string
	}{
		{map[string]any{"close_timout": "2h"}, `unknown key close_timout; did you mean "close_timeout"?`},
		{map[string]any{"close_timeout": "two hours"}, `policies.trajectory_linker.close_timeout: "two hours" is not a duration`},
		{map[string]any{"key_fields": "this"}, `want a list`},
	} {
		if _, err := p.With(bad.over); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("With(%v) = %v, want error containing %q", bad.over, err, bad.want)
		}
	}
	if _, err := q.With(map[string]any{"percentile_target": "p101"}); err == nil {
		t.Error("percentile p101 accepted")
	}
}

func TestJSONSchemas(t *testing.T) {
	b := load(t, stdBundle(t))
	s := b.JSONSchemas("#/components/schemas/")
	for _, n := range []string{"span", "trajectory_edge", "trajectory_closed", "trajectory_quality", "diamond_candidate"} {
		if s[n] == nil {
			t.Errorf("no schema %s", n)
		}
	}
	sp := s["span"]
	if sp["additionalProperties"] != false || sp["$schema"] != bundle.JSONSchemaDialect {
		t.Errorf("span schema = %v", sp)
	}
	when := sp["properties"].(map[string]any)["when"].(map[string]any)
	if when["format"] != "date-time" {
		t.Errorf("when = %v, want format date-time", when)
	}
	reason := s["trajectory_closed"]["properties"].(map[string]any)["reason"].(map[string]any)
	if !cmp.Equal(reason["enum"], []any{"timeout", "rule", "evicted"}) {
		t.Errorf("reason = %v", reason)
	}
}

func TestRefusals(t *testing.T) {
	data := stdBundle(t)
	trusted := bundle.LoadOptions{Trusted: []ed25519.PublicKey{pub(testKey(1))}}
	p, err := bundle.Split(data)
	if err != nil {
		t.Fatal(err)
	}
	reframe := func(res []bundle.Resource, fixHash bool, key ed25519.PrivateKey) []byte {
		return rebuild(t, p, res, fixHash, key)
	}
	extra := append(append([]bundle.Resource{}, p.Resources...), bundle.Resource{Name: "validators/zz_extra", Payload: []byte(`{}`)})
	tests := []struct {
		name string
		data []byte
		opts bundle.LoadOptions
		want error
		msg  string
	}{
		{"untrusted key", mustBuild(t, testKey(2)), trusted, bundle.ErrUntrustedKey, "not trusted"},
		{"no trusted key", data, bundle.LoadOptions{}, bundle.ErrUntrustedKey, "no key is trusted"},
		{"added resource", reframe(extra, false, nil), trusted, bundle.ErrBadHash, "the manifest says"},
		{"added resource, hash fixed", reframe(extra, true, nil), trusted, bundle.ErrBadSignature, "changed after signing"},
		{"removed resource", reframe(p.Resources[1:], false, nil), trusted, bundle.ErrBadHash, ""},
		{"removed resource, resigned", reframe(p.Resources[1:], true, testKey(1)), trusted, bundle.ErrMalformed, "does not hold"},
		{"added resource, resigned", reframe(extra, true, testKey(1)), trusted, bundle.ErrMalformed, "does not list"},
		{"truncated", data[:len(data)-1], trusted, bundle.ErrMalformed, "signature"},
		{"empty", nil, trusted, bundle.ErrMalformed, "magic"},
		{"trailing", append(append([]byte{}, data...), 0), trusted, bundle.ErrMalformed, "signature"},
		{"cap not allowed", capBundle(t, "v1"), trusted, bundle.ErrCapNotAllowed, `needs capability "ws.send"`},
		{"unknown abi", capBundle(t, "v2"), bundle.LoadOptions{Trusted: trusted.Trusted, AllowedCaps: []string{"ws.send"}}, bundle.ErrUnknownABI, `"v2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := bundle.Load(tt.data, tt.opts)
			if b != nil || !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Load = %v, %v; want %v containing %q", b, err, tt.want, tt.msg)
			}
			var le *bundle.LoadError
			if !errors.As(err, &le) {
				t.Errorf("error %T is not a *LoadError", err)
			}
		})
	}
	// The same capability bundle loads where the deployment allows ws.send.
	if _, err := bundle.Load(capBundle(t, "v1"), bundle.LoadOptions{Trusted: trusted.Trusted, AllowedCaps: []string{"ws.send"}}); err != nil {
		t.Errorf("allowed capability refused: %v", err)
	}
}

func mustBuild(t *testing.T, key ed25519.PrivateKey) []byte {
	b, err := stdlib.Build(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const capSrc = `
router sales {
  uses "ws.send"
  route when did == "sale.post" to ws.send("sales")
}
`

func capBundle(t *testing.T, abi string) []byte {
	prog, errs := lll.Compile([]lll.Source{{Name: "r.lll", Text: []byte(capSrc)}})
	if errs != nil {
		t.Fatal(errs)
	}
	prog.ABI = abi
	b, err := bundle.Build(prog, nil, testKey(1), bundle.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFlips flips one byte at many offsets (every offset of the manifest
// and the signature, and a random sample of the rest): each is refused.
func TestFlips(t *testing.T) {
	data := stdBundle(t)
	opts := bundle.LoadOptions{Trusted: []ed25519.PublicKey{pub(testKey(1))}}
	rng := rand.New(rand.NewPCG(1, 2))
	offsets := map[int]bool{}
	p, _ := bundle.Split(data)
	for i := 0; i < len(bundle.Magic)+4+len(p.ManifestRaw)+8; i++ {
		offsets[i] = true
	}
	for i := len(data) - 64; i < len(data); i++ {
		offsets[i] = true
	}
	for len(offsets) < 1200 && len(offsets) < len(data) {
		offsets[rng.IntN(len(data))] = true
	}
	kinds := map[string]int{}
	for off := range offsets {
		for _, mask := range []byte{0x01, 0x80} {
			mut := append([]byte{}, data...)
			mut[off] ^= mask
			b, err := bundle.Load(mut, opts)
			if err == nil || b != nil {
				t.Fatalf("flip 0x%02x at offset %d: loaded", mask, off)
			}
			var le *bundle.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("flip at %d: error %T (%v) is not a *LoadError", off, err, err)
			}
			kinds[le.Err.Error()]++
		}
	}
	if len(offsets) < 256 {
		t.Fatalf("only %d offsets", len(offsets))
	}
	t.Logf("%d offsets of %d bytes, refusals: %v", len(offsets), len(data), kinds)
}

// TestRoundTrip checks that the program a bundle loads is the program that
// was compiled: the IR survives encoding, signing and decoding unchanged.
func TestRoundTrip(t *testing.T) {
	want, err := stdlib.Compile()
	if err != nil {
		t.Fatal(err)
	}
	b := load(t, stdBundle(t))
	if diff := cmp.Diff(want.String(), b.IR.String()); diff != "" {
		t.Errorf("loaded IR differs (-compiled +loaded):\n%s", diff)
	}
	if len(b.Sources) != len(stdlib.Sources()) {
		t.Errorf("bundle carries %d sources, want %d", len(b.Sources), len(stdlib.Sources()))
	}
}

// TestBuildOrderAndZone builds from shuffled sources in another time zone.
func TestBuildOrderAndZone(t *testing.T) {
	a := stdBundle(t)
	srcs := stdlib.Sources()
	for i, j := 0, len(srcs)-1; i < j; i, j = i+1, j-1 {
		srcs[i], srcs[j] = srcs[j], srcs[i]
	}
	b, errs, err := bundle.Compile(srcs, testKey(1), bundle.BuildOptions{})
	if err != nil || errs != nil {
		t.Fatal(err, errs)
	}
	if !cmp.Equal(a, b) {
		t.Error("bundle bytes depend on the order of the sources")
	}
}
