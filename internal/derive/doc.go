// Package derive is the neutral cycle of LogLineOS (docs/quality.md) as a pure,
// deterministic core: the trajectory linker, the trajectory quality score, the
// Quality Meter v1.1 with its diamond_candidate flag, and the
// derived_events_perf guardrail.
//
// # A state machine over ledger records
//
// Like etcd's raft, the package does no I/O. An Engine is state; Step takes
// one ledger record (an Input: a span, a server clock tick, or a tenant
// configuration change) and returns the derived events it causes, appended
// to a caller's buffer:
//
//	e, err := derive.New(derive.Config{})          // tenants default to DefaultTenantConfig()
//	var evs []derive.Event
//	for rec := range ledger {                      // in ledger order
//		evs, err = e.Step(evs[:0], derive.Input{Seq: rec.Seq, Kind: derive.KindSpan, Span: rec.Span})
//		if err != nil { ... }                      // ErrBadInput; the state is unchanged
//		for i := range evs {
//			line = evs[i].AppendJSON(line[:0])     // canonical JSON, one object
//		}
//	}
//	snap, _ := e.MarshalBinary()                   // persist with the cursor e.LastSeq()
//
// Nothing inside reads a clock, starts a goroutine, touches a file, draws a
// random number or depends on map iteration order (maps are used for
// lookups only; whatever is iterated is a slice in a defined order). Scores
// and the meter use integers only. So the events are a function of the record
// sequence and the configuration alone: replaying a ledger gives the same
// bytes whatever the machine, GOMAXPROCS, time zone, batching, or where the
// replay was snapshotted and resumed. The ledger, HTTP, storage of derived
// events and watching tenant configuration files are the business of the
// code around this package.
//
// # Time as data
//
// Each tenant has a derivation clock: the largest of the "when" values of its
// spans and of the tick times, over the records seen so far in ledger order.
// A tick applies to every tenant, including tenants that appear after it
// (their clock starts at the largest tick seen). Times are held as int64 Unix
// nanoseconds; a "when" outside 1678..2262 saturates to those bounds. Every
// event's ts is the tenant's clock after the record that caused it, written
// as RFC 3339 in UTC with trailing zeros of the fraction trimmed
// (time.RFC3339Nano), and every event carries seq, the ledger sequence
// number of that record.
//
// # Trajectory linker
//
// Spans of a tenant whose key_fields values are all equal belong to one open
// trajectory (key fields may be id, tenant, who, did, this, status and when,
// the last as sent; a span with an empty key field is not linked). The first
// span opens it at position 0 and gets a trajectory_edge at position 0 too;
// each later span gets the next position. Processing follows ledger order,
// not "when" order: a late span joins its trajectory if it is still open and
// otherwise opens a new one.
//
// A span matching an entry of exceptions, "field:glob", is never linked (it
// still moves the clock). Globs have path.Match semantics: '*' matches any
// run of characters other than '/', '?' one character other than '/',
// '[...]' a class, '\\' escapes; the whole value must match.
//
// A trajectory closes with reason "timeout" when its tenant's clock is
// strictly past its deadline,
//
//	deadline = min(last + close_timeout, opened + window)
//
// where opened and last are the tenant's clock when it opened and when its
// latest span was linked (so a late span extends a trajectory's life like
// any other). Deadlines are checked whenever a span or a tick reaches the
// tenant, before the span is linked; trajectories that expire together close
// in order of deadline, then trajectory id, then key. A trajectory closes with
// reason "rule" right after linking a span whose did is in close_on_did, and
// every open trajectory of a tenant closes with reason "rule" (in the same
// order) at a configuration record that changes its key_fields, since old
// keys cannot be compared with new ones.
//
// A tenant has at most max_open_trajectories open trajectories. A span that
// would open one more first closes the oldest open one, by opening (ledger
// order, not activity), with reason "evicted"; a configuration record that
// lowers the bound below the number open closes the oldest down to it, in
// opening order. An evicted trajectory is scored and metered like any other
// close: every trajectory_closed has its trajectory_quality, and the meter
// sees the same trajectories it would have seen had they timed out.
//
// Trajectory ids come from content: "t_" + base32hex (lowercase, no padding)
// of the first 15 bytes of SHA-256 over
//
//	item("logline/trajectory/v1") item(tenant) uvarint(number of key fields)
//	item(field name) item(field value) ...   item(first span id)
//
// with item(x) = uvarint(len(x)) || x. The alphabet keeps order: ids sort the
// same as text and as bytes.
//
// # Score, meter, candidates
//
// When a trajectory closes, trajectory_closed is followed by its
// trajectory_quality (score 0..100, the sum of the mass, persistence and
// verification points) and, when the meter flags it, diamond_candidate with
// the threshold used. Whether spans are linked, what is scored and what the
// meter flags is the bundle's .lll (its pipeline's guard and its
// validators' when / emit clauses), evaluated by package lll/eval with the
// kernels as Go functions over the engine's state: see Rules. The formula, the fixed-point arithmetic and the meter's
// percentile, tie and rate rules are specified in docs/quality.md.
//
// # Events of one record, in order
//
//  1. shed_derived, if the record moves the tenant's clock into a later
//     event-time minute and the guardrail shed events in the minute left;
//  2. timeout closes (each: closed, quality, candidate);
//  3. the eviction, if the span opens a trajectory past
//     max_open_trajectories;
//  4. the span's edge;
//  5. its rule close, if any.
//
// A tick does 1 and 2 for each tenant in name order; a configuration record
// derives only the key_fields closes, then the evictions down to a lowered
// max_open_trajectories.
//
// # Configuration
//
// TenantConfig holds features and the three policies with the defaults of
// the standard bundle (DefaultTenantConfig). The engine reads no
// configuration syntax: package tenant builds TenantConfig values from
// tenant files and config records, and Validate reports every bad value as
// a *ConfigError that names it as written. A KindConfig record applies from
// its position on; with a nil Config the tenant returns to the engine's
// default. The change of
// close_timeout or window applies to open trajectories at the next span or
// tick; a change of the meter window restarts the tenant's distribution (the
// old slices cannot be re-cut exactly). With the standard bundle,
// features.trajectory off stops linking but lets open trajectories close and
// be scored; features.diamond off suppresses candidates while the meter's
// window keeps taking every score; features.cluster is accepted and has no
// effect.
//
// # Guardrail
//
// derived_events_perf.max_per_minute counts a tenant's derived events per
// event-time minute (floor of its clock to the minute). With on_overload
// shed_derived, events beyond the cap are not emitted and are counted by
// type; when the clock enters a later minute one shed_derived event reports
// the counts (its "minute" member is the start of the minute that shed).
// Shedding changes emission only: linking, scores and the meter go on as if
// nothing had been shed. slow_ingest and reject_429 act on ingest, outside
// this package, and never change derived output.
//
// # State and memory
//
// The open trajectories of a tenant are fixed-size structs in chunks,
// found by key through a map[string]uint32 and threaded by two intrusive
// lists with uint32 links (by last activity and by opening), which are sorted
// by their deadline components because a tenant's clock never goes back; see
// table.go. An open trajectory costs about 200 bytes of heap all told
// (TestOpenTrajectoryMemory); its key is copied out of the span, whose
// strings share the span's whole text. MarshalBinary writes the state in a canonical
// order (open trajectories in opening order, which eviction follows), so
// equal states give equal bytes; UnmarshalBinary restores it, including the
// default configuration and the cursor (LastSeq). max_open_trajectories
// bounds the state of each tenant.
//
// # Simulation
//
// Simulate runs the same Step over a sequence of inputs in a fresh engine and
// summarizes counts, the score distribution and the candidate rate. At the end
// of the input, open trajectories stay open, exactly as after ingesting the
// same records into an empty ledger; SimConfig.CloseAtEnd appends one
// ordinary tick late enough to close them all.
package derive
