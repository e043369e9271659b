package history

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// Record is one span record of the final ledger.
type Record struct {
	Seq    uint64
	Tenant string
	SpanID string
	// Body is the span's canonical JSON, as stored.
	Body []byte
	// Leaf is the record's leaf hash; the zero Hash means unknown, and
	// receipts' leaves are then not compared.
	Leaf ledgerfmt.Hash
}

// Kind is a kind of anomaly (see the package comment).
type Kind uint8

// The kinds of anomaly, in the order a Report lists them.
const (
	Lost Kind = iota
	Duplicated
	Corrupted
	FailedPresent
	Phantom
	Reordered
	WrongReceipt
	numKinds
)

var kindNames = [numKinds]string{"lost", "duplicated", "corrupted", "failed-but-present", "phantom", "reordered", "wrong-receipt"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Anomaly is one thing the ledger holds that the clients were not told, or
// one thing they were told that it does not hold.
type Anomaly struct {
	Kind   Kind
	Tenant string
	SpanID string
	// Seqs are the ledger records concerned, if any.
	Seqs []uint64
	// Detail says what was seen, for a person.
	Detail string
}

func (a Anomaly) String() string {
	return fmt.Sprintf("%s %s/%s: %s", a.Kind, a.Tenant, a.SpanID, a.Detail)
}

// Report is Check's judgement.
type Report struct {
	// Invoked counts the operations; Ok, Failed and Info those that
	// completed so; Info includes the Pending ones, never completed.
	Invoked, Ok, Failed, Info, Pending int
	// InfoPresent counts the indeterminate operations whose span is in the
	// ledger with their body.
	InfoPresent int
	// Records counts the ledger records checked.
	Records int
	// Anomalies lists what was found, by Kind; within a kind in ledger
	// order, except lost spans, wrong receipts and reorderings, which
	// come in history order.
	Anomalies []Anomaly
}

// Clean says whether the report found no anomaly.
func (r *Report) Clean() bool { return len(r.Anomalies) == 0 }

// Count returns the number of anomalies of kind k.
func (r *Report) Count(k Kind) int {
	n := 0
	for _, a := range r.Anomalies {
		if a.Kind == k {
			n++
		}
	}
	return n
}

// shownPerKind bounds the anomalies of each kind that String lists.
const shownPerKind = 5

// String returns the counts on one line, then the first anomalies of each
// kind, one a line:
//
//	12345 invoked, 12001 ok, 0 failed, 344 indeterminate (190 present); 12191 records; lost 0, duplicated 0, …
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d invoked, %d ok, %d failed, %d indeterminate (%d present", r.Invoked, r.Ok, r.Failed, r.Info, r.InfoPresent)
	if r.Pending > 0 {
		fmt.Fprintf(&b, ", %d never completed", r.Pending)
	}
	fmt.Fprintf(&b, "); %d records", r.Records)
	var n [numKinds]int
	for _, a := range r.Anomalies {
		n[a.Kind]++
	}
	for k := range numKinds {
		sep := ", "
		if k == 0 {
			sep = "; "
		}
		fmt.Fprintf(&b, "%s%s %d", sep, k, n[k])
	}
	var shown [numKinds]int
	for _, a := range r.Anomalies {
		switch shown[a.Kind]++; {
		case shown[a.Kind] <= shownPerKind:
			b.WriteString("\n  " + a.String())
		case shown[a.Kind] == shownPerKind+1:
			fmt.Fprintf(&b, "\n  … and %d more %s", n[a.Kind]-shownPerKind, a.Kind)
		}
	}
	return b.String()
}

// key names a span: the server stores a key once.
type key struct{ tenant, spanID string }

func (k key) String() string { return k.tenant + "/" + k.spanID }

// sent gathers the operations that sent one body under one key.
type sent struct {
	body []byte
	// writers counts the operations that may have appended it (all but
	// the refused); info those of them that were indeterminate.
	writers, info int
	// acked is the first acknowledged operation, or -1.
	acked int
	// lo is the earliest invocation among the writers; hi the earliest
	// acknowledgement (math.MaxUint64 if none).
	lo, hi uint64
	// stored: a record of the key holds this body.
	stored bool
}

// keyState is what the history and the ledger say of one key.
type keyState struct {
	k    key
	sent []*sent
	// recs are the key's records (indexes in seq order).
	recs []int
}

// checker holds one Check's data.
type checker struct {
	evs  []event
	recs []Record
	// keys in order of first appearance: the ledger's keys in seq order,
	// then the history's others in invocation order.
	keys   []*keyState
	byKey  map[key]*keyState
	byBody map[keyBody]*sent
	found  [numKinds][]Anomaly
}

type keyBody struct {
	k    key
	body string
}

// Check judges history h against the span records of the final ledger
// (every span record, in any order) and reports the anomalies of the
// package comment. It takes O(n log n) time in the operations and records.
func Check(h *History, records []Record) *Report {
	c := &checker{
		evs:    h.events(),
		recs:   slices.Clone(records),
		byKey:  map[key]*keyState{},
		byBody: map[keyBody]*sent{},
	}
	slices.SortStableFunc(c.recs, func(a, b Record) int { return cmp.Compare(a.Seq, b.Seq) })
	rep := &Report{Invoked: len(c.evs), Records: len(c.recs)}
	for _, e := range c.evs {
		switch e.outcome {
		case Ok:
			rep.Ok++
		case Fail:
			rep.Failed++
		default:
			rep.Info++
			if e.outcome == Pending {
				rep.Pending++
			}
		}
	}
	c.index()
	for _, ks := range c.keys {
		if len(ks.recs) == 0 {
			c.checkAbsent(ks)
			continue
		}
		c.checkStored(ks)
		for _, s := range ks.sent {
			if s.stored {
				rep.InfoPresent += s.info
			}
		}
	}
	c.checkReceipts()
	c.checkOrder()
	for _, f := range c.found {
		rep.Anomalies = append(rep.Anomalies, f...)
	}
	return rep
}

func (c *checker) state(k key) *keyState {
	ks := c.byKey[k]
	if ks == nil {
		ks = &keyState{k: k}
		c.byKey[k] = ks
		c.keys = append(c.keys, ks)
	}
	return ks
}

// index groups the records and the operations by key, and the operations
// of a key by body.
func (c *checker) index() {
	for i, r := range c.recs {
		ks := c.state(key{r.Tenant, r.SpanID})
		ks.recs = append(ks.recs, i)
	}
	for i, e := range c.evs {
		ks := c.state(key{e.tenant, e.spanID})
		kb := keyBody{ks.k, string(e.body)}
		s := c.byBody[kb]
		if s == nil {
			s = &sent{body: e.body, acked: -1, lo: math.MaxUint64, hi: math.MaxUint64}
			c.byBody[kb] = s
			ks.sent = append(ks.sent, s)
		}
		if e.outcome == Fail {
			continue
		}
		s.writers++
		s.lo = min(s.lo, e.invoked)
		switch e.outcome {
		case Ok:
			if s.acked < 0 {
				s.acked = i
			}
			s.hi = min(s.hi, e.done)
		default:
			s.info++
		}
	}
}

func (c *checker) add(k Kind, ks *keyState, detail string, seqs ...uint64) {
	c.found[k] = append(c.found[k], Anomaly{Kind: k, Tenant: ks.k.tenant, SpanID: ks.k.spanID, Seqs: seqs, Detail: detail})
}

// checkAbsent reports a key no record holds, if it was acknowledged.
func (c *checker) checkAbsent(ks *keyState) {
	for _, s := range ks.sent {
		if s.acked >= 0 {
			e := &c.evs[s.acked]
			c.add(Lost, ks, fmt.Sprintf("acknowledged to %s with seq %d, absent from the ledger", e.client, e.receipt.Seq))
			return
		}
	}
}

// checkStored judges a key that records hold: once, with a body that an
// operation that may have appended it sent, and with every acknowledged
// body.
func (c *checker) checkStored(ks *keyState) {
	seqs := make([]uint64, len(ks.recs))
	for i, ri := range ks.recs {
		seqs[i] = c.recs[ri].Seq
	}
	if len(seqs) > 1 {
		c.add(Duplicated, ks, fmt.Sprintf("stored %d times, at seqs %v", len(seqs), seqs), seqs...)
	}
	if len(ks.sent) == 0 {
		c.add(Phantom, ks, fmt.Sprintf("at seq %d, never sent", seqs[0]), seqs[0])
		return
	}
	corrupted := false
	for _, ri := range ks.recs {
		r := &c.recs[ri]
		s := c.byBody[keyBody{ks.k, string(r.Body)}]
		switch {
		case s == nil:
			if !corrupted {
				c.add(Corrupted, ks, fmt.Sprintf("at seq %d with a body never sent under this id: %s", r.Seq, clip(r.Body)), r.Seq)
				corrupted = true
			}
		case s.writers == 0:
			c.add(FailedPresent, ks, fmt.Sprintf("at seq %d, sent only by refused operations", r.Seq), r.Seq)
		default:
			s.stored = true
		}
	}
	for _, s := range ks.sent {
		if s.acked >= 0 && !s.stored && !corrupted {
			c.add(Corrupted, ks, fmt.Sprintf("acknowledged to %s as %s, stored at seq %d as %s", c.evs[s.acked].client, clip(s.body), seqs[0], clip(c.recs[ks.recs[0]].Body)), seqs[0])
			corrupted = true
		}
	}
}

// checkReceipts checks that each acknowledged operation whose body is
// stored got the receipt of the record that holds it.
func (c *checker) checkReceipts() {
	for _, e := range c.evs {
		if e.outcome != Ok {
			continue
		}
		ks := c.byKey[key{e.tenant, e.spanID}]
		if s := c.byBody[keyBody{ks.k, string(e.body)}]; !s.stored {
			continue // lost or corrupted, reported already
		}
		rc := &e.receipt
		i, found := slices.BinarySearchFunc(c.recs, rc.Seq, func(r Record, seq uint64) int { return cmp.Compare(r.Seq, seq) })
		var why string
		switch {
		case rc.Tenant != e.tenant || rc.SpanID != e.spanID:
			why = fmt.Sprintf("names %s/%s", rc.Tenant, rc.SpanID)
		case !found:
			why = "names no record"
		case c.recs[i].Tenant != e.tenant || c.recs[i].SpanID != e.spanID || !bytes.Equal(c.recs[i].Body, e.body):
			why = fmt.Sprintf("names the record of %s/%s", c.recs[i].Tenant, c.recs[i].SpanID)
		case c.recs[i].Leaf != (ledgerfmt.Hash{}) && c.recs[i].Leaf != rc.Leaf:
			why = fmt.Sprintf("has leaf %s, the record %s", rc.Leaf, c.recs[i].Leaf)
		default:
			continue
		}
		c.add(WrongReceipt, ks, fmt.Sprintf("the receipt given to %s (seq %d) %s", e.client, rc.Seq, why), rc.Seq)
	}
}

// window is the interval in which a stored key's first record was written.
type window struct {
	ks     *keyState
	seq    uint64
	lo, hi uint64
}

// checkOrder checks, within each tenant, that a key acknowledged before
// another was invoked has the lower seq (see the package comment).
func (c *checker) checkOrder() {
	byTenant := map[string][]window{}
	var tenants []string
	for _, ks := range c.keys {
		if len(ks.recs) == 0 {
			continue
		}
		r := &c.recs[ks.recs[0]]
		s := c.byBody[keyBody{ks.k, string(r.Body)}]
		if s == nil || s.writers == 0 {
			continue // no operation could have written it: reported already
		}
		if _, ok := byTenant[ks.k.tenant]; !ok {
			tenants = append(tenants, ks.k.tenant)
		}
		byTenant[ks.k.tenant] = append(byTenant[ks.k.tenant], window{ks: ks, seq: r.Seq, lo: s.lo, hi: s.hi})
	}
	for _, t := range tenants {
		c.sweep(byTenant[t])
	}
}

// sweep finds, for each window B, the window A of the highest seq among
// those acknowledged before B was invoked (hi(A) < lo(B)), and reports B
// if A's seq is above B's. ws is in seq order.
func (c *checker) sweep(ws []window) {
	byHi := slices.Clone(ws)
	slices.SortStableFunc(byHi, func(a, b window) int { return cmp.Compare(a.hi, b.hi) })
	byLo := slices.Clone(ws)
	slices.SortStableFunc(byLo, func(a, b window) int { return cmp.Compare(a.lo, b.lo) })
	var before *window // the highest seq among byHi[:n]
	n := 0
	for i := range byLo {
		b := &byLo[i]
		for ; n < len(byHi) && byHi[n].hi < b.lo; n++ {
			if before == nil || byHi[n].seq > before.seq {
				before = &byHi[n]
			}
		}
		if before != nil && before.seq > b.seq {
			c.add(Reordered, b.ks, fmt.Sprintf("at seq %d, below %s at seq %d, acknowledged (tick %d) before %s was invoked (tick %d)",
				b.seq, before.ks.k, before.seq, before.hi, b.ks.k.spanID, b.lo), before.seq, b.seq)
		}
	}
}

// clip returns a body for a message, cut short if long.
func clip(b []byte) string {
	const clipBytes = 120
	if len(b) > clipBytes {
		return string(b[:clipBytes]) + "…"
	}
	return string(b)
}
