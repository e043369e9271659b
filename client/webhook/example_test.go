package webhook_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/loglineos/loglineos/client/webhook"
)

// The examples sign the example of the Standard Webhooks specification
// (specSecret, specID and specBody are in webhook_test.go).
var (
	specTime    = time.Unix(specTS, 0)
	specPayload = []byte(specBody)
)

// exampleKey is a fixed ed25519 key, so that the examples print the same
// signatures every time; make real ones with ed25519.GenerateKey.
var exampleKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// Verify the webhooks an endpoint receives, in its handler.
func ExampleVerifier_Verify() {
	secret, err := webhook.ParseSecret(specSecret) // from the endpoint's configuration
	if err != nil {
		log.Fatal(err)
	}
	v := &webhook.Verifier{Secrets: []webhook.Secret{secret}}
	seen := map[string]bool{} // a real receiver keeps the ids of the tolerance window
	now := specTime.Add(time.Second)

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read error", http.StatusBadRequest)
			return
		}
		id, err := v.Verify(r.Header, body, now) // time.Now() in a real receiver
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if seen[id] {
			return // a retry of a delivery already handled
		}
		seen[id] = true
		fmt.Println("handling", id)
	})

	send := func(body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body))
		webhook.SetHeaders(req.Header, specID, specTime, webhook.Sign(secret, specID, specTime, specPayload))
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		fmt.Println(strings.TrimSpace(fmt.Sprintf("%d %s", rec.Code, rec.Body)))
	}
	send(specPayload)
	send([]byte(`{"test": 1}`)) // not the body that was signed
	// Output:
	// handling msg_p5jXN8AQM9LWM0D4loKWxJek
	// 200
	// 401 webhook: no signature verifies
}

func ExampleSign() {
	secret, err := webhook.ParseSecret(specSecret)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(webhook.Sign(secret, specID, specTime, specPayload))
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

func ExampleSignEd25519() {
	sig := webhook.SignEd25519(exampleKey, specID, specTime, specPayload)
	fmt.Println(sig[:4], len(sig))

	v := &webhook.Verifier{PublicKeys: []ed25519.PublicKey{exampleKey.Public().(ed25519.PublicKey)}}
	h := http.Header{}
	webhook.SetHeaders(h, specID, specTime, sig)
	id, err := v.Verify(h, specPayload, specTime)
	fmt.Println(id, err)
	// Output:
	// v1a, 92
	// msg_p5jXN8AQM9LWM0D4loKWxJek <nil>
}

func ExampleSetHeaders() {
	secret, err := webhook.ParseSecret(specSecret)
	if err != nil {
		log.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, "https://till.example/hooks", bytes.NewReader(specPayload))
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	// During a rotation, sign with the old and the new secret.
	webhook.SetHeaders(req.Header, specID, specTime,
		webhook.Sign(secret, specID, specTime, specPayload),
		webhook.SignEd25519(exampleKey, specID, specTime, specPayload))
	fmt.Println(req.Header.Get(webhook.HeaderID))
	fmt.Println(req.Header.Get(webhook.HeaderTimestamp))
	fmt.Println(len(strings.Fields(req.Header.Get(webhook.HeaderSignature))), "signatures")
	// Output:
	// msg_p5jXN8AQM9LWM0D4loKWxJek
	// 1614265330
	// 2 signatures
}

func ExampleNewSecret() {
	s := webhook.NewSecret() // give it to the endpoint's owner, once
	fmt.Println(len(s), strings.HasPrefix(s.String(), "whsec_"))
	back, err := webhook.ParseSecret(s.String())
	fmt.Println(bytes.Equal(back, s), err)
	// Output:
	// 24 true
	// true <nil>
}

func ExampleParseSecret() {
	s, err := webhook.ParseSecret(specSecret)
	fmt.Println(len(s), err)

	_, err = webhook.ParseSecret("whsec_tooshort")
	fmt.Println(errors.Is(err, webhook.ErrBadKey))
	// Output:
	// 24 <nil>
	// true
}

func ExampleSecret_String() {
	s, err := webhook.ParseSecret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") // the prefix may be left out
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s)
	// Output: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
}

func ExampleFormatPrivateKey() {
	sk := webhook.FormatPrivateKey(exampleKey) // the sender's, kept secret
	k, err := webhook.ParsePrivateKey(sk)
	fmt.Println(sk[:5], k.Equal(exampleKey), err)
	// Output: whsk_ true <nil>
}

func ExampleFormatPublicKey() {
	fmt.Println(webhook.FormatPublicKey(exampleKey.Public().(ed25519.PublicKey))) // for the receivers
	// Output: whpk_6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=
}

func ExampleParsePrivateKey() {
	k, err := webhook.ParsePrivateKey(webhook.FormatPrivateKey(exampleKey))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(webhook.SignEd25519(k, specID, specTime, specPayload) == webhook.SignEd25519(exampleKey, specID, specTime, specPayload))

	_, err = webhook.ParsePrivateKey("whsk_AAAA")
	fmt.Println(err)
	// Output:
	// true
	// webhook: malformed key: a signing key is whsk_ followed by a 64-byte ed25519 private key in base64
}

func ExampleParsePublicKey() {
	pub, err := webhook.ParsePublicKey(webhook.FormatPublicKey(exampleKey.Public().(ed25519.PublicKey)))
	if err != nil {
		log.Fatal(err)
	}
	v := &webhook.Verifier{PublicKeys: []ed25519.PublicKey{pub}}
	h := http.Header{}
	webhook.SetHeaders(h, specID, specTime, webhook.SignEd25519(exampleKey, specID, specTime, specPayload))
	_, err = v.Verify(h, specPayload, specTime)
	fmt.Println(err)
	// Output: <nil>
}
