package cli

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdReceiver is a webhook receiver for scripts, an app's endpoint:
//
//	receiver start ADDRFILE DIR FAILFIRST   listen on 127.0.0.1:0, write the address to ADDRFILE and $RECV,
//	                                        save every request as DIR/NNNN.json, answer 503 to the
//	                                        first FAILFIRST requests and 204 after
//	receiver fail N                         answer 503 to the next N requests
//	receiver sameid DIR PATH                fail unless every request to PATH carried one webhook-id
//	receiver check DIR SECRET               verify every saved delivery that was answered 204 and
//	                                        print "ok <webhook-id> <path>" for each, in order
//
// check verifies signatures with code written here from the Standard Webhooks
// specification alone (not the server's), and fails on any that does not
// verify. Scripts verify the same files with the specification's reference
// library too, when node is installed.
func cmdReceiver(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: receiver start|fail|check ...")
	}
	switch args[0] {
	case "start":
		if len(args) != 4 {
			ts.Fatalf("usage: receiver start ADDRFILE DIR FAILFIRST")
		}
		fail, err := strconv.Atoi(args[3])
		ts.Check(err)
		dir := ts.MkAbs(args[2])
		ts.Check(os.MkdirAll(dir, 0o755))
		rc := &receiver{dir: dir, fail: fail}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		ts.Check(err)
		srv := &http.Server{Handler: rc, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		ts.Defer(func() { srv.Close() })
		receivers.Store(ts, rc)
		ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(ln.Addr().String()), 0o644))
		ts.Setenv("RECV", ln.Addr().String())
	case "fail":
		v, ok := receivers.Load(ts)
		if !ok || len(args) != 2 {
			ts.Fatalf("usage: receiver fail N (after receiver start)")
		}
		n, err := strconv.Atoi(args[1])
		ts.Check(err)
		rc := v.(*receiver)
		rc.mu.Lock()
		rc.fail = n
		rc.mu.Unlock()
	case "sameid":
		// receiver sameid DIR PATH: every request to PATH, failed or not,
		// carried one webhook-id (retries and redeliveries keep it).
		if len(args) != 3 {
			ts.Fatalf("usage: receiver sameid DIR PATH")
		}
		files, _ := filepath.Glob(filepath.Join(ts.MkAbs(args[1]), "*.json"))
		ids := map[string]int{}
		for _, f := range files {
			var d savedDelivery
			ts.Check(json.Unmarshal([]byte(ts.ReadFile(f)), &d))
			if d.Path == args[2] {
				ids[d.ID]++
			}
		}
		if len(ids) != 1 {
			ts.Fatalf("requests to %s carried %d webhook-ids: %v", args[2], len(ids), ids)
		}
		for id, n := range ids {
			fmt.Fprintf(ts.Stdout(), "%s %d requests\n", id, n)
		}
	case "check":
		if len(args) != 3 {
			ts.Fatalf("usage: receiver check DIR SECRET")
		}
		checkDeliveries(ts, ts.MkAbs(args[1]), args[2])
	default:
		ts.Fatalf("unknown receiver command %q", args[0])
	}
}

var receivers sync.Map // *testscript.TestScript -> *receiver

type receiver struct {
	dir  string
	mu   sync.Mutex
	n    int
	fail int
}

// savedDelivery is one request as the receiver saved it.
type savedDelivery struct {
	Path      string `json:"path"`
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Signature string `json:"signature"`
	Body      string `json:"body"`
	Answer    int    `json:"answer"`
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	rc.mu.Lock()
	rc.n++
	n := rc.n
	answer := http.StatusNoContent
	if rc.fail > 0 {
		rc.fail--
		answer = http.StatusServiceUnavailable
	}
	d := savedDelivery{Path: r.URL.Path, ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp"),
		Signature: r.Header.Get("webhook-signature"), Body: string(body), Answer: answer}
	b, _ := json.Marshal(d)
	os.WriteFile(filepath.Join(rc.dir, fmt.Sprintf("%04d.json", n)), b, 0o644)
	rc.mu.Unlock()
	w.WriteHeader(answer)
}

// checkDeliveries verifies the saved deliveries answered 204 from the
// specification: the signed content is id.timestamp.body, signed with
// HMAC-SHA256 under the base64 key after "whsec_", sent as "v1,<base64>"
// among space-separated signatures.
func checkDeliveries(ts *testscript.TestScript, dir, secret string) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	ts.Check(err)
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		var d savedDelivery
		ts.Check(json.Unmarshal([]byte(ts.ReadFile(f)), &d))
		if d.Answer != http.StatusNoContent {
			continue
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(d.ID + "." + d.Timestamp + "." + d.Body))
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		ok := false
		for _, s := range strings.Fields(d.Signature) {
			ok = ok || hmac.Equal([]byte(s), []byte(want))
		}
		if !ok {
			ts.Fatalf("%s: signature %q does not verify (want %s)", f, d.Signature, want)
		}
		fmt.Fprintf(ts.Stdout(), "ok %s %s\n", d.ID, d.Path)
	}
}
