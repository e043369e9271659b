package webhook_test

import (
	"crypto/ed25519"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/loglineos/loglineos/client/webhook"
)

// The example of the Standard Webhooks specification and its reference
// libraries' tests.
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS     = 1614265330
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignMatchesTheSpecification(t *testing.T) {
	s, err := webhook.ParseSecret(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := webhook.Sign(s, specID, time.Unix(specTS, 0), []byte(specBody)); got != specSig {
		t.Errorf("Sign = %s, want %s", got, specSig)
	}
	if s.String() != specSecret {
		t.Errorf("String = %s, want %s", s, specSecret)
	}
}

func TestVerify(t *testing.T) {
	s, _ := webhook.ParseSecret(specSecret)
	pub, priv, _ := ed25519.GenerateKey(nil)
	at := time.Unix(specTS, 0)
	body := []byte(specBody)
	headers := func(id string, ts time.Time, sigs ...string) http.Header {
		h := http.Header{}
		webhook.SetHeaders(h, id, ts, sigs...)
		return h
	}
	other := webhook.NewSecret()
	tests := []struct {
		name string
		h    http.Header
		body string
		now  time.Time
		want error
	}{
		{"hmac", headers(specID, at, specSig), specBody, at, nil},
		{"ed25519", headers(specID, at, webhook.SignEd25519(priv, specID, at, body)), specBody, at, nil},
		{"one of several", headers(specID, at, webhook.Sign(other, specID, at, body), "v2,xyz", specSig), specBody, at, nil},
		{"within tolerance", headers(specID, at, specSig), specBody, at.Add(4 * time.Minute), nil},
		{"stale", headers(specID, at, specSig), specBody, at.Add(6 * time.Minute), webhook.ErrBadTimestamp},
		{"future", headers(specID, at, specSig), specBody, at.Add(-6 * time.Minute), webhook.ErrBadTimestamp},
		{"body changed", headers(specID, at, specSig), `{"test": 2432232315}`, at, webhook.ErrNoSignature},
		{"id changed", headers("msg_other", at, specSig), specBody, at, webhook.ErrNoSignature},
		{"wrong secret", headers(specID, at, webhook.Sign(other, specID, at, body)), specBody, at, webhook.ErrNoSignature},
		{"no signature header", headers(specID, at), specBody, at, webhook.ErrMissingHeader},
		{"garbage signature", headers(specID, at, "v1,!!!"), specBody, at, webhook.ErrNoSignature},
	}
	v := &webhook.Verifier{Secrets: []webhook.Secret{s}, PublicKeys: []ed25519.PublicKey{pub}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(tt.h, []byte(tt.body), tt.now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if err == nil && id != tt.h.Get(webhook.HeaderID) {
				t.Errorf("id = %q", id)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	p2, err := webhook.ParsePrivateKey(webhook.FormatPrivateKey(priv))
	if err != nil || !p2.Equal(priv) {
		t.Fatalf("private key round trip: %v", err)
	}
	q2, err := webhook.ParsePublicKey(webhook.FormatPublicKey(pub))
	if err != nil || !q2.Equal(pub) {
		t.Fatalf("public key round trip: %v", err)
	}
	for _, bad := range []string{"", "whsec_", "whsec_!!", "whsec_AAAA"} {
		if _, err := webhook.ParseSecret(bad); !errors.Is(err, webhook.ErrBadKey) {
			t.Errorf("ParseSecret(%q) = %v, want ErrBadKey", bad, err)
		}
	}
}
