package client_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/loglineos/loglineos/client"
	"github.com/loglineos/loglineos/internal/server"
)

// operator reads the credentials a server without --dev writes for its
// bootstrap operator at its first start.
func operator(t *testing.T, data string) (id, secret string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "identity", "operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	var op struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(b, &op); err != nil {
		t.Fatal(err)
	}
	return op.ClientID, op.ClientSecret
}

func TestWithServiceAccount(t *testing.T) {
	var rc routeCounter
	var data string
	ts := startServer(t, serverOpts{
		cfg:  func(c *server.Config) { c.Dev = false; data = c.Data },
		wrap: rc.wrap,
	})
	id, secret := operator(t, data)
	ctx := testCtx(t)

	c := newClient(t, ts.URL, client.WithServiceAccount(id, secret))
	for i := range 3 {
		ingest(t, c, sales(server.OperatorTenant, i, 1)...)
	}
	if got, want := rc.count("POST /auth/token"), 1; got != want {
		t.Errorf("token exchanges for 3 requests: got %d, want %d (the token is kept)", got, want)
	}

	bad := newClient(t, ts.URL, client.WithServiceAccount(id, secret+"x"))
	_, err := bad.Ingest(ctx, sale(server.OperatorTenant, "s_bad", "order:1"))
	if !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("wrong secret: got %v, want ErrUnauthenticated", err)
	}
	if got, want := rc.count("POST /ingest"), 3; got != want {
		t.Errorf("ingest requests: got %d, want %d (none sent without a token)", got, want)
	}

	// Without a token the server refuses: the exchange is what let the
	// first client in.
	_, err = newClient(t, ts.URL).Ingest(ctx, sale(server.OperatorTenant, "s_anon", "order:1"))
	if !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("no token: got %v, want ErrUnauthenticated", err)
	}
}
