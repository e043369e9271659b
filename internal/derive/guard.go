package derive

// minuteNs is one event-time minute.
const minuteNs = int64(60e9)

// guard is the derived_events_perf guardrail of one tenant. It counts the
// tenant's derived events per event-time minute (the minute of the tenant's
// clock, floor(clock / 1m)); once max_per_minute is reached and on_overload
// is shed_derived, further events of that minute are shed (not emitted) and
// counted by type. When the clock enters a later minute, one shed_derived
// event reports the counts of the minute that ended, before anything else
// that minute derives. shed_derived itself is never counted or shed.
//
// Shedding changes only what is emitted: the linker, the scores and the meter
// go on exactly as if nothing had been shed.
type guard struct {
	started bool
	minute  int64 // floor(clock / minuteNs)
	count   uint64
	shed    ShedCounts
}

// roll moves the guard to the minute of t's clock, emitting shed_derived for
// the minute it leaves if anything was shed in it.
func (g *guard) roll(dst []Event, t *tenant, seq uint64) []Event {
	m := floorDiv(t.clock, minuteNs)
	if !g.started {
		g.started, g.minute = true, m
		return dst
	}
	if m == g.minute {
		return dst
	}
	if g.shed != (ShedCounts{}) {
		dst = append(dst, Event{
			Type:       ShedEvent,
			Tenant:     t.name,
			TS:         t.clock,
			Seq:        seq,
			ShedMinute: g.minute * minuteNs,
			Shed:       g.shed,
		})
	}
	g.minute, g.count, g.shed = m, 0, ShedCounts{}
	return dst
}

// emit appends ev unless the guardrail sheds it.
func (t *tenant) emit(dst []Event, ev Event) []Event {
	g := &t.guard
	if k := t.cfg; k.shed && k.maxPerMinute > 0 && g.count >= k.maxPerMinute {
		g.shed[ev.Type-1]++
		t.stats.Shed[ev.Type-1]++
		return dst
	}
	g.count++
	return append(dst, ev)
}
