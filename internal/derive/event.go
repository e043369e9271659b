package derive

import (
	"strconv"
	"time"

	"github.com/loglineos/loglineos/internal/jsonstr"
)

// EventType is the kind of a derived event.
type EventType uint8

// The derived event types. Their names are part of the wire format.
const (
	EdgeEvent      EventType = iota + 1 // "trajectory_edge"
	ClosedEvent                         // "trajectory_closed"
	QualityEvent                        // "trajectory_quality"
	CandidateEvent                      // "diamond_candidate"
	ShedEvent                           // "shed_derived"
)

// numSheddable is the number of event types a guardrail can shed (all but
// shed_derived itself); ShedCounts is indexed by type-1.
const numSheddable = 4

func (t EventType) String() string {
	switch t {
	case EdgeEvent:
		return "trajectory_edge"
	case ClosedEvent:
		return "trajectory_closed"
	case QualityEvent:
		return "trajectory_quality"
	case CandidateEvent:
		return "diamond_candidate"
	case ShedEvent:
		return "shed_derived"
	}
	return "unknown"
}

// CloseReason says why a trajectory closed.
type CloseReason uint8

// Close reasons; their names are part of the wire format.
const (
	ReasonTimeout CloseReason = iota + 1 // "timeout": close_timeout or window elapsed
	ReasonRule                           // "rule": close_on_did matched, or key_fields changed
	ReasonEvicted                        // "evicted": the oldest open one, past max_open_trajectories
)

func (r CloseReason) String() string {
	switch r {
	case ReasonTimeout:
		return "timeout"
	case ReasonRule:
		return "rule"
	case ReasonEvicted:
		return "evicted"
	}
	return "unknown"
}

// TrajectoryIDSize is the number of SHA-256 bytes kept in a trajectory id.
const TrajectoryIDSize = 15

// TrajectoryID identifies a trajectory: the first 15 bytes (120 bits) of a
// SHA-256 over its tenant, key and first span id (see doc.go). Its text form
// is "t_" followed by the 24-character encoding of those bytes in the RFC 4648
// "base32hex" alphabet, lowercase (0-9a-v); 15 bytes are exactly 24 base32
// characters, so there is no padding. That alphabet preserves order: ids sort
// the same as text and as bytes.
type TrajectoryID [TrajectoryIDSize]byte

// String returns the text form, e.g. "t_glkb9gvs0n6e2me0quvomh3r".
func (id TrajectoryID) String() string { return string(id.AppendText(nil)) }

// AppendText appends the text form to dst.
func (id TrajectoryID) AppendText(dst []byte) []byte {
	const alphabet = "0123456789abcdefghijklmnopqrstuv"
	dst = append(dst, 't', '_')
	for i := 0; i < TrajectoryIDSize; i += 5 {
		// 5 bytes = 40 bits = 8 characters.
		v := uint64(id[i])<<32 | uint64(id[i+1])<<24 | uint64(id[i+2])<<16 | uint64(id[i+3])<<8 | uint64(id[i+4])
		for s := 35; s >= 0; s -= 5 {
			dst = append(dst, alphabet[(v>>uint(s))&31])
		}
	}
	return dst
}

// Components are the three parts of a quality score, in points.
type Components struct {
	Mass         int
	Persistence  int
	Verification int
}

// ShedCounts counts shed events by type; index EventType-1.
type ShedCounts [numSheddable]uint64

// Event is one derived event. Which fields are meaningful depends on Type:
//
//	trajectory_edge     Trajectory, Position, SrcSpanID, This
//	trajectory_closed   Trajectory, Reason
//	trajectory_quality  Trajectory, Score, Components
//	diamond_candidate   Trajectory, Score, Threshold
//	shed_derived        ShedMinute, Shed
//
// Every event carries Tenant, TS (the tenant's derivation clock, Unix
// nanoseconds, UTC) and Seq (the ledger record whose processing produced it).
// The wire form is AppendJSON's.
type Event struct {
	Type       EventType
	Reason     CloseReason
	Trajectory TrajectoryID
	Position   uint32
	Score      int
	Threshold  int
	Components Components
	Tenant     string
	TS         int64
	Seq        uint64
	SrcSpanID  string
	This       string
	ShedMinute int64 // start of the shed minute, Unix nanoseconds
	Shed       ShedCounts
	// Lifetime is, for a trajectory_closed event, the event time from the
	// trajectory's earliest span to its close, in nanoseconds (for the
	// close latency metric; not part of the event's JSON).
	Lifetime int64
}

// Time returns TS as a time.Time in UTC.
func (ev Event) Time() time.Time { return time.Unix(0, ev.TS).UTC() }

// AppendJSON appends the canonical JSON form of ev to dst: members sorted by
// name, no insignificant white space, strings escaped as RFC 8785 does
// (only '"', '\\' and control characters; \b \f \n \r \t or \u00xx with
// lowercase hex; invalid UTF-8 becomes U+FFFD), timestamps as RFC 3339 UTC
// with trailing zeros of the fraction trimmed (time.RFC3339Nano). The shapes:
//
//	{"position":3,"seq":41,"src_span_id":"s_1","tenant":"t","this":"order:1","trajectory_id":"t_...","ts":"...","type":"trajectory_edge"}
//	{"reason":"timeout","seq":41,"tenant":"t","trajectory_id":"t_...","ts":"...","type":"trajectory_closed"}
//	{"components":{"mass":31,"persistence":24,"verification":23},"score":78,"seq":41,"tenant":"t","trajectory_id":"t_...","ts":"...","type":"trajectory_quality"}
//	{"score":78,"seq":41,"tenant":"t","threshold":76,"trajectory_id":"t_...","ts":"...","type":"diamond_candidate"}
//	{"minute":"2025-10-05T22:18:00Z","seq":41,"shed":{"trajectory_edge":12},"tenant":"t","ts":"...","type":"shed_derived"}
//
// shed_derived lists only the types with a non-zero count.
func (ev Event) AppendJSON(dst []byte) []byte {
	switch ev.Type {
	case EdgeEvent:
		dst = append(dst, `{"position":`...)
		dst = strconv.AppendUint(dst, uint64(ev.Position), 10)
		dst = ev.appendSeq(dst)
		dst = append(dst, `,"src_span_id":`...)
		dst = jsonstr.AppendCanonical(dst, ev.SrcSpanID)
		dst = ev.appendTenant(dst)
		dst = append(dst, `,"this":`...)
		dst = jsonstr.AppendCanonical(dst, ev.This)
		dst = ev.appendTail(dst, true)
	case ClosedEvent:
		dst = append(dst, `{"reason":"`...)
		dst = append(dst, ev.Reason.String()...)
		dst = append(dst, '"')
		dst = ev.appendSeq(dst)
		dst = ev.appendTenant(dst)
		dst = ev.appendTail(dst, true)
	case QualityEvent:
		dst = append(dst, `{"components":{"mass":`...)
		dst = strconv.AppendInt(dst, int64(ev.Components.Mass), 10)
		dst = append(dst, `,"persistence":`...)
		dst = strconv.AppendInt(dst, int64(ev.Components.Persistence), 10)
		dst = append(dst, `,"verification":`...)
		dst = strconv.AppendInt(dst, int64(ev.Components.Verification), 10)
		dst = append(dst, `},"score":`...)
		dst = strconv.AppendInt(dst, int64(ev.Score), 10)
		dst = ev.appendSeq(dst)
		dst = ev.appendTenant(dst)
		dst = ev.appendTail(dst, true)
	case CandidateEvent:
		dst = append(dst, `{"score":`...)
		dst = strconv.AppendInt(dst, int64(ev.Score), 10)
		dst = ev.appendSeq(dst)
		dst = ev.appendTenant(dst)
		dst = append(dst, `,"threshold":`...)
		dst = strconv.AppendInt(dst, int64(ev.Threshold), 10)
		dst = ev.appendTail(dst, true)
	case ShedEvent:
		dst = append(dst, `{"minute":"`...)
		dst = appendTime(dst, ev.ShedMinute)
		dst = append(dst, '"')
		dst = ev.appendSeq(dst)
		dst = append(dst, `,"shed":{`...)
		// Sorted member names: diamond_candidate, trajectory_closed,
		// trajectory_edge, trajectory_quality.
		first := true
		for _, t := range [...]EventType{CandidateEvent, ClosedEvent, EdgeEvent, QualityEvent} {
			n := ev.Shed[t-1]
			if n == 0 {
				continue
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(dst, '"')
			dst = append(dst, t.String()...)
			dst = append(dst, `":`...)
			dst = strconv.AppendUint(dst, n, 10)
		}
		dst = append(dst, '}')
		dst = ev.appendTenant(dst)
		dst = ev.appendTail(dst, false)
	default:
		dst = append(dst, `{"type":"unknown"}`...)
	}
	return dst
}

func (ev *Event) appendSeq(dst []byte) []byte {
	dst = append(dst, `,"seq":`...)
	return strconv.AppendUint(dst, ev.Seq, 10)
}

func (ev *Event) appendTenant(dst []byte) []byte {
	dst = append(dst, `,"tenant":`...)
	return jsonstr.AppendCanonical(dst, ev.Tenant)
}

// appendTail appends trajectory_id (when withID), ts and type, and closes the
// object.
func (ev *Event) appendTail(dst []byte, withID bool) []byte {
	if withID {
		dst = append(dst, `,"trajectory_id":"`...)
		dst = ev.Trajectory.AppendText(dst)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"ts":"`...)
	dst = appendTime(dst, ev.TS)
	dst = append(dst, `","type":"`...)
	dst = append(dst, ev.Type.String()...)
	return append(dst, `"}`...)
}

// appendTime formats Unix nanoseconds as RFC 3339 in UTC with the fraction's
// trailing zeros trimmed, independent of the process's time zone.
func appendTime(dst []byte, ns int64) []byte {
	return time.Unix(0, ns).UTC().AppendFormat(dst, time.RFC3339Nano)
}
