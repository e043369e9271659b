package cli

import (
	"bytes"
	"crypto/ed25519"
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
//	receiver check DIR SECRET [@KEYFILE]    verify every saved delivery that was answered 204 (its
//	                                        "v1," signature, and its "v1a," one with the public key
//	                                        of GET /webhooks/key saved in KEYFILE) and print
//	                                        "ok <webhook-id> <path>" for each, in order
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
		if len(args) != 3 && len(args) != 4 {
			ts.Fatalf("usage: receiver check DIR SECRET [@KEYFILE]")
		}
		var pub ed25519.PublicKey
		if len(args) == 4 {
			var k struct {
				PublicKey string `json:"public_key"`
			}
			ts.Check(json.Unmarshal([]byte(ts.ReadFile(strings.TrimPrefix(args[3], "@"))), &k))
			b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(k.PublicKey, "whpk_"))
			ts.Check(err)
			pub = b
		}
		checkDeliveries(ts, ts.MkAbs(args[1]), args[2], pub)
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
func checkDeliveries(ts *testscript.TestScript, dir, secret string, pub ed25519.PublicKey) {
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
		ok, okA := false, pub == nil
		for _, s := range strings.Fields(d.Signature) {
			ok = ok || hmac.Equal([]byte(s), []byte(want))
			if sig, found := strings.CutPrefix(s, "v1a,"); found && pub != nil {
				raw, err := base64.StdEncoding.DecodeString(sig)
				okA = okA || (err == nil && ed25519.Verify(pub, []byte(d.ID+"."+d.Timestamp+"."+d.Body), raw))
			}
		}
		if !ok || !okA {
			ts.Fatalf("%s: signatures %q do not verify (v1 %v, v1a %v; want v1 %s)", f, d.Signature, ok, okA, want)
		}
		fmt.Fprintf(ts.Stdout(), "ok %s %s\n", d.ID, d.Path)
	}
}

// cmdSendHook posts a webhook to the server as a third party would, signed
// from the specification (not with the server's code):
//
//	sendhook PATH SECRET ID AGE @FILE [PAD]
//	                                     POST FILE to $URL/PATH with webhook-id ID and a
//	                                     timestamp AGE old (a duration: 0s, 10m), its JSON
//	                                     object given a member "pad" of PAD bytes if set; the
//	                                     answer goes to stdout, its status to stderr
//
// The command fails on a 4xx or 5xx answer unless negated.
func cmdSendHook(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 5 && len(args) != 6 {
		ts.Fatalf("usage: sendhook PATH SECRET ID AGE @FILE [PAD]")
	}
	age, err := time.ParseDuration(args[3])
	ts.Check(err)
	body := []byte(ts.ReadFile(strings.TrimPrefix(args[4], "@")))
	if len(args) == 6 {
		// A member "pad" of PAD bytes, to make the event that much larger.
		n, err := strconv.Atoi(args[5])
		ts.Check(err)
		body = bytes.TrimSpace(body)
		body = append(body[:len(body)-1], `,"pad":"`+strings.Repeat("x", n)+`"}`...)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(args[1], "whsec_"))
	ts.Check(err)
	stamp := strconv.FormatInt(time.Now().Add(-age).Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(args[2] + "." + stamp + "."))
	mac.Write(body)
	req, err := http.NewRequest("POST", ts.Getenv("URL")+args[0], strings.NewReader(string(body)))
	ts.Check(err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", args[2])
	req.Header.Set("webhook-timestamp", stamp)
	req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	ts.Stdout().Write(b)
	fmt.Fprintf(ts.Stderr(), "HTTP %d\n", resp.StatusCode)
	if failed := resp.StatusCode >= 400; failed != neg {
		ts.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
}
