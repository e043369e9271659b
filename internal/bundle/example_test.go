package bundle_test

import (
	"crypto/ed25519"
	"fmt"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/span"
	"github.com/loglineos/loglineos/stdlib"
)

// The gateway's use of a bundle: load it (verified), validate spans with
// the ingest validators, read policies and schemas.
func Example() {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	data, _ := stdlib.Build(key) // in production: the signed .lllb file

	b, err := bundle.Load(data, bundle.LoadOptions{
		Trusted:     []ed25519.PublicKey{key.Public().(ed25519.PublicKey)},
		AllowedCaps: nil, // deny every capability
	})
	if err != nil {
		fmt.Println(err) // errors.Is(err, bundle.ErrBadSignature), ...
		return
	}
	s, _ := span.Parse([]byte(`{"id":"s_1","tenant":"t","who":"dan","did":"sale.post","this":"order:1","when":"2025-13-45","status":"confirmed"}`), span.Limits{})
	for _, v := range b.IngestValidators() {
		if vi := v.Validate(s); vi != nil {
			fmt.Printf("rule: %s: %s\nfield: %s\ndetail: %s\nat: %s\n", vi.Validator, vi.Rule, vi.Field, vi.Detail, vi.Pos)
		}
	}
	p, _ := b.Policy("trajectory_linker")
	timeout, _ := p.Duration("close_timeout")
	keys, _ := p.Strings("key_fields")
	fmt.Println("close_timeout:", timeout, "key_fields:", keys)
	tenant, _ := p.With(map[string]any{"close_timeout": "2h"})
	timeout, _ = tenant.Duration("close_timeout")
	fmt.Println("tenant close_timeout:", timeout)
	fmt.Println("schema:", b.JSONSchemas("#/components/schemas/")["span"]["title"])
	// Output:
	// rule: canonical_contract_v1: require field "when" as "rfc3339"
	// field: when
	// detail: field "when" is not RFC 3339: "2025-13-45"
	// at: stdlib/canonical.lll:6:3
	// close_timeout: 6h0m0s key_fields: [this]
	// tenant close_timeout: 2h0m0s
	// schema: span
}
