package identity

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestRevalidate: a principal authenticated earlier is refused by
// Revalidate once its service account is revoked, once its person is
// revoked, and once its token has expired; OnRevoke hears of each
// revocation with the subject.
func TestRevalidate(t *testing.T) {
	clock := newFakeClock()
	var mu sync.Mutex
	var heard []string
	s := newTestService(t, clock, func(c *Config) {
		c.OnRevoke = func(subject string) {
			mu.Lock()
			defer mu.Unlock()
			heard = append(heard, subject)
		}
	})
	acct, secret, err := s.CreateServiceAccount(context.Background(), NewServiceAccount{Tenant: "acme", Role: RoleApp})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.ExchangeClientCredentials(acct.ID, secret)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.AuthenticateToken(tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Expires.Equal(tok.ExpiresAt) || p.IssuedAt.IsZero() {
		t.Fatalf("principal times: issued %v expires %v, token expires %v", p.IssuedAt, p.Expires, tok.ExpiresAt)
	}
	if err := s.Revalidate(p); err != nil {
		t.Fatalf("fresh principal: %v", err)
	}
	if err := s.RevokeServiceAccount(context.Background(), acct.ID, "u_admin"); err != nil {
		t.Fatal(err)
	}
	if got := ReasonOf(s.Revalidate(p)); got != ReasonRevoked {
		t.Fatalf("after revocation: reason %q, want %q", got, ReasonRevoked)
	}

	person, err := s.Issue("u_jane", "acme", []string{RoleReader})
	if err != nil {
		t.Fatal(err)
	}
	pp, err := s.AuthenticateToken(person.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Second)
	s.RevokeSubject("u_jane")
	if got := ReasonOf(s.Revalidate(pp)); got != ReasonRevoked {
		t.Fatalf("person after revocation: reason %q", got)
	}

	later, err := s.Issue("u_joe", "acme", []string{RoleReader})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := s.AuthenticateToken(later.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(DefaultTokenTTL)
	if got := ReasonOf(s.Revalidate(pl)); got != ReasonExpired {
		t.Fatalf("at expiry: reason %q, want %q", got, ReasonExpired)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{acct.Subject(), "u_jane"}; !slices.Equal(heard, want) {
		t.Fatalf("OnRevoke heard %v, want %v", heard, want)
	}
}
