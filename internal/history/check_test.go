package history

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// body returns a small canonical span body for id.
func body(tenant, id string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"tenant":%q}`, id, tenant)
}

// leafOf is a stand-in leaf hash of a record.
func leafOf(seq uint64, body []byte) ledgerfmt.Hash {
	h := sha256.New()
	binary.Write(h, binary.BigEndian, seq)
	h.Write(body)
	return ledgerfmt.Hash(h.Sum(nil))
}

// rec is the record of span (tenant, id) with its usual body at seq.
func rec(seq uint64, tenant, id string) Record {
	b := body(tenant, id)
	return Record{Seq: seq, Tenant: tenant, SpanID: id, Body: b, Leaf: leafOf(seq, b)}
}

// receipt is the receipt of rec(seq, tenant, id).
func receipt(seq uint64, tenant, id string) ledgerfmt.Receipt {
	return ledgerfmt.Receipt{Op: ledgerfmt.OpAppend, Tenant: tenant, SpanID: id, Seq: seq, Leaf: leafOf(seq, body(tenant, id))}
}

// send invokes the span (tenant, id) with its usual body.
func send(h *History, client, tenant, id string) *Op {
	return h.Invoke(client, tenant, id, body(tenant, id))
}

// counts returns the report's nonzero anomaly counts.
func counts(r *Report) map[Kind]int {
	m := map[Kind]int{}
	for _, a := range r.Anomalies {
		m[a.Kind]++
	}
	return m
}

func TestCheckClean(t *testing.T) {
	h := &History{}
	// c1 and c2 send concurrently: either order in the ledger is right.
	a, b := send(h, "c1", "t", "a"), send(h, "c2", "t", "b")
	b.Ok(receipt(1, "t", "b"))
	a.Ok(receipt(2, "t", "a"))
	// An indeterminate operation whose span was stored, one whose span was
	// not, a refusal, and one never completed.
	send(h, "c1", "t", "c").Info("timeout")
	send(h, "c2", "t", "d").Info("connection reset")
	send(h, "c1", "t", "e").Fail("rejected")
	send(h, "c2", "t", "f")
	// A retry of c, acknowledged as a duplicate with c's seq though g was
	// acknowledged in between: c's write is judged by its first attempt.
	send(h, "c3", "t", "g").Ok(receipt(4, "t", "g"))
	send(h, "c1", "t", "c").Ok(receipt(3, "t", "c"))
	// Another id's content under a taken id is refused.
	h.Invoke("c2", "t", "a", []byte(`{"other":1}`)).Fail("id-conflict")
	// Another tenant's seqs are not ordered against these.
	send(h, "c4", "u", "a").Ok(receipt(0, "u", "a"))

	got := Check(h, []Record{rec(0, "u", "a"), rec(1, "t", "b"), rec(2, "t", "a"), rec(3, "t", "c"), rec(4, "t", "g"), rec(5, "t", "f")})
	want := &Report{Invoked: 10, Ok: 5, Failed: 2, Info: 3, Pending: 1, InfoPresent: 2, Records: 6}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if !got.Clean() {
		t.Errorf("Clean() = false:\n%s", got)
	}
}

func TestCheckFinds(t *testing.T) {
	for _, tc := range []struct {
		name string
		// run records the history and returns the ledger.
		run  func(h *History) []Record
		want map[Kind]int
	}{{
		name: "lost",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Ok(receipt(0, "t", "a"))
			send(h, "c1", "t", "b").Ok(receipt(1, "t", "b"))
			return []Record{rec(1, "t", "b")}
		},
		want: map[Kind]int{Lost: 1},
	}, {
		name: "lost though a retry was indeterminate",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Ok(receipt(0, "t", "a"))
			send(h, "c1", "t", "a").Info("timeout")
			return nil
		},
		want: map[Kind]int{Lost: 1},
	}, {
		name: "indeterminate and absent is no loss",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Info("timeout")
			return nil
		},
	}, {
		name: "duplicated",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Ok(receipt(0, "t", "a"))
			return []Record{rec(0, "t", "a"), rec(1, "t", "a")}
		},
		want: map[Kind]int{Duplicated: 1},
	}, {
		name: "indeterminate stored twice",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Info("timeout")
			send(h, "c1", "t", "a").Info("timeout")
			return []Record{rec(0, "t", "a"), rec(1, "t", "a")}
		},
		want: map[Kind]int{Duplicated: 1},
	}, {
		name: "corrupted: acknowledged body replaced",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Ok(receipt(0, "t", "a"))
			r := rec(0, "t", "a")
			r.Body = []byte(`{"id":"a","tenant":"t","x":1}`)
			return []Record{r}
		},
		want: map[Kind]int{Corrupted: 1},
	}, {
		name: "corrupted: another operation's body stored over an acknowledged one",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Ok(receipt(0, "t", "a"))
			h.Invoke("c2", "t", "a", []byte(`{"other":1}`)).Info("timeout")
			r := rec(0, "t", "a")
			r.Body = []byte(`{"other":1}`)
			return []Record{r}
		},
		want: map[Kind]int{Corrupted: 1},
	}, {
		name: "corrupted: indeterminate stored with a body never sent",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Info("timeout")
			r := rec(0, "t", "a")
			r.Body = []byte(`{"other":1}`)
			return []Record{r}
		},
		want: map[Kind]int{Corrupted: 1},
	}, {
		name: "failed but present",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Fail("rejected")
			return []Record{rec(0, "t", "a")}
		},
		want: map[Kind]int{FailedPresent: 1},
	}, {
		name: "refused retry of a stored span",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Info("timeout")
			send(h, "c1", "t", "a").Fail("too many requests")
			return []Record{rec(0, "t", "a")}
		},
	}, {
		name: "phantom",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Ok(receipt(0, "t", "a"))
			return []Record{rec(0, "t", "a"), rec(1, "t", "z")}
		},
		want: map[Kind]int{Phantom: 1},
	}, {
		name: "reordered",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Ok(receipt(2, "t", "a"))
			send(h, "c2", "t", "b").Ok(receipt(1, "t", "b"))
			return []Record{rec(1, "t", "b"), rec(2, "t", "a")}
		},
		want: map[Kind]int{Reordered: 1},
	}, {
		name: "reordered: indeterminate stored below an earlier acknowledgement",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Ok(receipt(5, "t", "a"))
			send(h, "c2", "t", "b").Info("timeout")
			return []Record{rec(3, "t", "b"), rec(5, "t", "a")}
		},
		want: map[Kind]int{Reordered: 1},
	}, {
		name: "reordered: a retry's write placed before what was acknowledged ahead of its first attempt",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Ok(receipt(2, "t", "a"))
			send(h, "c2", "t", "b").Info("timeout")
			send(h, "c2", "t", "b").Ok(receipt(1, "t", "b"))
			return []Record{rec(1, "t", "b"), rec(2, "t", "a")}
		},
		want: map[Kind]int{Reordered: 1},
	}, {
		name: "reordered: judged by a span's first acknowledgement",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Ok(receipt(2, "t", "a"))
			b := send(h, "c2", "t", "b")
			send(h, "c1", "t", "a").Ok(receipt(2, "t", "a"))
			b.Ok(receipt(1, "t", "b"))
			return []Record{rec(1, "t", "b"), rec(2, "t", "a")}
		},
		want: map[Kind]int{Reordered: 1},
	}, {
		name: "reordered: below the highest of those acknowledged before",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Ok(receipt(1, "t", "a"))
			send(h, "c1", "t", "c").Ok(receipt(5, "t", "c"))
			send(h, "c2", "t", "b").Ok(receipt(3, "t", "b"))
			return []Record{rec(1, "t", "a"), rec(3, "t", "b"), rec(5, "t", "c")}
		},
		want: map[Kind]int{Reordered: 1},
	}, {
		name: "each late span reported once",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Ok(receipt(3, "t", "a"))
			b, c := send(h, "c2", "t", "b"), send(h, "c3", "t", "c")
			b.Ok(receipt(1, "t", "b"))
			c.Ok(receipt(2, "t", "c"))
			return []Record{rec(1, "t", "b"), rec(2, "t", "c"), rec(3, "t", "a")}
		},
		want: map[Kind]int{Reordered: 2},
	}, {
		name: "tenants are not ordered against each other",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Ok(receipt(2, "t", "a"))
			send(h, "c2", "u", "b").Ok(receipt(1, "u", "b"))
			return []Record{rec(1, "u", "b"), rec(2, "t", "a")}
		},
	}, {
		name: "wrong receipt: another record's",
		run: func(h *History) []Record {
			send(h, "c1", "t", "a").Ok(receipt(0, "t", "a"))
			op := send(h, "c1", "t", "b")
			rc := receipt(0, "t", "a")
			rc.SpanID = "b"
			op.Ok(rc)
			return []Record{rec(0, "t", "a"), rec(1, "t", "b")}
		},
		want: map[Kind]int{WrongReceipt: 1},
	}, {
		name: "wrong receipt: a seq past the ledger",
		run: func(h *History) []Record {
			op := send(h, "c1", "t", "a")
			rc := receipt(0, "t", "a")
			rc.Seq = 7
			op.Ok(rc)
			return []Record{rec(0, "t", "a")}
		},
		want: map[Kind]int{WrongReceipt: 1},
	}, {
		name: "wrong receipt: another span named",
		run: func(h *History) []Record {
			op := send(h, "c1", "t", "a")
			rc := receipt(0, "t", "a")
			rc.Tenant = "u"
			op.Ok(rc)
			return []Record{rec(0, "t", "a")}
		},
		want: map[Kind]int{WrongReceipt: 1},
	}, {
		name: "wrong receipt: another leaf",
		run: func(h *History) []Record {
			op := send(h, "c1", "t", "a")
			rc := receipt(0, "t", "a")
			rc.Leaf[0] ^= 1
			op.Ok(rc)
			return []Record{rec(0, "t", "a")}
		},
		want: map[Kind]int{WrongReceipt: 1},
	}, {
		name: "leaf unknown",
		run: func(h *History) []Record {
			op := send(h, "c1", "t", "a")
			rc := receipt(0, "t", "a")
			rc.Leaf[0] ^= 1
			op.Ok(rc)
			r := rec(0, "t", "a")
			r.Leaf = ledgerfmt.Hash{}
			return []Record{r}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := &History{}
			recs := tc.run(h)
			rep := Check(h, recs)
			want := tc.want
			if want == nil {
				want = map[Kind]int{}
			}
			if diff := cmp.Diff(want, counts(rep)); diff != "" {
				t.Errorf("anomalies (-want +got):\n%s\nreport:\n%s", diff, rep)
			}
		})
	}
}

func TestReportString(t *testing.T) {
	h := &History{}
	for i := range shownPerKind + 2 {
		send(h, "c1", "t", fmt.Sprint(i)).Ok(receipt(uint64(i), "t", fmt.Sprint(i)))
	}
	send(h, "c1", "t", "x").Info("killed")
	got := Check(h, []Record{rec(9, "t", "x"), rec(10, "t", "z")}).String()
	want := `8 invoked, 7 ok, 0 failed, 1 indeterminate (1 present); 2 records; lost 7, duplicated 0, corrupted 0, failed-but-present 0, phantom 1, reordered 0, wrong-receipt 0
  lost t/0: acknowledged to c1 with seq 0, absent from the ledger
  lost t/1: acknowledged to c1 with seq 1, absent from the ledger
  lost t/2: acknowledged to c1 with seq 2, absent from the ledger
  lost t/3: acknowledged to c1 with seq 3, absent from the ledger
  lost t/4: acknowledged to c1 with seq 4, absent from the ledger
  … and 2 more lost
  phantom t/z: at seq 10, never sent`
	if diff := cmp.Diff(strings.Split(want, "\n"), strings.Split(got, "\n")); diff != "" {
		t.Errorf("String() (-want +got):\n%s", diff)
	}
}

func TestCompleteTwice(t *testing.T) {
	h := &History{}
	op := send(h, "c1", "t", "a")
	op.Info("timeout")
	defer func() {
		if recover() == nil {
			t.Error("a second completion did not panic")
		}
	}()
	op.Ok(receipt(0, "t", "a"))
}
