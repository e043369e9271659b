package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/loglineos/loglineos/internal/lllc"
)

// The scripts in testdata/script run the real logline binary (this test
// binary, re-executed as "logline") against real HTTP, as users meet it.
// Extra commands:
//
//	waitserver ADDRFILE            wait until the server that writes ADDRFILE is ready; set $URL
//	http [-token FILE] METHOD PATH [@FILE [TYPE]]
//	                               send a request to $URL (with the bearer token FILE holds);
//	                               body to stdout, "HTTP <status>" to stderr
//	flipbyte FILE OFFSET            flip the bits of one byte of FILE (OFFSET < 0 counts from the end)
//	replace FILE OLD NEW            replace the first OLD in FILE by NEW, in place
//	waitfor [-DUR] PATH REGEXP     GET $URL/PATH until the body matches (DUR, 10 s by default, at most)
//	freeport NAME...               set each NAME to a TCP port free on 127.0.0.1
//	wsread PATH N [@FILE]          open a WebSocket at $URL/PATH, then POST FILE to /ingest
//	                               (NDJSON) if given, and print the next N messages

func TestMain(m *testing.M) {
	if os.Getenv("LOGLINE_TEST_AS_LOGLINE") == "1" {
		os.Exit(Main(context.Background(), os.Args[1:], Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
	}
	if strings.HasSuffix(filepath.Base(os.Args[0]), ".test") { // the test binary itself, not a command a script runs
		raiseParallel(4)
	}
	testscript.Main(m, map[string]func(){
		"logline": func() {
			os.Exit(Main(context.Background(), os.Args[1:], Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
		},
		"loglinec": func() {
			os.Exit(lllc.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
		},
		"loglinerun": func() {
			os.Exit(lllc.RunMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
		},
	})
}

// raiseParallel lets n tests marked parallel run at once, unless
// -test.parallel was given: the scripts spend most of their time waiting
// on the servers and commands they start, not on the CPU, so more of them
// than GOMAXPROCS at a time shortens the package's run (by a quarter on
// two cores, under -race).
func raiseParallel(n int) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if p := flag.Lookup("test.parallel"); p != nil && !set && runtime.GOMAXPROCS(0) < n {
		_ = p.Value.Set(strconv.Itoa(n))
	}
}

func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitserver":  cmdWaitServer,
			"http":        cmdHTTP,
			"waitfor":     cmdWaitFor,
			"wsread":      cmdWSRead,
			"flipbyte":    cmdFlipByte,
			"replace":     cmdReplace,
			"receiver":    cmdReceiver,
			"sendhook":    cmdSendHook,
			"natscluster": cmdNATSCluster,
			"samesize":    cmdSameSize,
			"freeport":    cmdFreePort,
		},
		Condition: func(cond string) (bool, error) {
			if cond != "standardwebhooks" {
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			lib := os.Getenv("LOGLINE_TEST_STANDARDWEBHOOKS")
			_, nodeErr := exec.LookPath("node")
			_, err := os.Stat(filepath.Join(lib, "package.json"))
			return lib != "" && err == nil && nodeErr == nil, nil
		},
		Setup: func(env *testscript.Env) error {
			env.Setenv("LOGLINE_LEDGER_CHECKPOINT_INTERVAL", "100ms")
			std, err := filepath.Abs("../../stdlib")
			if err != nil {
				return err
			}
			env.Setenv("STDLIB", std)
			deploy, err := filepath.Abs("../../deploy")
			if err != nil {
				return err
			}
			env.Setenv("DEPLOY", deploy)
			if lib := os.Getenv("LOGLINE_TEST_STANDARDWEBHOOKS"); lib != "" {
				env.Setenv("LOGLINE_TEST_STANDARDWEBHOOKS", lib)
			}
			return nil
		},
	})
}

func cmdWaitServer(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waitserver ADDRFILE")
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(ts.MkAbs(args[0]))
		if err == nil && len(bytes.TrimSpace(b)) > 0 {
			url := "http://" + strings.TrimSpace(string(b))
			if resp, err := http.Get(url + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ts.Setenv("URL", url)
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	ts.Fatalf("server not ready after 30s")
}

func cmdHTTP(ts *testscript.TestScript, neg bool, args []string) {
	var token string
	if len(args) > 2 && args[0] == "-token" {
		token, args = strings.TrimSpace(ts.ReadFile(args[1])), args[2:]
	}
	if len(args) < 2 || len(args) > 4 {
		ts.Fatalf("usage: http [-token FILE] METHOD PATH [@FILE [TYPE]]")
	}
	var body io.Reader
	ctype := "application/x-ndjson"
	if len(args) >= 3 {
		name, ok := strings.CutPrefix(args[2], "@")
		if !ok {
			ts.Fatalf("body must be @FILE")
		}
		body = strings.NewReader(ts.ReadFile(name))
	}
	if len(args) == 4 {
		ctype = args[3]
	}
	req, err := http.NewRequest(args[0], ts.Getenv("URL")+args[1], body)
	ts.Check(err)
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	ts.Check(err)
	ts.Stdout().Write(b)
	fmt.Fprintf(ts.Stderr(), "HTTP %d\n", resp.StatusCode)
	if failed := resp.StatusCode >= 400; failed != neg {
		ts.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
}

func cmdWaitFor(ts *testscript.TestScript, neg bool, args []string) {
	wait := 10 * time.Second
	if len(args) == 3 && strings.HasPrefix(args[0], "-") {
		d, err := time.ParseDuration(args[0][1:])
		ts.Check(err)
		wait, args = d, args[1:]
	}
	if len(args) != 2 {
		ts.Fatalf("usage: waitfor [-DURATION] PATH REGEXP")
	}
	re := regexp.MustCompile(args[1])
	var last []byte
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		resp, err := http.Get(ts.Getenv("URL") + args[0])
		ts.Check(err)
		last, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if re.Match(last) {
			ts.Stdout().Write(last)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	ts.Fatalf("GET %s never matched %q; last: %s", args[0], args[1], last)
}

func cmdWSRead(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: wsread PATH N [@FILE]")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(ts.Getenv("URL"), "http") + args[0]
	c, _, err := websocket.Dial(ctx, url, nil)
	ts.Check(err)
	defer c.CloseNow()
	if len(args) == 3 {
		name, _ := strings.CutPrefix(args[2], "@")
		resp, err := http.Post(ts.Getenv("URL")+"/ingest", "application/x-ndjson", strings.NewReader(ts.ReadFile(name)))
		ts.Check(err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			ts.Fatalf("POST /ingest: HTTP %d", resp.StatusCode)
		}
	}
	for i := 0; i < n; i++ {
		_, msg, err := c.Read(ctx)
		if err != nil {
			ts.Fatalf("message %d of %d: %v", i+1, n, err)
		}
		fmt.Fprintf(ts.Stdout(), "%s\n", msg)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

func cmdFlipByte(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: flipbyte FILE OFFSET")
	}
	name := ts.MkAbs(args[0])
	off, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	b, err := os.ReadFile(name)
	ts.Check(err)
	if off < 0 {
		off += int64(len(b))
	}
	if off < 0 || off >= int64(len(b)) {
		ts.Fatalf("offset %s outside %s (%d bytes)", args[1], args[0], len(b))
	}
	b[off] ^= 0xff
	ts.Check(os.WriteFile(name, b, 0o644))
}

func cmdReplace(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: replace FILE OLD NEW")
	}
	name := ts.MkAbs(args[0])
	b, err := os.ReadFile(name)
	ts.Check(err)
	if !bytes.Contains(b, []byte(args[1])) {
		ts.Fatalf("%s does not contain %q", args[0], args[1])
	}
	ts.Check(os.WriteFile(name, bytes.Replace(b, []byte(args[1]), []byte(args[2]), 1), 0o644))
}
