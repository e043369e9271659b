package identity

import (
	"context"
	"crypto"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// fakeClock is the injectable clock of the tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// receipts is a ReceiptRecorder that remembers, and fails on demand.
type receipts struct {
	mu   sync.Mutex
	ops  []string
	last map[string]any
	fail error
}

func (r *receipts) Record(_ context.Context, op string, fields map[string]any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.ops = append(r.ops, op)
	r.last = fields
	return nil
}

func (r *receipts) Ops() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ops...)
}

func newTestService(t testing.TB, clock *fakeClock, mods ...func(*Config)) *Service {
	t.Helper()
	cfg := Config{
		Issuer:   "https://logline.test",
		Audience: "loglineos",
		Now:      clock.Now,
		Tenants: map[string]TenantConfig{
			"acme":   {},
			"globex": {},
		},
	}
	for _, m := range mods {
		m(&cfg)
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// bearer builds a request carrying tok.
func bearer(tok string) *http.Request {
	r := httptest.NewRequest("GET", "/x", nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}

// guarded is the tiny handler of the end-to-end tests: it authenticates
// and requires a capability on the tenant named in the path.
func guarded(s *Service, c Capability) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.Authenticate(r)
		if err == nil {
			err = Authorize(p, r.PathValue("tenant"), c)
		}
		if err != nil {
			WriteProblem(w, r, err)
			return
		}
		_ = json.NewEncoder(w).Encode(p)
	})
}

const cryptoSHA256 = crypto.SHA256
