package cycle

import (
	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/span"
)

// DryRun runs the cycle over spans in memory, through the same engine as
// live derivation, and writes nothing anywhere. The spans are numbered as an
// empty ledger would number them if they were ingested in this order: a span
// whose (tenant, id) came before is a duplicate and is skipped, as ingest
// would answer it. So, without ticks, the events equal what a server derives
// after ingesting the same spans into an empty ledger.
func DryRun(spans []*span.Span, def derive.TenantConfig, sim derive.SimConfig) (derive.Summary, error) {
	type key struct{ tenant, id string }
	seen := make(map[key]bool, len(spans))
	inputs := func(yield func(derive.Input) bool) {
		var seq uint64
		for _, s := range spans {
			k := key{s.Tenant, s.ID}
			if seen[k] {
				continue
			}
			seen[k] = true
			if !yield(derive.Input{Seq: seq, Kind: derive.KindSpan, Span: s}) {
				return
			}
			seq++
		}
	}
	return derive.Simulate(inputs, derive.Config{Default: &def}, sim)
}
