package console_test

// Browser tests: a real server, driven through its web console by headless
// Chromium (Debian's chromium; .ci/run installs it and sets
// LOGLINE_TEST_REQUIRE_BROWSER=1 so that a missing browser fails instead of
// skipping). Screenshots go to $LOGLINE_TEST_ARTIFACTS when it is set.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/loglineos/loglineos/internal/server"
	"github.com/loglineos/loglineos/internal/server/servertest"
)

// browser starts headless Chromium for one test and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("LOGLINE_TEST_REQUIRE_BROWSER") != "" {
			t.Fatal("no chromium on PATH (LOGLINE_TEST_REQUIRE_BROWSER is set): apt-get install chromium")
		}
		t.Skip("no chromium on PATH: the browser tests need Debian's chromium (.ci/run installs it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 120*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// do runs steps in the page; a failure names the step and the page's
// status line.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("status")))
		t.Fatalf("%s: %v (page status: %q)", what, err, status)
	}
}

// waitFor waits up to 20 s for a JavaScript condition; on failure it shows
// the element named by sel.
func waitFor(t *testing.T, ctx context.Context, cond, sel string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector(`+strconv.Quote(sel)+`)||{}).outerHTML + " / status: " + document.getElementById("status").textContent`))
		t.Fatalf("waiting for %s: %v; %s", cond, err, html)
	}
}

// get runs one action that returns a value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("status")))
		t.Fatalf("%s: %v (page status: %q)", what, err, status)
	}
	return v
}

func attr(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	return get(t, ctx, "attribute "+name+" of "+sel, chromedp.AttributeValue(chromedp.CSS(sel), name)).Value
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return get(t, ctx, "text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// screenshot saves the page as name.png in $LOGLINE_TEST_ARTIFACTS.
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("LOGLINE_TEST_ARTIFACTS")
	if dir == "" {
		return
	}
	png := get(t, ctx, "screenshot", chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Error(err)
	}
}

func post(t *testing.T, url, token, body string) []byte {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/ingest", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-ndjson")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("ingest: HTTP %d: %s", resp.StatusCode, b)
	}
	return b
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: HTTP %d: %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// spanLine is one span of thing n, its k-th (the last one closes it).
func spanLine(tenant string, n, k int, last bool) string {
	did := "sale.post"
	if last {
		did = "sale.close"
	}
	when := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(n)*time.Hour + time.Duration(k)*time.Minute)
	return fmt.Sprintf(`{"id":"s_%d_%d","tenant":%q,"who":"dan","did":%q,"this":"order:%d","when":%q,"status":"confirmed","confirmed_by":["pos://%d"],"data":{"gross":19.90,"note":"<b>&"}}`,
		n, k, tenant, did, n, when.Format(time.RFC3339), k%3) + "\n"
}

// The console on a --dev server: a span posted through the API appears in
// the page live; its receipt verifies in the browser with WebCrypto, and a
// changed span does not; the checkpoint verifies; the histogram has the
// meter's counts, which are the scores the derived stream carries; a
// trajectory opens with its score; the operator view lists the tenant.
func TestConsoleDev(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.Data = t.TempDir()
	cfg.Dev = true
	os.MkdirAll(filepath.Join(cfg.Data, "cfg", "tenants"), 0o755)
	os.WriteFile(filepath.Join(cfg.Data, "cfg", "tenants", "t_bakery.yaml"), []byte(
		"policies:\n  trajectory_linker: {close_on_did: [\"sale.close\"]}\n"+
			"  quality_meter: {warmup: 1, min_score: 0, percentile_target: \"p50\", credit_budget: false}\n"), 0o644)
	srv := servertest.Start(t, cfg)
	ctx := browser(t)

	// Some history before the page opens: 12 things of 1 to 6 spans, each
	// closed by its last, so trajectories are scored and some flagged.
	var hist strings.Builder
	for n := range 12 {
		spans := 1 + n%6
		for k := range spans {
			hist.WriteString(spanLine("t_bakery", n, k, k == spans-1))
		}
	}
	post(t, srv.URL, "", hist.String())

	do(t, ctx, "open the console",
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("tenant-input")),
		// By keyboard: type the tenant, Enter.
		chromedp.SendKeys(chromedp.ID("tenant-input"), "t_bakery\r"),
		chromedp.WaitVisible(chromedp.ID("ingest-h")),
		chromedp.WaitVisible(chromedp.CSS(`#live tbody tr[data-id="s_11_5"]`)),
	)

	// Live: a span posted now shows up without a reload.
	post(t, srv.URL, "", spanLine("t_bakery", 20, 0, false))
	do(t, ctx, "see the new span appear live",
		chromedp.WaitVisible(chromedp.CSS(`#live tbody tr[data-id="s_20_0"]`)))

	// Its receipt, checked in the page.
	do(t, ctx, "verify a receipt in the page",
		chromedp.Click(chromedp.CSS(`#live tbody tr[data-id="s_20_0"] button[aria-label^="Verify"]`)))
	waitFor(t, ctx, `document.getElementById("receipt-result").dataset.ok !== undefined`, "#receipt-result")
	if ok, txt := attr(t, ctx, "#receipt-result", "data-ok"), text(t, ctx, "#receipt-result"); ok != "true" || !strings.Contains(txt, "verified in this browser") {
		t.Fatalf("receipt check in the page: data-ok=%q %q", ok, txt)
	}
	// The same check refuses a span that differs from the stored one, a
	// receipt with another signature, and another key.
	refusals := get(t, ctx, "refuse changed data", chromedp.Evaluate[[]string](`(async () => {
			const get = async (p) => (await fetch("/v1" + p)).json();
			const key = (await (await fetch("/v1/ledger/key")).text()).trim();
			const rec = await get("/spans/t_bakery/s_20_0");
			const rc = await get("/receipts/t_bakery/s_20_0");
			const out = [];
			const tryIt = async (k, r, s) => { try { await window.logline.verifyReceipt(k, r, s); out.push("verified"); } catch (e) { out.push(e.message); } };
			await tryIt(key, rc, rec.span);
			await tryIt(key, rc, {...rec.span, data: {...rec.span.data, gross: 19.91}});
			const sig = atob(rc.sig).split(""); sig[5] = String.fromCharCode(sig[5].charCodeAt(0) ^ 1);
			await tryIt(key, {...rc, sig: btoa(sig.join(""))}, rec.span);
			await tryIt(key.replace(/\+[0-9a-f]{8}\+/, "+00000000+"), rc, rec.span);
			return out;
		})()`, chromedp.EvalAwaitPromise))
	want := []string{"verified", "leaf hash", "bad signature", "hash does not match"}
	if len(refusals) != len(want) {
		t.Fatalf("in-page checks: %q", refusals)
	}
	for i, w := range want {
		if !strings.Contains(refusals[i], w) {
			t.Errorf("in-page check %d: %q, want it to say %q", i, refusals[i], w)
		}
	}

	// The checkpoint, checked in the page.
	do(t, ctx, "verify the checkpoint",
		chromedp.Click(chromedp.ID("verify-checkpoint")),
		chromedp.WaitVisible(chromedp.CSS(`#checkpoint-result[data-ok]`)),
	)
	if ok, txt := attr(t, ctx, "#checkpoint-result", "data-ok"), text(t, ctx, "#checkpoint-result"); ok != "true" || !strings.Contains(txt, "signed by") {
		t.Fatalf("checkpoint check in the page: data-ok=%q %q", ok, txt)
	}

	// Later checkpoints are checked against the last one verified here: a
	// consistency proof shows the ledger only grew; a remembered root the
	// ledger does not extend is reported as a rewrite.
	post(t, srv.URL, "", spanLine("t_bakery", 21, 0, false))
	waitFor(t, ctx, `fetch("/v1/ledger/checkpoint").then(r => r.text()).then(n => Number(n.split("\n")[1]) >= 45)`, "#checkpoint")
	do(t, ctx, "verify the checkpoint again",
		chromedp.Evaluate[chromedp.Void](`document.getElementById("checkpoint-result").removeAttribute("data-ok")`),
		chromedp.Click(chromedp.ID("verify-checkpoint")),
		chromedp.WaitVisible(chromedp.CSS(`#checkpoint-result[data-ok]`)),
	)
	if ok, txt := attr(t, ctx, "#checkpoint-result", "data-ok"), text(t, ctx, "#checkpoint-result"); ok != "true" || !strings.Contains(txt, "extends the checkpoint of") {
		t.Fatalf("second checkpoint check: data-ok=%q %q", ok, txt)
	}
	do(t, ctx, "remember a root the ledger never had, and verify",
		chromedp.Evaluate[chromedp.Void](`localStorage.setItem("logline.seen.logline.local/ledger", JSON.stringify({size: 40, root: btoa("x".repeat(32))}));
			document.getElementById("checkpoint-result").removeAttribute("data-ok")`),
		chromedp.Click(chromedp.ID("verify-checkpoint")),
		chromedp.WaitVisible(chromedp.CSS(`#checkpoint-result[data-ok]`)),
	)
	if ok, txt := attr(t, ctx, "#checkpoint-result", "data-ok"), text(t, ctx, "#checkpoint-result"); ok != "false" || !strings.Contains(txt, "rewritten") {
		t.Fatalf("checkpoint check against a forged history: data-ok=%q %q", ok, txt)
	}

	// The histogram: the page's bars are the meter's window, and the
	// window holds the scores of the derived stream's trajectory_quality
	// events (all of them: the history spans less than the window).
	var ov struct {
		Meter struct {
			Scores    []uint64 `json:"scores"`
			N         uint64   `json:"n"`
			Threshold *int     `json:"threshold"`
		} `json:"meter"`
		Candidates []json.RawMessage `json:"candidates"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		getJSON(t, srv.URL+"/v1/overview/t_bakery", &ov)
		if ov.Meter.N == 12 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ov.Meter.N != 12 || ov.Meter.Threshold == nil || len(ov.Candidates) == 0 {
		t.Fatalf("meter after 12 closed trajectories: n=%d threshold=%v candidates=%d", ov.Meter.N, ov.Meter.Threshold, len(ov.Candidates))
	}
	fromStream := make([]uint64, 101)
	resp, err := http.Get(srv.URL + "/v1/derived/stream?tenant=t_bakery&cursor=0")
	if err != nil {
		t.Fatal(err)
	}
	stream, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var firstTrajectory string
	var firstScore int
	for _, line := range bytes.Split(bytes.TrimSpace(stream), []byte("\n")) {
		var ev struct {
			Type  string `json:"type"`
			Score int    `json:"score"`
			ID    string `json:"trajectory_id"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatalf("derived line %s: %v", line, err)
		}
		if ev.Type == "trajectory_quality" {
			fromStream[ev.Score]++
			if firstTrajectory == "" {
				firstTrajectory, firstScore = ev.ID, ev.Score
			}
		}
	}
	// Wait for the page's next refresh to have drawn all 12.
	var bars []map[string]string
	deadline = time.Now().Add(10 * time.Second)
	for {
		bars = get(t, ctx, "read the histogram",
			chromedp.Evaluate[[]map[string]string](`Array.from(document.querySelectorAll("#histogram rect.bar")).map(r => ({score: r.dataset.score, count: r.dataset.count}))`))
		total := 0
		for _, b := range bars {
			var c int
			fmt.Sscan(b["count"], &c)
			total += c
		}
		if total == 12 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	drawn := make([]uint64, 101)
	for _, b := range bars {
		var s, c int
		fmt.Sscan(b["score"], &s)
		fmt.Sscan(b["count"], &c)
		drawn[s] = uint64(c)
	}
	for s := range 101 {
		if drawn[s] != fromStream[s] || drawn[s] != ov.Meter.Scores[s] {
			t.Errorf("score %d: page %d, derived stream %d, overview %d", s, drawn[s], fromStream[s], ov.Meter.Scores[s])
		}
	}
	if th := attr(t, ctx, "#histogram line.threshold", "data-threshold"); th != fmt.Sprint(*ov.Meter.Threshold) {
		t.Errorf("threshold line at %s, meter threshold %d", th, *ov.Meter.Threshold)
	}
	candidates := get(t, ctx, "count the candidates listed",
		chromedp.Evaluate[int](`document.querySelectorAll("#candidates li button").length`))
	if candidates != len(ov.Candidates) {
		t.Errorf("page lists %d candidates, overview %d", candidates, len(ov.Candidates))
	}
	screenshot(t, ctx, "console-tenant")

	// A trajectory, opened from the derived events list.
	do(t, ctx, "open a trajectory",
		chromedp.Click(chromedp.Search(fmt.Sprintf(`//ul[@id="derived"]//button[text()=%q]`, firstTrajectory))),
		chromedp.WaitVisible(chromedp.ID("traj-score")),
	)
	if score := text(t, ctx, "#traj-score"); score != fmt.Sprint(firstScore) {
		t.Errorf("trajectory %s: page shows score %s, the derived stream %d", firstTrajectory, score, firstScore)
	}

	// On a phone's width the page does not scroll sideways (wide tables
	// scroll in their own box).
	do(t, ctx, "narrow the window", chromedp.EmulateViewport(390, 844))
	if w := get(t, ctx, "measure", chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`)); w > 0 {
		t.Errorf("at 390 px the page is %d px too wide", w)
	}
	screenshot(t, ctx, "console-phone")
	do(t, ctx, "widen the window", chromedp.EmulateViewport(1280, 1000))

	// The operator view (any caller is an operator under --dev).
	do(t, ctx, "open the operator view",
		chromedp.Click(chromedp.ID("nav-operator")),
		chromedp.WaitVisible(chromedp.ID("server-h")),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="tenants"]//button[text()="t_bakery"]`)),
	)
	row := get(t, ctx, "read the tenant's row", chromedp.Text(chromedp.Search(`//table[@id="tenants"]//tr[.//button[text()="t_bakery"]]`)))
	if !strings.HasPrefix(row, "t_bakery\t44\t44\t0\t") { // 1+2+…+6 twice, and two more: all accepted, none rejected
		t.Errorf("operator row for t_bakery: %q, want 44 spans, 44 accepted, 0 rejected", row)
	}
	screenshot(t, ctx, "console-operator")
}

// The console without --dev: the page asks for a sign-in, which goes
// through the server's OpenID login (mockoidc on 127.0.0.1) with PKCE and
// back to the page; the tenant then opens with the person's token, and a
// receipt verifies in the page.
func TestConsoleLogin(t *testing.T) {
	provider, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	provider.CodeChallengeMethodsSupported = []string{"S256"}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := provider.Start(pln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { provider.Shutdown() })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	cfg := server.DefaultConfig()
	cfg.Data = t.TempDir()
	cfg.Auth.Issuer = base
	cfg.Auth.OIDC.Issuer = provider.Issuer()
	cfg.Auth.OIDC.ClientID = provider.ClientID
	cfg.Auth.OIDC.ClientSecret = provider.ClientSecret
	cfg.Auth.OIDC.RedirectURL = base + "/auth/callback"
	os.MkdirAll(filepath.Join(cfg.Data, "cfg", "tenants"), 0o755)
	os.WriteFile(filepath.Join(cfg.Data, "cfg", "tenants", "t_acme.yaml"),
		[]byte("members:\n  "+mockoidc.DefaultUser().Email+": [writer]\n"), 0o644)
	s, err := server.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hs := cfg.HTTPServer(s.Handler(), nil)
	go hs.Serve(ln)
	t.Cleanup(func() {
		s.BeginShutdown()
		hs.Close()
		s.Close()
	})
	ctx := browser(t)

	do(t, ctx, "open the console: a sign-in is asked",
		chromedp.Navigate(base+"/console/"),
		chromedp.WaitVisible(chromedp.ID("tenant-input")),
		chromedp.SendKeys(chromedp.ID("tenant-input"), "t_acme"),
		chromedp.Click(chromedp.CSS(`#tenant-form button`)),
		chromedp.WaitVisible(chromedp.ID("login")),
	)
	screenshot(t, ctx, "console-login")
	do(t, ctx, "sign in through the provider and back",
		chromedp.Click(chromedp.ID("sign-in")),
		chromedp.WaitVisible(chromedp.ID("ingest-h")),
	)
	who := text(t, ctx, "#who")
	token := get(t, ctx, "read the token", chromedp.Evaluate[string](`sessionStorage.getItem("logline.token")`))
	if !strings.Contains(who, "t_acme") || !strings.Contains(who, "writer") || token == "" {
		t.Fatalf("after sign-in: who %q, token %d bytes", who, len(token))
	}
	if loc := get(t, ctx, "read the address", chromedp.Location()); loc != base+"/console/" {
		t.Errorf("address after sign-in: %s", loc)
	}

	// The person's token posts a span; the page shows it and verifies it.
	post(t, base, token, spanLine("t_acme", 1, 0, false))
	do(t, ctx, "verify the new span's receipt",
		chromedp.WaitVisible(chromedp.CSS(`#live tbody tr[data-id="s_1_0"]`)),
		chromedp.Click(chromedp.CSS(`#live tbody tr[data-id="s_1_0"] button[aria-label^="Verify"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#receipt-result[data-ok]`)),
	)
	if ok, txt := attr(t, ctx, "#receipt-result", "data-ok"), text(t, ctx, "#receipt-result"); ok != "true" {
		t.Fatalf("receipt check in the page: %q", txt)
	}

	// Another tenant's overview is refused with the server's problem.
	do(t, ctx, "open a tenant the person is not a member of",
		chromedp.SetValue(chromedp.ID("tenant-input"), "t_other"),
		chromedp.Click(chromedp.CSS(`#tenant-form button`)),
	)
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](`document.getElementById("status").textContent.includes("t_other")`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatal(err)
	}
	if status := text(t, ctx, "#status"); !strings.Contains(status, "Cannot open tenant t_other") || !strings.Contains(status, "request req_") {
		t.Errorf("status for another tenant: %q", status)
	}
}
