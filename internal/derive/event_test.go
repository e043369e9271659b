package derive

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// wantID computes a trajectory id from its documented definition,
// independently of the engine's code.
func wantID(tenant string, fields [][2]string, firstSpan string) TrajectoryID {
	var b []byte
	item := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	item("logline/trajectory/v1")
	item(tenant)
	b = binary.AppendUvarint(b, uint64(len(fields)))
	for _, f := range fields {
		item(f[0])
		item(f[1])
	}
	item(firstSpan)
	sum := sha256.Sum256(b)
	var id TrajectoryID
	copy(id[:], sum[:])
	return id
}

func TestTrajectoryIDText(t *testing.T) {
	id := wantID("t_voulezvous", [][2]string{{"this", "order:12345"}}, "s_01JD8X3K2M4N5P6Q7R8S9T0V1W")
	want := "t_" + strings.ToLower(base32.HexEncoding.EncodeToString(id[:]))
	if got := id.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if len(id.String()) != 26 {
		t.Errorf("len = %d, want 26", len(id.String()))
	}
	// Order of text = order of bytes.
	a, b := TrajectoryID{0x00, 0xff}, TrajectoryID{0x01}
	if !(a.String() < b.String()) {
		t.Errorf("%s should sort before %s", a, b)
	}
}

func TestEventJSON(t *testing.T) {
	id := wantID("t_voulezvous", [][2]string{{"this", "order:12345"}}, "s_1")
	ids := id.String()
	ts := time.Date(2025, 10, 5, 22, 18, 7, 120000000, time.UTC).UnixNano()
	tests := []struct {
		ev   Event
		want string
	}{{
		Event{Type: EdgeEvent, Trajectory: id, Position: 3, SrcSpanID: "s_1", This: "order:12345", Tenant: "t_voulezvous", TS: ts, Seq: 41},
		`{"position":3,"seq":41,"src_span_id":"s_1","tenant":"t_voulezvous","this":"order:12345","trajectory_id":"` + ids + `","ts":"2025-10-05T22:18:07.12Z","type":"trajectory_edge"}`,
	}, {
		Event{Type: ClosedEvent, Trajectory: id, Reason: ReasonTimeout, Tenant: "t_voulezvous", TS: ts, Seq: 41},
		`{"reason":"timeout","seq":41,"tenant":"t_voulezvous","trajectory_id":"` + ids + `","ts":"2025-10-05T22:18:07.12Z","type":"trajectory_closed"}`,
	}, {
		Event{Type: ClosedEvent, Trajectory: id, Reason: ReasonRule, Tenant: "t", TS: 0, Seq: 1},
		`{"reason":"rule","seq":1,"tenant":"t","trajectory_id":"` + ids + `","ts":"1970-01-01T00:00:00Z","type":"trajectory_closed"}`,
	}, {
		Event{Type: QualityEvent, Trajectory: id, Score: 78, Components: Components{31, 24, 23}, Tenant: "t_voulezvous", TS: ts, Seq: 41},
		`{"components":{"mass":31,"persistence":24,"verification":23},"score":78,"seq":41,"tenant":"t_voulezvous","trajectory_id":"` + ids + `","ts":"2025-10-05T22:18:07.12Z","type":"trajectory_quality"}`,
	}, {
		Event{Type: CandidateEvent, Trajectory: id, Score: 78, Threshold: 76, Tenant: "t_voulezvous", TS: ts, Seq: 41},
		`{"score":78,"seq":41,"tenant":"t_voulezvous","threshold":76,"trajectory_id":"` + ids + `","ts":"2025-10-05T22:18:07.12Z","type":"diamond_candidate"}`,
	}, {
		Event{Type: ShedEvent, ShedMinute: ts - ts%int64(time.Minute), Shed: ShedCounts{12, 0, 3, 1}, Tenant: "t", TS: ts, Seq: 41},
		`{"minute":"2025-10-05T22:18:00Z","seq":41,"shed":{"diamond_candidate":1,"trajectory_edge":12,"trajectory_quality":3},"tenant":"t","ts":"2025-10-05T22:18:07.12Z","type":"shed_derived"}`,
	}, {
		Event{Type: EdgeEvent, Trajectory: id, SrcSpanID: "a\"b\\c\n\t\x01\x7f", This: "ünï\u2028\xff", Tenant: "<t&>", TS: -1, Seq: 0},
		`{"position":0,"seq":0,"src_span_id":"a\"b\\c\n\t\u0001` + "\x7f" + `","tenant":"<t&>","this":"ünï` + "\u2028\ufffd" + `","trajectory_id":"` + ids + `","ts":"1969-12-31T23:59:59.999999999Z","type":"trajectory_edge"}`,
	}}
	for _, tc := range tests {
		t.Run(tc.ev.Type.String(), func(t *testing.T) {
			got := string(tc.ev.AppendJSON([]byte("prefix:")))
			if diff := cmp.Diff("prefix:"+tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// The encoding does not depend on the process's time zone or on the
// location of the span's time.
func TestEventJSONIgnoresLocation(t *testing.T) {
	old := time.Local
	defer func() { time.Local = old }()
	e1 := newEngine(t, nil)
	in := spanIn(1, "s1", "order:1", 90*time.Minute)
	var a []byte
	evs, _ := e1.Step(nil, in)
	a = evs[0].AppendJSON(a)

	time.Local = time.FixedZone("X", -7*3600)
	e2 := newEngine(t, nil)
	in2 := spanIn(1, "s1", "order:1", 90*time.Minute)
	in2.Span.When = in2.Span.When.In(time.FixedZone("Y", 5*3600+1800))
	var b []byte
	evs, _ = e2.Step(nil, in2)
	b = evs[0].AppendJSON(b)
	if string(a) != string(b) {
		t.Errorf("zone changed the output:\n%s\n%s", a, b)
	}
	if !strings.Contains(string(a), `"ts":"2025-10-05T01:30:00Z"`) {
		t.Errorf("ts not UTC: %s", a)
	}
}
