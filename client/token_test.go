package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loglineos/loglineos/client"
	"github.com/loglineos/loglineos/internal/cli"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/server"
)

// operator reads the credentials a server without --dev writes for its
// bootstrap operator at its first start.
func operator(t *testing.T, data string) (id, secret string) {
	t.Helper()
	a, err := client.ReadAccountFile(filepath.Join(data, "identity", "operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	return a.ClientID, a.ClientSecret
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

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// TestWithAccountFile authenticates with the credentials files a real
// server without --dev writes (operator.json) and `logline accounts create`
// prints, and checks that the token is kept, then exchanged again a minute
// before it expires.
func TestWithAccountFile(t *testing.T) {
	var rc routeCounter
	var data string
	ts := startServer(t, serverOpts{
		cfg:  func(c *server.Config) { c.Dev = false; data = c.Data },
		wrap: rc.wrap,
	})
	ctx := testCtx(t)
	operatorFile := filepath.Join(data, "identity", "operator.json")

	// logline accounts create --url URL --credentials operator.json --tenant t_bakery --role app > till.json
	var stdout, stderr bytes.Buffer
	args := []string{"accounts", "create", "--url", ts.URL, "--credentials", operatorFile, "--tenant", "t_bakery", "--role", "app", "--name", "till"}
	if code := cli.Main(ctx, args, cli.Stdio{Out: &stdout, Err: &stderr}); code != 0 {
		t.Fatalf("logline %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	tillFile := filepath.Join(t.TempDir(), "till.json")
	if err := os.WriteFile(tillFile, stdout.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	till, err := client.ReadAccountFile(tillFile)
	if err != nil {
		t.Fatal(err)
	}
	if till.Tenant != "t_bakery" || till.Role != "app" || !strings.HasPrefix(till.ClientSecret, "llsa_") {
		t.Errorf("accounts create's output read as %+v", *till)
	}
	if s := fmt.Sprint(till); strings.Contains(s, till.ClientSecret) || !strings.Contains(s, till.ClientID) {
		t.Errorf("an Account prints as %q: want its id and not its secret", s)
	}

	for _, tt := range []struct {
		name, file, tenant string
	}{
		{"operator.json", operatorFile, server.OperatorTenant},
		{"accounts create", tillFile, "t_bakery"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Date(2025, 10, 5, 22, 0, 0, 0, time.UTC)
			clock := &fakeClock{now: start}
			c := newClient(t, ts.URL, client.WithAccountFile(tt.file), client.WithClock(clock.Now))
			exchanges := rc.count("POST /auth/token")
			renewAt := identity.DefaultTokenTTL - time.Minute // the server's tokens, renewed a minute early
			for i, step := range []struct {
				after time.Duration
				new   bool // a new exchange
			}{
				{0, true},
				{renewAt - time.Second, false},
				{renewAt, true},
				{2*renewAt - time.Second, false},
				{2 * renewAt, true},
			} {
				clock.Set(start.Add(step.after))
				ingest(t, c, sale(tt.tenant, fmt.Sprintf("s_%s_%d", tt.name, i), "order:1"))
				now := rc.count("POST /auth/token")
				if got := now > exchanges; got != step.new {
					t.Errorf("%s after the first exchange: exchanged %v, want %v", step.after, got, step.new)
				}
				exchanges = now
			}
		})
	}
}

// TestReadAccountFile checks that a credentials file that cannot be used is
// one error naming the file and what is wrong, from ReadAccountFile and
// from New with WithAccountFile, and never a panic.
func TestReadAccountFile(t *testing.T) {
	dir := t.TempDir()
	good := `{"client_id":"sa_1","client_secret":"llsa_s","tenant":"t_bakery","role":"app","note":"ignored"}`
	tests := []struct {
		name    string
		content *string // nil: no file
		want    string  // in the message
		is      error   // besides ErrBadAccountFile
	}{
		{name: "missing", want: "no such file or directory", is: fs.ErrNotExist},
		{name: "empty", content: ptr(" \n"), want: "empty"},
		{name: "not JSON", content: ptr("client_id=sa_1\n"), want: "not a JSON object"},
		{name: "a JSON array", content: ptr(`["sa_1","llsa_s"]`), want: "not a JSON object"},
		{name: "cut short", content: ptr(`{"client_id":"sa_1","client_secret":"llsa`), want: "not valid JSON"},
		{name: "a number for the id", content: ptr(`{"client_id":1,"client_secret":"llsa_s"}`), want: "client_id is not a string"},
		{name: "no client_secret", content: ptr(`{"client_id":"sa_1"}`), want: "no client_secret"},
		{name: "no client_id", content: ptr(`{"client_secret":"llsa_s"}`), want: "no client_id"},
		{name: "an empty object", content: ptr(`{}`), want: "no client_id and no client_secret"},
		{name: "too large", content: ptr(`{"client_id":"sa_1","client_secret":"llsa_s","note":"` + strings.Repeat("x", 70<<10) + `"}`), want: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".json")
			if tt.content != nil {
				if err := os.WriteFile(path, []byte(*tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			a, err := client.ReadAccountFile(path)
			if !errors.Is(err, client.ErrBadAccountFile) || tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("ReadAccountFile = %+v, %v; want ErrBadAccountFile", a, err)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, tt.want) || strings.Count(msg, path) != 1 {
				t.Errorf("%q: want the file's name once and %q", msg, tt.want)
			}
			saysOnce(t, tt.name, err)
			if _, err2 := client.New("http://127.0.0.1:1", client.WithAccountFile(path)); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("New with WithAccountFile: %v, want %v", err2, err)
			}
		})
	}
	path := filepath.Join(dir, "good.json")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := client.ReadAccountFile(path)
	want := client.Account{ClientID: "sa_1", ClientSecret: "llsa_s", Tenant: "t_bakery", Role: "app"}
	if err != nil || *a != want {
		t.Errorf("ReadAccountFile = %+v, %v; want %+v", a, err, want)
	}
	if _, err := client.ReadAccountFile(dir); !errors.Is(err, client.ErrBadAccountFile) {
		t.Errorf("ReadAccountFile of a directory: %v, want ErrBadAccountFile", err)
	}
}

func ptr(s string) *string { return &s }
