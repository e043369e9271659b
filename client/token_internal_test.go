package client

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestServiceAccountRenews checks that a kept token is exchanged again
// shortly before it expires, and not before.
func TestServiceAccountRenews(t *testing.T) {
	var n atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" ||
			r.PostForm.Get("client_id") != "sa_1" || r.PostForm.Get("client_secret") != "llsa_s" || r.Header.Get("Authorization") != "" {
			http.Error(w, "bad token request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"tok%d","token_type":"Bearer","expires_in":900}`, n.Add(1))
	}))
	t.Cleanup(hs.Close)
	c, err := New(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 10, 5, 22, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	sa := newServiceAccount(c, "sa_1", "llsa_s")
	ctx := context.Background()
	for _, tt := range []struct {
		after time.Duration // since the first exchange
		want  string
	}{
		{0, "tok1"},
		{13 * time.Minute, "tok1"},
		{14*time.Minute - time.Second, "tok1"},
		{14 * time.Minute, "tok2"}, // a minute before the 15 minutes end
		{20 * time.Minute, "tok2"},
		{29 * time.Minute, "tok3"},
	} {
		now = time.Date(2025, 10, 5, 22, 0, 0, 0, time.UTC).Add(tt.after)
		got, err := sa.token(ctx)
		if err != nil || got != tt.want {
			t.Errorf("after %s: got %q, %v; want %q", tt.after, got, err, tt.want)
		}
	}
}
