package derive

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/suggest"
)

// ErrInvalidConfig is wrapped by every error that reports a bad policy
// value, whether it comes from TenantConfig.Validate or from the parser of
// tenant configurations (package tenant). The concrete errors are
// *ConfigError values.
var ErrInvalidConfig = errors.New("derive: invalid config")

// ConfigError reports one bad policy value. Path names the value as it is
// written in a tenant configuration ("policies.quality_meter.min_score").
type ConfigError struct {
	Path string
	Msg  string
}

func (e *ConfigError) Error() string { return "derive: " + e.Path + ": " + e.Msg }

// Unwrap makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// Features are a tenant's feature flags (docs/quality.md).
//
// Trajectory turns the linker on: spans are linked, trajectories close and
// are scored. When it is turned off, new spans are no longer linked, but the
// trajectories already open still close by timeout and are scored, so that
// nothing is left half-derived. Diamond turns the candidate filter on: with it
// off the meter still records every score (so the distribution stays current),
// but no diamond_candidate is emitted. Cluster is accepted and has no effect
// (the span_cluster pilot is not part of this core).
type Features struct {
	Trajectory bool
	Diamond    bool
	Cluster    bool
}

// LinkerPolicy is the trajectory_linker policy.
type LinkerPolicy struct {
	// KeyFields names the span fields whose values, all equal, put two spans
	// of a tenant into the same open trajectory. Allowed: id, tenant, who,
	// did, this, status, when (the "when" member as sent). Default ["this"].
	KeyFields []string
	// Window is the maximum age of a trajectory (derivation-clock time since
	// it opened). Default 24h.
	Window time.Duration
	// CloseTimeout is how long a trajectory stays open without a new span
	// (derivation-clock time). Default 6h.
	CloseTimeout time.Duration
	// Exceptions lists "field:glob" entries; a span whose field matches the
	// glob (path.Match syntax) is never linked. Default ["this:heartbeat-*"].
	Exceptions []string
	// CloseOnDid lists "did" values that close the trajectory of the span
	// that carries them, with reason "rule", right after linking it. Exact
	// match. Default empty.
	CloseOnDid []string
	// MaxOpen (max_open_trajectories) bounds the tenant's open
	// trajectories: a span that would open one more first closes the
	// oldest open one (by opening, in ledger order) with reason "evicted",
	// scored like any close. It bounds the engine's memory per tenant.
	// Default DefaultMaxOpenTrajectories.
	MaxOpen int
}

// Weights are the quality score weights in hundredths: 0.4 in a policy is 40
// here. They must sum to exactly 100, so that a perfect trajectory scores
// exactly 100 and no rounding can push a score above 100.
type Weights struct {
	Mass         int
	Persistence  int
	Verification int
}

// MeterPolicy is the quality_meter policy: the score's knobs and the meter's.
type MeterPolicy struct {
	// Weights default to {mass 0.40, persistence 0.30, verification 0.30}.
	Weights Weights
	// MassSaturation is the span count at which mass is full. Default 10.
	MassSaturation int
	// PersistenceSaturation is the first-to-last event-time span at which
	// persistence is full. Default 12h.
	PersistenceSaturation time.Duration
	// ConfirmerSaturation is the number of distinct confirmers (1..4) that
	// earns full confirmer credit. Default 3.
	ConfirmerSaturation int
	// PercentileTarget is "pNN" or "pNN.N" (1 <= NN.N <= 99.9). Default "p96".
	PercentileTarget string
	// MinScore is the lowest score that can become a candidate (0..100).
	// Default 60.
	MinScore int
	// Warmup is the number of scores the sliding window must hold before any
	// candidate is flagged. Default 100.
	Warmup int
	// Window is the event-time width of the meter's sliding window (at least
	// one minute). Default 168h (seven days).
	Window time.Duration
	// TieRationing (tie_rationing) admits, of the scores equal to the
	// threshold, only the share the tail quota has room for (the tie
	// accumulator); off, every score equal to the threshold is at or above
	// the target. Default on.
	TieRationing bool
	// CreditBudget (credit_budget) holds candidates to the tail share of the
	// scores decided after warm-up (the credit accumulator, capped at
	// CreditCap); off, every score the meter's guard admits is a candidate.
	// Default on.
	CreditBudget bool
}

// PerfPolicy is the derived_events_perf policy.
type PerfPolicy struct {
	// MaxPerMinute caps the derived events of a tenant per event-time
	// minute; 0 means no cap. Default 0.
	MaxPerMinute int
	// OnOverload is "shed_derived", "slow_ingest" or "reject_429". Only
	// shed_derived changes derived output (events over the cap are shed and
	// accounted for in a shed_derived event); the other two act on ingest,
	// outside this package, and leave derivation untouched. Default
	// "shed_derived".
	OnOverload string
}

// TenantConfig is the complete derivation configuration of one tenant:
// features and policies. It is a value; build it with DefaultTenantConfig
// (or read it from a tenant configuration with package tenant) and check it
// with Validate.
type TenantConfig struct {
	Features Features
	Linker   LinkerPolicy
	Meter    MeterPolicy
	Perf     PerfPolicy
}

// Default policy values. They are part of the derivation ABI v1: changing one
// changes derived output, so it is a change of the standard bundle.
const (
	DefaultWindow                = 24 * time.Hour
	DefaultCloseTimeout          = 6 * time.Hour
	DefaultMassSaturation        = 10
	DefaultPersistenceSaturation = 12 * time.Hour
	DefaultConfirmerSaturation   = 3
	DefaultPercentileTarget      = "p96"
	DefaultMinScore              = 60
	DefaultWarmup                = 100
	DefaultMeterWindow           = 168 * time.Hour
	DefaultTieRationing          = true
	DefaultCreditBudget          = true
	DefaultOnOverload            = "shed_derived"
	// DefaultMaxOpenTrajectories is max_open_trajectories' default: a
	// million open trajectories cost a tenant about 200 MB of the server's
	// heap (docs/BENCHMARKS.md), and a million things in flight within
	// close_timeout is more than the tenants this default is for have.
	DefaultMaxOpenTrajectories = 1_000_000

	// MaxConfirmerSaturation bounds ConfirmerSaturation: a trajectory
	// remembers at most this many distinct confirmers.
	MaxConfirmerSaturation = 4
)

// DefaultTenantConfig returns the configuration of the standard bundle:
// trajectory and diamond on, cluster off, and the default policies.
func DefaultTenantConfig() TenantConfig {
	return TenantConfig{
		Features: Features{Trajectory: true, Diamond: true},
		Linker:   DefaultLinkerPolicy(),
		Meter:    DefaultMeterPolicy(),
		Perf:     DefaultPerfPolicy(),
	}
}

// DefaultLinkerPolicy returns the default trajectory_linker policy.
func DefaultLinkerPolicy() LinkerPolicy {
	return LinkerPolicy{
		KeyFields:    []string{"this"},
		Window:       DefaultWindow,
		CloseTimeout: DefaultCloseTimeout,
		Exceptions:   []string{"this:heartbeat-*"},
		CloseOnDid:   []string{},
		MaxOpen:      DefaultMaxOpenTrajectories,
	}
}

// DefaultMeterPolicy returns the default quality_meter policy.
func DefaultMeterPolicy() MeterPolicy {
	return MeterPolicy{
		Weights:               Weights{Mass: 40, Persistence: 30, Verification: 30},
		MassSaturation:        DefaultMassSaturation,
		PersistenceSaturation: DefaultPersistenceSaturation,
		ConfirmerSaturation:   DefaultConfirmerSaturation,
		PercentileTarget:      DefaultPercentileTarget,
		MinScore:              DefaultMinScore,
		Warmup:                DefaultWarmup,
		Window:                DefaultMeterWindow,
		TieRationing:          DefaultTieRationing,
		CreditBudget:          DefaultCreditBudget,
	}
}

// DefaultPerfPolicy returns the default derived_events_perf policy.
func DefaultPerfPolicy() PerfPolicy {
	return PerfPolicy{OnOverload: DefaultOnOverload}
}

// spanField identifies a span field usable in key_fields and exceptions.
type spanField uint8

const (
	fieldID spanField = iota
	fieldTenant
	fieldWho
	fieldDid
	fieldThis
	fieldStatus
	fieldWhen
)

// fieldNames is indexed by spanField. It is a function, not a variable, so the
// package holds no mutable state.
func fieldNames() []string {
	return []string{"id", "tenant", "who", "did", "this", "status", "when"}
}

func lookupField(name string) (spanField, bool) {
	for i, n := range fieldNames() {
		if n == name {
			return spanField(i), true
		}
	}
	return 0, false
}

// Validate reports every bad value of c, joined (errors.Join), each a
// *ConfigError; nil when c is valid.
func (c TenantConfig) Validate() error {
	_, err := compile(c)
	return err
}

// Limits on policy values, so that fixed-point arithmetic cannot overflow and
// state stays bounded.
const (
	maxKeyFields      = 8
	maxMassSaturation = 1 << 20
	maxWarmup         = 1 << 40
	maxMaxPerMinute   = 1 << 31
	maxListEntries    = 1024
	maxMaxOpen        = 1 << 31 // slots are numbered in 32 bits
)

// compiled is a validated TenantConfig in the form the engine uses.
type compiled struct {
	src TenantConfig

	keyFields  []spanField
	exceptions []matcher
	closeOnDid map[string]struct{} // lookups only; never iterated
	timeout    int64               // ns
	window     int64               // ns
	maxOpen    int                 // >= 1

	weights    [3]uint64 // hundredths: mass, persistence, verification
	massSat    uint64
	persistSat uint64 // ns
	confSat    uint64
	qpm        uint64 // percentile target in permille (p96 -> 960)
	minScore   int
	warmup     uint64
	meterWin   int64 // ns
	tieRation  bool
	credit     bool

	maxPerMinute uint64 // 0: no cap
	shed         bool

	// Set by Engine.bind from the engine's Rules.
	env    *eval.Env // the features and policies as .lll programs see them
	linkOn bool      // the linking pipeline's guard holds: spans are linked
}

type configErrors struct{ errs []error }

func (ce *configErrors) add(path, format string, args ...any) {
	ce.errs = append(ce.errs, &ConfigError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (ce *configErrors) err() error { return errors.Join(ce.errs...) }

const (
	pathLinker = "policies.trajectory_linker."
	pathMeter  = "policies.quality_meter."
	pathPerf   = "policies.derived_events_perf."
)

// compile checks c and turns it into the form the engine uses; the error
// joins every problem, each a *ConfigError.
func compile(c TenantConfig) (*compiled, error) {
	var ce configErrors
	k := &compiled{src: cloneConfig(c)}
	k.compileLinker(c.Linker, &ce)
	k.compileMeter(c.Meter, &ce)
	k.compilePerf(c.Perf, &ce)
	if err := ce.err(); err != nil {
		return nil, err
	}
	return k, nil
}

// compileLinker checks the trajectory_linker policy and sets its part of k.
func (k *compiled) compileLinker(l LinkerPolicy, ce *configErrors) {
	if len(l.KeyFields) == 0 || len(l.KeyFields) > maxKeyFields {
		ce.add(pathLinker+"key_fields", "must list 1 to %d fields, got %d", maxKeyFields, len(l.KeyFields))
	}
	seen := map[string]bool{}
	for i, f := range l.KeyFields {
		id, ok := lookupField(f)
		switch {
		case !ok:
			ce.add(fmt.Sprintf("%skey_fields[%d]", pathLinker, i), "unknown span field %q%s (allowed: %s)", f, suggest.DidYouMean(f, fieldNames()), strings.Join(fieldNames(), ", "))
		case seen[f]:
			ce.add(fmt.Sprintf("%skey_fields[%d]", pathLinker, i), "field %q listed twice", f)
		default:
			k.keyFields = append(k.keyFields, id)
		}
		seen[f] = true
	}
	if l.Window <= 0 {
		ce.add(pathLinker+"window", "must be a positive duration, got %v", l.Window)
	}
	if l.CloseTimeout <= 0 {
		ce.add(pathLinker+"close_timeout", "must be a positive duration, got %v", l.CloseTimeout)
	}
	k.window, k.timeout = int64(l.Window), int64(l.CloseTimeout)
	if len(l.Exceptions) > maxListEntries {
		ce.add(pathLinker+"exceptions", "at most %d entries, got %d", maxListEntries, len(l.Exceptions))
	}
	for i, x := range l.Exceptions {
		m, err := compileException(x)
		if err != "" {
			ce.add(fmt.Sprintf("%sexceptions[%d]", pathLinker, i), "%s", err)
			continue
		}
		k.exceptions = append(k.exceptions, m)
	}
	if len(l.CloseOnDid) > maxListEntries {
		ce.add(pathLinker+"close_on_did", "at most %d entries, got %d", maxListEntries, len(l.CloseOnDid))
	}
	k.closeOnDid = make(map[string]struct{}, len(l.CloseOnDid))
	for i, d := range l.CloseOnDid {
		if d == "" {
			ce.add(fmt.Sprintf("%sclose_on_did[%d]", pathLinker, i), "must not be empty")
		}
		k.closeOnDid[d] = struct{}{}
	}
	if l.MaxOpen < 1 || l.MaxOpen > maxMaxOpen {
		ce.add(pathLinker+"max_open_trajectories", "must be a count between 1 and %d, got %d", int64(maxMaxOpen), l.MaxOpen)
	}
	k.maxOpen = min(max(l.MaxOpen, 1), maxMaxOpen)
}

// compileMeter checks the quality_meter policy and sets its part of k.
func (k *compiled) compileMeter(m MeterPolicy, ce *configErrors) {
	w := m.Weights
	for _, x := range []struct {
		name string
		v    int
	}{{"mass", w.Mass}, {"persistence", w.Persistence}, {"verification", w.Verification}} {
		if x.v < 0 || x.v > 100 {
			ce.add(pathMeter+"weights."+x.name, "must be between 0 and 1 (0 and 100 hundredths), got %s", hundredths(x.v))
		}
	}
	if sum := w.Mass + w.Persistence + w.Verification; sum != 100 {
		ce.add(pathMeter+"weights", "must sum to 1, got %s (%s + %s + %s)", hundredths(sum), hundredths(w.Mass), hundredths(w.Persistence), hundredths(w.Verification))
	}
	k.weights = [3]uint64{uint64(max(w.Mass, 0)), uint64(max(w.Persistence, 0)), uint64(max(w.Verification, 0))}
	if m.MassSaturation < 1 || m.MassSaturation > maxMassSaturation {
		ce.add(pathMeter+"mass_saturation", "must be a span count between 1 and %d, got %d", maxMassSaturation, m.MassSaturation)
	}
	k.massSat = uint64(max(m.MassSaturation, 1))
	if m.PersistenceSaturation <= 0 {
		ce.add(pathMeter+"persistence_saturation", "must be a positive duration, got %v", m.PersistenceSaturation)
	}
	k.persistSat = uint64(max(m.PersistenceSaturation, 1))
	if m.ConfirmerSaturation < 1 || m.ConfirmerSaturation > MaxConfirmerSaturation {
		ce.add(pathMeter+"confirmer_saturation", "must be between 1 and %d, got %d", MaxConfirmerSaturation, m.ConfirmerSaturation)
	}
	k.confSat = uint64(min(max(m.ConfirmerSaturation, 1), MaxConfirmerSaturation))
	if q, ok := parsePercentile(m.PercentileTarget); ok {
		k.qpm = q
	} else {
		ce.add(pathMeter+"percentile_target", `want "pNN" or "pNN.N" between p1 and p99.9 (e.g. "p96"), got %q`, m.PercentileTarget)
	}
	if m.MinScore < 0 || m.MinScore > 100 {
		ce.add(pathMeter+"min_score", "must be between 0 and 100, got %d", m.MinScore)
	}
	k.minScore = m.MinScore
	if m.Warmup < 0 || m.Warmup > maxWarmup {
		ce.add(pathMeter+"warmup", "must be a count between 0 and %d, got %d", int64(maxWarmup), m.Warmup)
	}
	k.warmup = uint64(max(m.Warmup, 0))
	if m.Window < time.Minute {
		ce.add(pathMeter+"window", "must be at least 1m, got %v", m.Window)
	}
	k.meterWin = int64(m.Window)
	k.tieRation, k.credit = m.TieRationing, m.CreditBudget
}

// compilePerf checks the derived_events_perf policy and sets its part of k.
func (k *compiled) compilePerf(p PerfPolicy, ce *configErrors) {
	if p.MaxPerMinute < 0 || p.MaxPerMinute > maxMaxPerMinute {
		ce.add(pathPerf+"max_per_minute", "must be between 0 (no cap) and %d, got %d", int64(maxMaxPerMinute), p.MaxPerMinute)
	}
	k.maxPerMinute = uint64(max(p.MaxPerMinute, 0))
	switch p.OnOverload {
	case "shed_derived":
		k.shed = true
	case "slow_ingest", "reject_429":
	default:
		ce.add(pathPerf+"on_overload", `want "shed_derived", "slow_ingest" or "reject_429", got %q%s`, p.OnOverload, suggest.DidYouMean(p.OnOverload, []string{"shed_derived", "slow_ingest", "reject_429"}))
	}
}

func hundredths(v int) string {
	neg := v < 0
	if neg {
		v = -v
	}
	s := strconv.Itoa(v/100) + "." + fmt.Sprintf("%02d", v%100)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if neg {
		s = "-" + s
	}
	return s
}

// parsePercentile turns "p96" into 960 and "p99.9" into 999 (permille).
func parsePercentile(s string) (uint64, bool) {
	if len(s) < 2 || s[0] != 'p' {
		return 0, false
	}
	num := s[1:]
	frac := "0"
	if i := strings.IndexByte(num, '.'); i >= 0 {
		num, frac = num[:i], num[i+1:]
		if len(frac) != 1 {
			return 0, false
		}
	}
	if len(num) == 0 || len(num) > 2 || !allDigits(num) || !allDigits(frac) {
		return 0, false
	}
	n, _ := strconv.Atoi(num)
	f, _ := strconv.Atoi(frac)
	q := uint64(n*10 + f)
	if q < 10 || q > 999 {
		return 0, false
	}
	return q, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// matcher is one compiled exception.
type matcher struct {
	field spanField
	kind  uint8 // matchExact, matchPrefix, matchGlob
	pat   string
}

const (
	matchExact uint8 = iota
	matchPrefix
	matchGlob
)

func compileException(x string) (matcher, string) {
	name, pat, ok := strings.Cut(x, ":")
	if !ok {
		return matcher{}, fmt.Sprintf(`want "field:glob" (e.g. "this:heartbeat-*"), got %q`, x)
	}
	f, ok := lookupField(name)
	if !ok {
		return matcher{}, fmt.Sprintf("unknown span field %q in %q%s (allowed: %s)", name, x, suggest.DidYouMean(name, fieldNames()), strings.Join(fieldNames(), ", "))
	}
	if _, err := path.Match(pat, ""); err != nil {
		return matcher{}, fmt.Sprintf("bad glob %q: %v", pat, err)
	}
	m := matcher{field: f, kind: matchGlob, pat: pat}
	switch i := strings.IndexAny(pat, `*?[\`); {
	case i < 0:
		m.kind = matchExact
	case i == len(pat)-1 && pat[i] == '*' && !strings.Contains(pat, "/"):
		// "prefix*": path.Match's '*' does not cross '/', so the fast path
		// must check that the rest of the value holds no '/'.
		m.kind, m.pat = matchPrefix, pat[:i]
	}
	return m, ""
}

func (m *matcher) match(v string) bool {
	switch m.kind {
	case matchExact:
		return v == m.pat
	case matchPrefix:
		return strings.HasPrefix(v, m.pat) && !strings.Contains(v[len(m.pat):], "/")
	}
	ok, _ := path.Match(m.pat, v)
	return ok
}

func cloneConfig(c TenantConfig) TenantConfig {
	c.Linker.KeyFields = cloneStrings(c.Linker.KeyFields)
	c.Linker.Exceptions = cloneStrings(c.Linker.Exceptions)
	c.Linker.CloseOnDid = cloneStrings(c.Linker.CloseOnDid)
	return c
}

func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append(make([]string, 0, len(s)), s...)
}
