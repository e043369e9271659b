package vm_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/lll/eval/spanfield"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
	"github.com/loglineos/loglineos/internal/span"
)

// TestInputRegion: the host writes the member count, the member bits
// (bit 0 for a member that is no span field), each member's field, every
// string field's length, and the bytes of only the string fields the
// module reads: the standard contract reads status's, not id's.
func TestInputRegion(t *testing.T) {
	_, _, pool := setup(t)
	ctx := context.Background()
	in, err := pool.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := span.Parse([]byte(`{"id":"s_ident_only","tenant":"t","who":"w","did":"d","this":"x","when":"2025-10-05T22:18:07Z","status":"confirmed","zz":1}`), span.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := in.CheckSpan(ctx, contract, s, 0); err != nil {
		t.Fatal(err)
	}
	b, ok := in.Memory().Read(layout.InBase, layout.InSize)
	if !ok {
		t.Fatal("no input region")
	}
	var bits uint32 = 1 // zz
	for f := spanfield.ID; f <= spanfield.Status; f++ {
		bits |= 1 << f
	}
	if n, got := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[layout.InMembers:]); n != 8 || got != bits {
		t.Errorf("member count %d, bits %#b; want 8, %#b", n, got, bits)
	}
	if got := b[layout.MembersOff+7]; got != byte(spanfield.None) {
		t.Errorf("the field of member zz is %d, want None", got)
	}
	slot := func(f spanfield.Field) []byte { return b[layout.Slot(f)-layout.InBase:][:layout.SlotSize] }
	id, status := slot(spanfield.ID), slot(spanfield.Status)
	if got := binary.LittleEndian.Uint32(id[layout.SlotLen:]); got != uint32(len(s.ID)) {
		t.Errorf("id's length %d, want %d", got, len(s.ID))
	}
	if got := binary.LittleEndian.Uint32(id[layout.SlotOffset:]); got != 0 || bytes.Contains(b, []byte(s.ID)) {
		t.Errorf("id's bytes are copied (offset %#x); the module does not read them", got)
	}
	off := binary.LittleEndian.Uint32(status[layout.SlotOffset:]) - layout.InBase
	if off >= layout.InSize || string(b[off:off+uint32(len(s.Status))]) != s.Status {
		t.Errorf("status's bytes are not at its offset %#x", off+layout.InBase)
	}
}

// TestInConstLengths: require field F in [...] compares the field with each
// constant by its length and then its bytes in words; for constants of every
// length from 0 to 20 bytes, a span holding the constant passes and a span
// holding it with any one byte changed, one byte shorter or one byte longer
// fails, as they do for the interpreter.
func TestInConstLengths(t *testing.T) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz"
	var consts []string
	for l := range 21 {
		consts = append(consts, alphabet[:l])
	}
	for _, c := range consts {
		// One constant a validator (besides "#") so that a near miss is
		// not some other constant of the list.
		b := compileBoth(t, "validator v {\n  allow field \"who\" in [\"#\", "+lllString(c)+"]\n  on_fail \"warn\"\n}\n")
		line := func(who string) string { return `{"who":` + strconv.Quote(who) + `}` }
		if vi := b.same(t, line(c)); vi != nil {
			t.Errorf("%q: %v", c, vi)
		}
		misses := []string{c + "z", "z" + c}
		if len(c) > 0 {
			misses = append(misses, c[:len(c)-1], c[1:])
		}
		for i := range len(c) {
			misses = append(misses, c[:i]+"Z"+c[i+1:])
		}
		for _, m := range misses {
			if m == "" {
				continue
			}
			if vi := b.same(t, line(m)); vi == nil {
				t.Errorf("%q passes as one of [\"#\", %q]", m, c)
			}
		}
	}
}

// TestMemberList: for spans of every subset of the span fields, some
// empty, some with a member that is no span field, the input region's
// member count, bits and list are the fields of the span's members in
// their order (0 for a member that is no span field).
func TestMemberList(t *testing.T) {
	_, _, pool := setup(t)
	ctx := context.Background()
	in, err := pool.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	values := map[spanfield.Field]string{spanfield.ConfirmedBy: `["a"]`, spanfield.Data: `{"x":1}`, spanfield.When: `"2025-10-05T22:18:07Z"`}
	for subset := range 1 << (spanfield.Count - 1) {
		for _, variant := range []string{"", "empty", "unknown"} {
			var members []string
			for f := spanfield.ID; int(f) < spanfield.Count; f++ {
				if subset&(1<<(f-1)) == 0 {
					continue
				}
				v, ok := values[f]
				switch {
				case !ok && variant == "empty" && f%2 == 0:
					v = `""`
				case !ok:
					v = `"v"`
				}
				members = append(members, strconv.Quote(f.Name())+":"+v)
			}
			if variant == "unknown" {
				members = append(members, `"extra":1`)
			}
			s, err := span.Parse([]byte("{"+strings.Join(members, ",")+"}"), span.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := in.CheckSpan(ctx, contract, s, 0); err != nil {
				t.Fatal(err)
			}
			b, _ := in.Memory().Read(layout.InBase, layout.InSize)
			var want []byte
			var bits uint32
			for _, m := range s.Members {
				want = append(want, byte(spanfield.Of(m)))
				bits |= 1 << spanfield.Of(m)
			}
			n := binary.LittleEndian.Uint32(b)
			got := b[layout.MembersOff:][:n]
			if !bytes.Equal(got, want) || binary.LittleEndian.Uint32(b[layout.InMembers:]) != bits {
				t.Fatalf("members %v: list %v, bits %#b; want %v, %#b", s.Members, got, binary.LittleEndian.Uint32(b[layout.InMembers:]), want, bits)
			}
		}
	}
}
