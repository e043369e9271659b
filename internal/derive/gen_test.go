package derive

import (
	"iter"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/loglineos/loglineos/internal/span"
)

// ledgerSpec describes a synthetic ledger: a deterministic mix of spans over
// several tenants, with heartbeats (exceptions), late spans, closing dids,
// clock ticks and occasional tenant config changes.
type ledgerSpec struct {
	seed       uint64
	spans      int
	tenants    int
	openProb   float64 // chance a span starts a new thing
	maxActive  int     // things in flight per tenant
	heartbeat  float64 // chance of a heartbeat span
	late       float64 // chance of a late span (when in the past)
	closeDid   float64 // chance of a "order.closed" span on an active thing
	tickEvery  int     // a tick every this many spans (0: none)
	configs    bool    // emit a few tenant config changes
	stepMillis int     // mean event-time step between spans
}

var epoch = time.Date(2025, 10, 5, 0, 0, 0, 0, time.UTC)

// spanAt builds a span for tests.
func spanAt(tenant, id, this, did string, when time.Time, status string, confirmedBy ...string) *span.Span {
	return &span.Span{ID: id, Tenant: tenant, Who: "dan", Did: did, This: this, WhenRaw: when.Format(time.RFC3339Nano),
		When: when, WhenOK: true, Status: status, ConfirmedBy: confirmedBy}
}

// ledger yields the inputs of spec. Every call regenerates the same
// sequence, so a million-span ledger need not be held in memory.
func (spec ledgerSpec) ledger() iter.Seq[Input] {
	return func(yield func(Input) bool) {
		rng := rand.New(rand.NewPCG(spec.seed, spec.seed^0x9e3779b97f4a7c15))
		type thing struct{ key string }
		active := make([][]thing, spec.tenants)
		tenants := make([]string, spec.tenants)
		for i := range tenants {
			tenants[i] = "t_" + strconv.Itoa(i)
		}
		confirmers := []string{"pos://register-1", "pos://register-2", "bank://acme", "courier://x", "audit://y"}
		now := epoch
		seq := uint64(0)
		next := 0
		for i := 0; i < spec.spans; i++ {
			seq++
			if spec.tickEvery > 0 && i > 0 && i%spec.tickEvery == 0 {
				if !yield(Input{Seq: seq, Kind: KindTick, Tick: now.Add(time.Duration(rng.IntN(60)) * time.Second)}) {
					return
				}
				seq++
			}
			if spec.configs && i > 0 && i%(spec.spans/4+1) == 0 {
				c := DefaultTenantConfig()
				c.Linker.CloseTimeout = time.Duration(2+rng.IntN(6)) * time.Hour
				c.Meter.MinScore = 40 + rng.IntN(30)
				c.Linker.CloseOnDid = []string{"order.closed"}
				if rng.IntN(2) == 0 {
					c.Perf.MaxPerMinute = 50
				}
				if !yield(Input{Seq: seq, Kind: KindConfig, Tenant: tenants[rng.IntN(len(tenants))], Config: &c}) {
					return
				}
				seq++
			}
			now = now.Add(time.Duration(rng.IntN(2*spec.stepMillis+1)) * time.Millisecond)
			ti := rng.IntN(spec.tenants)
			if ti > 0 && rng.IntN(3) > 0 {
				ti = 0 // skew: tenant 0 gets most traffic
			}
			when := now
			did := "order.step"
			var this string
			switch r := rng.Float64(); {
			case r < spec.heartbeat:
				this = "heartbeat-" + strconv.Itoa(rng.IntN(8))
				did = "ping"
			case len(active[ti]) == 0 || len(active[ti]) < spec.maxActive && rng.Float64() < spec.openProb:
				next++
				this = "order:" + strconv.Itoa(next)
				active[ti] = append(active[ti], thing{key: this})
			default:
				j := rng.IntN(len(active[ti]))
				this = active[ti][j].key
				if rng.Float64() < spec.closeDid {
					did = "order.closed"
				}
				if rng.IntN(8) == 0 || did == "order.closed" { // retire the thing
					active[ti][j] = active[ti][len(active[ti])-1]
					active[ti] = active[ti][:len(active[ti])-1]
				}
				if rng.Float64() < spec.late {
					when = now.Add(-time.Duration(rng.IntN(10*3600)) * time.Second)
				}
			}
			status := "pending"
			var conf []string
			if rng.IntN(3) > 0 {
				status = "confirmed"
				conf = []string{confirmers[rng.IntN(len(confirmers))]}
				if rng.IntN(4) == 0 {
					conf = append(conf, confirmers[rng.IntN(len(confirmers))])
				}
			}
			sp := &span.Span{
				ID:          "s_" + strconv.FormatUint(seq, 36),
				Tenant:      tenants[ti],
				Who:         "w",
				Did:         did,
				This:        this,
				When:        when,
				WhenOK:      true,
				Status:      status,
				ConfirmedBy: conf,
			}
			if !yield(Input{Seq: seq, Kind: KindSpan, Span: sp}) {
				return
			}
		}
	}
}

// defaultLedger is the mixed ledger used by the determinism tests and the
// Step benchmark.
func defaultLedger(spans int) ledgerSpec {
	return ledgerSpec{
		seed: 42, spans: spans, tenants: 5, openProb: 0.3, maxActive: 2000,
		heartbeat: 0.05, late: 0.02, closeDid: 0.05, tickEvery: 1000, configs: true, stepMillis: 400,
	}
}
