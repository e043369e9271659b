package export_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/export"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// spanOf returns the canonical body of a span of tenant whose id, "this"
// and data carry tell-tale strings.
func spanOf(tenant string, i int) ledger.Entry {
	id := fmt.Sprintf("%s-id-%d", tenant, i)
	this := fmt.Sprintf("%s-thing-%d", tenant, i)
	body := fmt.Sprintf(`{"data":{"secret":"%s-secret-%d"},"did":"sale.post","id":"%s","status":"confirmed","tenant":"%s","this":"%s","when":"2025-10-05T22:18:07Z","who":"%s-who"}`,
		tenant, i, id, tenant, this, tenant)
	return ledger.Entry{Tenant: tenant, ID: id, This: this, Body: []byte(body)}
}

// appendSpans appends n spans of each tenant, interleaved, and a config
// record, then signs a checkpoint; it returns the checkpoint's size.
func appendSpans(t testing.TB, l *ledger.Ledger, first, n int, tenants ...string) uint64 {
	t.Helper()
	ctx := context.Background()
	var es []ledger.Entry
	for i := first; i < first+n; i++ {
		for _, ten := range tenants {
			es = append(es, spanOf(ten, i))
		}
		if i%7 == 3 {
			es = append(es, ledger.Entry{Kind: ledgerfmt.KindConfig, Body: []byte(fmt.Sprintf(`{"config_of":"%s","n":%d}`, tenants[0], i))})
		}
	}
	for len(es) > 0 {
		k := min(len(es), 200)
		if _, err := l.Append(ctx, es[:k]); err != nil {
			t.Fatal(err)
		}
		es = es[k:]
	}
	c, err := l.WriteCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c.Size
}

func openLedger(t testing.TB) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open("data", ledger.Config{FS: vfs.NewMem(), IndexCacheBytes: 1 << 20, IndexMemTableBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func write(t testing.TB, l *ledger.Ledger, tenant string, from, to uint64) []byte {
	t.Helper()
	e, err := export.New(l, tenant, from, to)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := e.Write(context.Background(), &b, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func verifier(t testing.TB, l *ledger.Ledger) *ledgerfmt.Verifier {
	t.Helper()
	v, err := ledgerfmt.NewVerifier(l.Signer().VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestExportVerifies(t *testing.T) {
	l := openLedger(t)
	size := appendSpans(t, l, 0, 40, "t_a", "t_b")
	v := verifier(t, l)
	for _, tc := range []struct {
		name     string
		from, to uint64
		want     ledgerfmt.ExportManifest
	}{
		{"all", 0, 0, ledgerfmt.ExportManifest{Tenant: "t_a", From: 0, To: size, Records: 40}},
		{"middle", 10, 30, ledgerfmt.ExportManifest{Tenant: "t_a", From: 10, To: 30, Records: 9}},
		{"empty", 5, 5, ledgerfmt.ExportManifest{Tenant: "t_a", From: 5, To: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := write(t, l, "t_a", tc.from, tc.to)
			got, err := v.VerifyExport(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("VerifyExport: %v\n%s", err, b)
			}
			tc.want.Size, tc.want.Root, tc.want.SHA256 = size, l.Checkpoint().Root, got.SHA256
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("manifest (-want +got):\n%s", d)
			}
			if n := bytes.Count(b, []byte("\n")); uint64(n) != got.Records+2 {
				t.Errorf("%d lines for %d records", n, got.Records)
			}
		})
	}
}

// Another tenant's spans, and records that are not spans, never appear in
// an export: only hashes inside the proofs come from them.
func TestExportNoLeak(t *testing.T) {
	l := openLedger(t)
	appendSpans(t, l, 0, 300, "t_a", "t_b")
	b := write(t, l, "t_a", 0, 0)
	for _, tell := range []string{"t_b", "t_b-id-", "t_b-thing-", "t_b-secret-", "t_b-who", "config_of", `"config"`} {
		if bytes.Contains(b, []byte(tell)) {
			t.Errorf("the export of t_a contains %q", tell)
		}
	}
	if !bytes.Contains(b, []byte("t_a-secret-299")) {
		t.Error("the export of t_a lacks its own last span")
	}
}

func TestExportRange(t *testing.T) {
	l := openLedger(t)
	for _, tc := range []struct {
		name     string
		tenant   string
		from, to uint64
		want     error
	}{
		{"no checkpoint", "t_a", 0, 0, export.ErrNoCheckpoint},
		{"bad tenant", "t a", 0, 0, export.ErrTenant},
		{"empty tenant", "", 0, 0, export.ErrTenant},
	} {
		if _, err := export.New(unsigned{l}, tc.tenant, tc.from, tc.to); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	size := appendSpans(t, l, 0, 5, "t_a")
	for _, tc := range []struct {
		name     string
		from, to uint64
	}{
		{"to past the checkpoint", 0, size + 1},
		{"from past to", 3, 2},
		{"from past the checkpoint", size + 1, 0},
	} {
		if _, err := export.New(l, "t_a", tc.from, tc.to); !errors.Is(err, export.ErrRange) {
			t.Errorf("%s: got %v, want ErrRange", tc.name, err)
		}
	}
}

// An export of [E, …) continues the one of [F, E): together they hold every
// span of the tenant once, each proved in its own checkpoint.
func TestExportChain(t *testing.T) {
	l := openLedger(t)
	v := verifier(t, l)
	appendSpans(t, l, 0, 20, "t_a", "t_b")
	first := write(t, l, "t_a", 0, 0)
	m1, err := v.VerifyExport(bytes.NewReader(first))
	if err != nil {
		t.Fatal(err)
	}
	appendSpans(t, l, 20, 15, "t_a", "t_b")
	second := write(t, l, "t_a", m1.To, 0)
	m2, err := v.VerifyExport(bytes.NewReader(second))
	if err != nil {
		t.Fatal(err)
	}
	if m2.From != m1.To || m1.Records+m2.Records != 35 || m2.Size <= m1.Size {
		t.Errorf("chain: %+v then %+v", m1, m2)
	}
}

// Any one byte changed anywhere in an export makes it fail to verify, with
// an error naming a line, and never a panic.
func TestExportByteFlips(t *testing.T) {
	l := openLedger(t)
	appendSpans(t, l, 0, 30, "t_a", "t_b")
	b := write(t, l, "t_a", 0, 0)
	v := verifier(t, l)
	if _, err := v.VerifyExport(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	const flips = 256
	// Every offset of the manifest line, where a lenient parser would
	// let a change through, and the rest spread over the file.
	offsets := map[int]bool{}
	trailer := bytes.LastIndex(b[:len(b)-1], []byte("\n")) + 1
	for i := trailer; i < len(b) && len(offsets) < flips/2; i++ {
		offsets[i] = true
	}
	for i := 0; len(offsets) < flips; i++ {
		offsets[(i*7919)%len(b)] = true
	}
	// One bit, a letter's case (what a case-insensitive parser ignores),
	// the top bit (invalid UTF-8), every bit.
	masks := []byte{0x01, 0x20, 0x80, 0xff}
	for off := range offsets {
		x := masks[off%len(masks)]
		c := bytes.Clone(b)
		c[off] ^= x
		_, err := v.VerifyExport(bytes.NewReader(c))
		var ee *ledgerfmt.ExportError
		if !errors.As(err, &ee) || !errors.Is(err, ledgerfmt.ErrBadExport) {
			t.Errorf("byte %d ^ %#x (%q in %q): got %v, want an ExportError", off, x, b[off], context_(b, off), err)
		}
	}
	// Cut short anywhere: refused.
	for _, n := range []int{0, 1, trailer - 1, trailer, len(b) - 1} {
		if _, err := v.VerifyExport(bytes.NewReader(b[:n])); !errors.Is(err, ledgerfmt.ErrBadExport) {
			t.Errorf("cut at %d: got %v", n, err)
		}
	}
	// Bytes after the manifest: refused.
	if _, err := v.VerifyExport(bytes.NewReader(append(bytes.Clone(b), '\n'))); !errors.Is(err, ledgerfmt.ErrBadExport) {
		t.Errorf("a byte appended: got %v", err)
	}
	// The signature's last base64 digit changed in the bits the padding
	// drops (a lenient decoder reads the same signature): refused.
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	end := bytes.LastIndex(b, []byte(`=\n"}`))
	if end < 0 {
		t.Fatalf("no padded signature at the end of %q", b[trailer:])
	}
	c := bytes.Clone(b)
	c[end-1] = b64[strings.IndexByte(b64, c[end-1])^1]
	if _, err := v.VerifyExport(bytes.NewReader(c)); !errors.Is(err, ledgerfmt.ErrBadExport) {
		t.Errorf("signature padding bits changed: got %v", err)
	}
	// Another key: refused.
	skey, _, err := ledgerfmt.GenerateKey(nil, l.Signer().Origin())
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ledgerfmt.NewSigner(skey)
	ov, _ := ledgerfmt.NewVerifier(other.VerifierKey())
	if _, err := ov.VerifyExport(bytes.NewReader(b)); !errors.Is(err, ledgerfmt.ErrBadExport) {
		t.Errorf("another key: got %v", err)
	}
}

func context_(b []byte, off int) string {
	return string(b[max(0, off-20):min(len(b), off+20)])
}

// A record line of another tenant, or a record line moved, is named by its
// line even before the manifest's hash is checked.
func TestVerifyExportNamesLine(t *testing.T) {
	l := openLedger(t)
	appendSpans(t, l, 0, 5, "t_a", "t_b")
	a := write(t, l, "t_a", 0, 0)
	bb := write(t, l, "t_b", 0, 0)
	v := verifier(t, l)
	lines := func(b []byte) []string { return strings.SplitAfter(string(b), "\n") }
	la, lb := lines(a), lines(bb)
	for _, tc := range []struct {
		name string
		file []string
		want string
	}{
		{"another tenant's record", append([]string{la[0], la[1], lb[3]}, la[2:]...), "line 3: seq [0-9]+: a span of tenant \"t_b\" in an export of \"t_a\""},
		{"records swapped", append([]string{la[0], la[2], la[1]}, la[3:]...), "line 3: seq [0-9]+: out of order"},
		{"a record dropped", append([]string{la[0], la[1]}, la[3:]...), "line 6: the manifest counts 5 records, the file holds 4"},
	} {
		_, err := v.VerifyExport(strings.NewReader(strings.Join(tc.file, "")))
		if err == nil || !matches(tc.want, err.Error()) {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.want)
		}
	}
}

func matches(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// unsigned is a ledger that has signed no checkpoint yet.
type unsigned struct{ *ledger.Ledger }

func (unsigned) Checkpoint() *ledgerfmt.Checkpoint { return nil }

// An export verifies with a verifier written from docs/exports.md alone.
func TestExportThirdPartyVerifier(t *testing.T) {
	l := openLedger(t)
	size := appendSpans(t, l, 0, 50, "t_a", "t_b")
	b := write(t, l, "t_a", 3, 0)
	got, err := thirdPartyVerify(b, l.Signer().VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	want := thirdPartyResult{tenant: "t_a", from: 3, to: size, records: 48, size: size}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// And refuses a changed one.
	c := bytes.Replace(b, []byte("t_a-secret-7"), []byte("t_a-secret-8"), 1)
	if _, err := thirdPartyVerify(c, l.Signer().VerifierKey()); err == nil {
		t.Error("a changed span verified")
	}
}

func BenchmarkExport(b *testing.B) {
	l := openLedger(b)
	appendSpans(b, l, 0, 2000, "t_a", "t_b")
	e, err := export.New(l, "t_a", 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	var n uint64
	var bytes_ int64
	b.ResetTimer()
	for b.Loop() {
		s, err := e.Write(context.Background(), io.Discard, nil)
		if err != nil {
			b.Fatal(err)
		}
		n += s.Records
		bytes_ += s.Bytes
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(float64(bytes_)/1e6/b.Elapsed().Seconds(), "MB/s")
}

func BenchmarkVerifyExport(b *testing.B) {
	l := openLedger(b)
	appendSpans(b, l, 0, 2000, "t_a", "t_b")
	file := write(b, l, "t_a", 0, 0)
	v := verifier(b, l)
	var n uint64
	for b.Loop() {
		m, err := v.VerifyExport(bytes.NewReader(file))
		if err != nil {
			b.Fatal(err)
		}
		n += m.Records
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(float64(len(file))*float64(b.N)/1e6/b.Elapsed().Seconds(), "MB/s")
}

// A read-only view beside a running writer (logline ledger export beside
// logline serve) exports every span its checkpoint covers, though its
// tenant index does not hold what the writer has not flushed.
func TestExportReadOnlyBesideWriter(t *testing.T) {
	fs := vfs.NewMem()
	cfg := ledger.Config{FS: fs, IndexCacheBytes: 1 << 20, IndexMemTableBytes: 1 << 20}
	w, err := ledger.Open("data", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	size := appendSpans(t, w, 0, 10, "t_a", "t_b")
	cfg.ReadOnly = true
	r, err := ledger.Open("data", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, err := verifier(t, r).VerifyExport(bytes.NewReader(write(t, r, "t_a", 0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Records != 10 || m.Size != size {
		t.Errorf("read-only export: %d records of checkpoint %d, want 10 of %d", m.Records, m.Size, size)
	}
}
