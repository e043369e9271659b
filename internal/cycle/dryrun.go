package cycle

import (
	"slices"

	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/span"
)

// DryRun runs the cycle over spans in memory, through the same engine as
// live derivation (the default configuration def and the bundle's rules,
// nil for the standard bundle's), and writes nothing anywhere. The spans are numbered as an
// empty ledger would number them if they were ingested in this order: a span
// whose (tenant, id) came before is a duplicate and is skipped, as ingest
// would answer it. So, without ticks, the events equal what a server derives
// after ingesting the same spans into an empty ledger.
func DryRun(spans []*span.Span, def derive.TenantConfig, rules *derive.Rules, sim derive.SimConfig) (derive.Summary, error) {
	return derive.Simulate(derive.SpanInputs(slices.Values(spans)), derive.Config{Default: &def, Rules: rules}, sim)
}
