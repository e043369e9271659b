package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loglineos/loglineos/client/webhook"
)

// bench sink counts the deliveries whose signature verifies, answers 401 to
// the others, and stops at --count.
func TestBenchSink(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	addrFile := filepath.Join(t.TempDir(), "addr")
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(context.Background(), []string{"bench", "sink", "--listen", "127.0.0.1:0", "--addr-file", addrFile,
			"--count", "2", "--secret", secret, "--timeout", "20s"}, Stdio{Out: &out, Err: &errOut})
	}()
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(addrFile)
		addr = strings.TrimSpace(string(b))
	}
	key, _ := webhook.ParseSecret(secret)
	post := func(k webhook.Secret, id string) int {
		body := []byte(`{"n":1}`)
		req, _ := http.NewRequest("POST", "http://"+addr+"/hook", bytes.NewReader(body))
		now := time.Now()
		webhook.SetHeaders(req.Header, id, now, webhook.Sign(k, id, now, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(webhook.NewSecret(), "msg_bad"); got != http.StatusUnauthorized {
		t.Errorf("a bad signature: %d, want 401", got)
	}
	for _, id := range []string{"msg_1", "msg_2"} {
		if got := post(key, id); got != http.StatusNoContent {
			t.Errorf("%s: %d, want 204", id, got)
		}
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("bench sink did not stop at --count")
	}
	var rep sinkReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if rep.Deliveries != 2 || rep.BadSigs != 1 {
		t.Errorf("report %+v, want 2 deliveries and 1 bad signature", rep)
	}
}
