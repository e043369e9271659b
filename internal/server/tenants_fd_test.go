//go:build unix

package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// manyTenantsEnv makes TestManyTenantsFewFiles run its scenario, in a child
// process whose file descriptor limit it lowers first.
const manyTenantsEnv = "LOGLINE_MANY_TENANTS"

// TestManyTenantsFewFiles: a server with RLIMIT_NOFILE = 1024 takes spans of
// 50,000 tenants (10,000 under the race detector), derives them all, stays
// ready, serves their derived streams, and does the same after a restart on
// the same data.
func TestManyTenantsFewFiles(t *testing.T) {
	n := 50_000
	if raceEnabled || testing.Short() {
		n = 10_000
	}
	if v := os.Getenv(manyTenantsEnv); v != "" {
		n, _ = strconv.Atoi(v)
		manyTenants(t, n)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestManyTenantsFewFiles$", "-test.v")
	cmd.Env = append(os.Environ(), manyTenantsEnv+"="+strconv.Itoa(n))
	out, err := cmd.CombinedOutput()
	for _, ln := range strings.Split(string(out), "\n") {
		if strings.Contains(ln, "tenants_fd_test.go") {
			t.Log(strings.TrimSpace(ln))
		}
	}
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func manyTenants(t *testing.T, n int) {
	const limit = 1024
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	data := t.TempDir()
	s, ts := testServer(t, data, nil)
	when := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"id":"s_%d","tenant":"t_%06d","who":"dan","did":"sale.post","this":"order:%d","when":%q,"status":"confirmed"}`+"\n", i, i, i, when)
		if (i+1)%5000 == 0 || i == n-1 {
			post(t, ts.URL, b.Bytes())
			b.Reset()
		}
	}
	waitDerivedOrStopped(t, s)
	t.Logf("%d tenants ingested and derived in %s, %d files open", n, time.Since(start).Round(time.Millisecond), openFiles())
	checkManyTenants(t, ts.URL, n)

	ts.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	s2, ts2 := testServer(t, data, nil)
	waitDerivedOrStopped(t, s2)
	t.Logf("restarted and ready in %s, %d files open", time.Since(start).Round(time.Millisecond), openFiles())
	checkManyTenants(t, ts2.URL, n)
}

// waitDerivedOrStopped waits until derivation has caught up, failing at
// once if it stopped.
func waitDerivedOrStopped(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for s.runner.Cursor() < s.ledger.Next() {
		if err := s.runner.Err(); err != nil {
			t.Fatalf("derivation stopped at %d of %d: %v", s.runner.Cursor(), s.ledger.Next(), err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("derivation stuck at %d of %d", s.runner.Cursor(), s.ledger.Next())
		}
		select {
		case <-s.runner.Changed():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// checkManyTenants asks /readyz and the derived streams of a few tenants.
func checkManyTenants(t *testing.T, url string, n int) {
	t.Helper()
	code, body := get(t, url+"/readyz")
	if code != http.StatusOK {
		t.Fatalf("/readyz: HTTP %d: %s", code, body)
	}
	for _, i := range []int{0, 1, n / 3, n / 2, n - 1} {
		tenant := fmt.Sprintf("t_%06d", i)
		code, body := get(t, url+"/derived/stream?tenant="+tenant)
		if code != http.StatusOK {
			t.Fatalf("%s: HTTP %d: %s", tenant, code, body)
		}
		want := fmt.Sprintf(`"src_span_id":"s_%d"`, i)
		if lines := strings.Split(strings.TrimSpace(body), "\n"); len(lines) != 1 || !strings.Contains(lines[0], want) {
			t.Fatalf("%s: derived stream %q, want one edge of s_%d", tenant, body, i)
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// openFiles counts this process's open file descriptors (-1 where /proc
// does not tell).
func openFiles() int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(es)
}
