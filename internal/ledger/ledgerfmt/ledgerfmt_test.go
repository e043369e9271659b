package ledgerfmt

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
)

func testSigner(t *testing.T, origin string) *Signer {
	t.Helper()
	skey, _, err := GenerateKey(nil, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testVerifier(t *testing.T, s *Signer) *Verifier {
	t.Helper()
	v, err := NewVerifier(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestLeafHashIsRFC6962(t *testing.T) {
	ts := time.Date(2025, 10, 5, 22, 18, 7, 214000000, time.UTC)
	body := []byte(`{"id":"s_1","tenant":"t_a"}`)
	in := `{"seq":41,"ts":"2025-10-05T22:18:07.214000Z","span":{"id":"s_1","tenant":"t_a"}}`
	if got := string(AppendLeafInput(nil, 41, ts.AppendFormat(nil, TimeLayout), KindSpan, body)); got != in {
		t.Fatalf("leaf input %s, want %s", got, in)
	}
	want := rfc6962.DefaultHasher.HashLeaf([]byte(in))
	if got := LeafHash(41, ts.In(time.FixedZone("x", 3600)), KindSpan, body); !bytes.Equal(got[:], want) {
		t.Fatalf("LeafHash = %s, want RFC 6962's %x", got, want)
	}
}

func TestCheckpoint(t *testing.T) {
	s := testSigner(t, "logline.local/ledger")
	root := Hash{1, 2, 3}
	c, err := s.SignCheckpoint(42, root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := testVerifier(t, s).OpenCheckpoint(c.Note)
	if err != nil {
		t.Fatalf("OpenCheckpoint: %v", err)
	}
	if got.Origin != "logline.local/ledger" || got.Size != 42 || got.Root != root || !bytes.Equal(got.Note, c.Note) {
		t.Fatalf("OpenCheckpoint = %+v, want size 42 and the signed root", got)
	}
	other := testVerifier(t, testSigner(t, "logline.local/ledger"))
	if _, err := other.OpenCheckpoint(c.Note); err == nil {
		t.Error("a checkpoint opened with another ledger's key")
	}
	forged := bytes.Replace(c.Note, []byte("\n42\n"), []byte("\n43\n"), 1)
	if _, err := testVerifier(t, s).OpenCheckpoint(forged); err == nil {
		t.Error("a forged checkpoint opened")
	}
}

func TestParseCheckpointText(t *testing.T) {
	root := Hash{9}.String()
	for _, tc := range []struct {
		text string
		ok   bool
	}{
		{"o\n42\n" + root + "\n", true},
		{"o\n0\n" + root + "\n", true},
		{"o\n042\n" + root + "\n", false},
		{"o\n-1\n" + root + "\n", false},
		{"o\n42\n" + root, false},
		{"o\n42\nnot base64\n", false},
		{"o\n42\n", false},
	} {
		_, err := parseCheckpointText(tc.text)
		if (err == nil) != tc.ok {
			t.Errorf("parseCheckpointText(%q) = %v, want ok %v", tc.text, err, tc.ok)
		}
		if err != nil && (!errors.Is(err, ErrBadCheckpoint) || !strings.HasPrefix(err.Error(), "ledgerfmt: bad checkpoint: ")) {
			t.Errorf("error %q is not ErrBadCheckpoint, or does not name the package and the checkpoint", err)
		}
	}
}

// oneRecordReceipt returns the receipt of a commit of one span record.
func oneRecordReceipt(s *Signer, body []byte) Receipt {
	ts := time.Date(2025, 10, 5, 22, 18, 7, 214000000, time.UTC)
	leaf := LeafHash(7, ts, KindSpan, body)
	return Receipt{
		Op: OpAppend, SpanID: "s_1", Tenant: "t_a", Seq: 7, Leaf: leaf,
		Batch: BatchRef{First: 7, Size: 1, Root: leaf},
		JTI:   ReceiptID(7, ts), KID: s.KeyID(),
		Sig: s.Sign(BatchStatement(s.Origin(), 7, 1, leaf, ts)),
		TS:  Timestamp{Time: ts},
	}
}

func TestVerifyReceipt(t *testing.T) {
	s := testSigner(t, "logline.local/ledger")
	v := testVerifier(t, s)
	body := []byte(`{"id":"s_1","tenant":"t_a"}`)
	good := oneRecordReceipt(s, body)
	if err := v.VerifyReceipt(&good, KindSpan, body); err != nil {
		t.Fatalf("VerifyReceipt of a good receipt: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(r *Receipt)
		body   string // instead of body
		// otherContent: the receipt verifies and names the span, the body
		// is not the one it is for.
		otherContent bool
	}{
		{name: "another span", change: func(r *Receipt) { r.SpanID = "s_2" }},
		{name: "another seq", change: func(r *Receipt) { r.Seq = 8 }},
		{name: "another time", change: func(r *Receipt) { r.TS.Time = r.TS.Add(time.Microsecond) }},
		{name: "another root", change: func(r *Receipt) { r.Batch.Root[0] ^= 1 }},
		{name: "another jti", change: func(r *Receipt) { r.JTI = ReceiptID(8, r.TS.Time) }},
		{name: "another key", change: func(r *Receipt) { r.KID = "00000000" }},
		{name: "a bad signature", change: func(r *Receipt) { r.Sig = append([]byte(nil), r.Sig...); r.Sig[0] ^= 1 }},
		{name: "a longer path", change: func(r *Receipt) { r.Batch.Path = []Hash{{}} }},
		{name: "another leaf", change: func(r *Receipt) { r.Leaf[0] ^= 1 }},
		{name: "the body of another span", body: `{"id":"s_2","tenant":"t_a"}`},
		{name: "other content", body: `{"id":"s_1","tenant":"t_a","who":"hmac-sha256:AAAA"}`, otherContent: true},
	} {
		r, b := good, body
		if tc.change != nil {
			tc.change(&r)
		}
		if tc.body != "" {
			b = []byte(tc.body)
		}
		err := v.VerifyReceipt(&r, KindSpan, b)
		var fe *Error
		if !errors.Is(err, ErrBadReceipt) || !errors.As(err, &fe) {
			t.Errorf("%s: VerifyReceipt = %v, want an *Error of ErrBadReceipt", tc.name, err)
			continue
		}
		if fe.OtherContent != tc.otherContent {
			t.Errorf("%s: OtherContent %v, want %v (%v)", tc.name, fe.OtherContent, tc.otherContent, err)
		}
		if want := ErrBadReceipt.Error() + ": " + fe.Reason; err.Error() != want {
			t.Errorf("%s: %q, want %q", tc.name, err, want)
		}
	}
}

func TestVerifyConsistency(t *testing.T) {
	// Two leaves: the tree of size 1 is leaf a, that of size 2 is
	// H(1||a||b), and the proof is [b].
	a, b := Hash{1}, Hash{2}
	root2 := Hash(rfc6962.DefaultHasher.HashChildren(a[:], b[:]))
	if err := VerifyConsistency(1, 2, a, root2, []Hash{b}); err != nil {
		t.Fatalf("VerifyConsistency: %v", err)
	}
	if err := VerifyConsistency(1, 2, a, root2, []Hash{a}); err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("a wrong consistency proof: %q, want an error in one line", err)
	}
	if err := VerifyInclusion(1, 2, b, []Hash{a}, root2); err != nil {
		t.Fatalf("VerifyInclusion: %v", err)
	}
	if err := VerifyInclusion(0, 2, b, []Hash{a}, root2); err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("a wrong inclusion proof: %q, want an error in one line", err)
	}
}

func TestHashText(t *testing.T) {
	h := Hash{0xde, 0xad}
	b, _ := h.MarshalText()
	var got Hash
	if err := got.UnmarshalText(b); err != nil || got != h {
		t.Fatalf("UnmarshalText(MarshalText) = %s, %v; want %s", got, err, h)
	}
	for _, bad := range []string{"", "AAAA", h.String() + "AAAA", "!" + h.String()[1:]} {
		if err := got.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) succeeded", bad)
		}
	}
}
