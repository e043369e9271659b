package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"testing"
	"time"
)

// measure runs op b.N times and reports the percentiles of its wall time
// (p50-us, p99-us) and of its thread CPU time (cpu-p50-us, cpu-p99-us).
func measure(b *testing.B, op func(i int)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	wall := make([]time.Duration, 0, b.N)
	cpu := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c0, w0 := threadCPU(), time.Now()
		op(i)
		w1, c1 := time.Now(), threadCPU()
		wall = append(wall, w1.Sub(w0))
		cpu = append(cpu, c1-c0)
	}
	b.StopTimer()
	reportPercentiles(b, "", wall, 50, 99)
	reportPercentiles(b, "cpu-", cpu, 50, 99)
}

// reportPercentiles reports the given percentiles of lat as custom
// metrics, in microseconds (p50-us, p99-us ...).
func reportPercentiles(b *testing.B, prefix string, lat []time.Duration, ps ...int) {
	b.Helper()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	for _, p := range ps {
		i := (len(lat)*p+99)/100 - 1
		i = min(max(i, 0), len(lat)-1)
		b.ReportMetric(float64(lat[i])/float64(time.Microsecond), fmt.Sprintf("%sp%d-us", prefix, p))
	}
}

func benchTokens(b *testing.B, s *Service, n int) []*http.Request {
	reqs := make([]*http.Request, n)
	for i := range reqs {
		tok, err := s.Issue(fmt.Sprintf("u_%d", i), "acme", []string{RoleWriter})
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = bearer(tok.AccessToken)
	}
	return reqs
}

// BenchmarkVerifyLLST is the cold path: every Authenticate checks the
// Ed25519 signature and decodes the claims (the verified-token cache is
// off), over 1000 distinct tokens.
func BenchmarkVerifyLLST(b *testing.B) {
	s := newTestService(b, newFakeClock(), func(c *Config) { c.VerifyCacheSize = -1 })
	benchVerify(b, s, benchTokens(b, s, 1000))
}

// BenchmarkVerifyLLSTCached is the common path: an app reusing its token,
// so the signature was checked at the first request.
func BenchmarkVerifyLLSTCached(b *testing.B) {
	s := newTestService(b, newFakeClock())
	benchVerify(b, s, benchTokens(b, s, 1000))
}

func benchVerify(b *testing.B, s *Service, reqs []*http.Request) {
	for _, r := range reqs { // warm up (fills the cache when there is one)
		if _, err := s.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
	measure(b, func(i int) {
		p, err := s.Authenticate(reqs[i%len(reqs)])
		if err != nil || !p.Can("acme", CapIngest) {
			b.Fatal(err)
		}
	})
}

// BenchmarkEd25519Verify is the floor: the signature check alone, over a
// message the size of an LLST's signing input.
func BenchmarkEd25519Verify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 330)
	sig := ed25519.Sign(priv, msg)
	measure(b, func(int) {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("bad signature")
		}
	})
}

// BenchmarkVerifySig is the verifier's signature check alone (the
// expanded key of curve25519-voi), next to BenchmarkEd25519Verify.
func BenchmarkVerifySig(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	k, err := newRingKey("k", priv)
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 330)
	sig := ed25519.Sign(priv, msg)
	measure(b, func(int) {
		if !k.verifySig(msg, sig) {
			b.Fatal("bad signature")
		}
	})
}

// BenchmarkLoginRoundTrip is a whole browser login against the local
// OpenID provider: /auth/login, the provider's authorize, /auth/callback
// with the code exchange, the id_token check and the LLST.
func BenchmarkLoginRoundTrip(b *testing.B) {
	e := newOIDCEnv(b)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		resp, err := browser(nil).Get(e.srv.URL + PathLogin)
		if err != nil {
			b.Fatal(err)
		}
		var tok Token
		err = json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		lat = append(lat, time.Since(start))
		if err != nil || resp.StatusCode != 200 || tok.AccessToken == "" {
			b.Fatalf("login: %d %v", resp.StatusCode, err)
		}
	}
	b.StopTimer()
	reportPercentiles(b, "", lat, 50, 95, 99)
}
