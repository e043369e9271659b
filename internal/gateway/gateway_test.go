package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/ledger"
)

// tenantAuth authenticates every request as a writer of one tenant, or
// refuses when the request says so.
type tenantAuth struct{ tenant string }

func (a tenantAuth) Authenticate(r *http.Request) (*identity.Principal, error) {
	if r.Header.Get("Authorization") == "Bearer bad" {
		return nil, &identity.Error{Kind: identity.KindUnauthenticated, Reason: identity.ReasonBadSignature}
	}
	return &identity.Principal{Subject: "sa:test", Tenant: a.tenant,
		Caps: []identity.Capability{identity.CapIngest, identity.CapStreamRead, identity.CapReceiptsRead}}, nil
}

type testLedger struct{ *ledger.Ledger }

func (l testLedger) VerifierKey() string { return l.Signer().VerifierKey() }
func (l testLedger) OpenReader(from uint64) (RecordReader, error) {
	return l.NewReader(from)
}

func newTestGateway(t testing.TB, mutate func(*Config)) (*Gateway, *ledger.Ledger) {
	t.Helper()
	l, err := ledger.Open("data", ledger.Config{FS: vfs.NewMem(), IndexCacheBytes: 1 << 20, IndexMemTableBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cfg := Config{
		Ledger: testLedger{l},
		Auth:   tenantAuth{"t_a"},
		Now:    func() time.Time { return time.Date(2025, 10, 6, 0, 0, 0, 0, time.UTC) },
	}
	cfg.Limits = DefaultLimitsConfig()
	cfg.Limits.BodyBytes = 1 << 20
	cfg.Limits.LineBytes = 4 << 10
	cfg.Limits.LinesPerRequest = 1000
	if mutate != nil {
		mutate(&cfg)
	}
	return New(cfg), l
}

// goodSpan returns a valid span line for tenant t_a.
func goodSpan(id string) string {
	return fmt.Sprintf(`{"id":%q,"tenant":"t_a","who":"dan","did":"sale.post","this":"order:1","when":"2025-10-05T22:18:07Z","status":"confirmed","confirmed_by":["pos://7"],"data":{"gross":19.9}}`, id)
}

// spanWith returns goodSpan with one member replaced (or removed when
// value is ""); value is spliced in as raw bytes, valid JSON or not.
func spanWith(id, member, value string) string {
	fields := []struct{ k, v string }{
		{"id", fmt.Sprintf("%q", id)}, {"tenant", `"t_a"`}, {"who", `"dan"`}, {"did", `"sale.post"`},
		{"this", `"order:1"`}, {"when", `"2025-10-05T22:18:07Z"`}, {"status", `"confirmed"`},
		{"confirmed_by", `["pos://7"]`}, {"data", `{"gross":19.9}`},
	}
	var parts []string
	found := false
	for _, f := range fields {
		if f.k == member {
			found = true
			if value == "" {
				continue
			}
			f.v = value
		}
		parts = append(parts, fmt.Sprintf("%q:%s", f.k, f.v))
	}
	if !found {
		parts = append(parts, fmt.Sprintf("%q:%s", member, value))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

type reqCase struct {
	name        string
	method      string
	path        string
	contentType string
	body        string
	header      map[string]string
	chunked     bool // send without Content-Length
	status      int
	problem     string // the response's problem type, or a line's
	line        int    // when a line (1-based) carries the problem
	field       string // expected field of that problem
}

func (c reqCase) do(t *testing.T, h http.Handler) *httptest.ResponseRecorder {
	t.Helper()
	method := c.method
	if method == "" {
		method = "POST"
	}
	path := c.path
	if path == "" {
		path = "/ingest"
	}
	var body io.Reader = strings.NewReader(c.body)
	if c.chunked {
		body = io.MultiReader(strings.NewReader(c.body))
	}
	r := httptest.NewRequest(method, path, body)
	if c.chunked {
		r.ContentLength = -1
	}
	if c.contentType != "" {
		r.Header.Set("Content-Type", c.contentType)
	}
	for k, v := range c.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

const ndjson = "application/x-ndjson"

func TestMalformedRequests(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprintf(`{"k%d":1}`, i)
	}
	var members strings.Builder
	members.WriteString(`{"x0":0`)
	for i := 1; i < 1500; i++ {
		fmt.Fprintf(&members, `,"x%d":%d`, i, i)
	}
	members.WriteString("}")
	cases := []reqCase{
		{name: "bad JSON object", contentType: "application/json", body: `{"id":"s_1",}`, status: 400, problem: "invalid-json"},
		{name: "unclosed array", contentType: "application/json", body: `[` + goodSpan("a1") + `,`, status: 400, problem: "invalid-json"},
		{name: "array with trailing garbage", contentType: "application/json", body: `[` + goodSpan("a2") + `] x`, status: 400, problem: "invalid-json"},
		{name: "truncated last NDJSON line", contentType: ndjson, body: goodSpan("t1") + "\n" + goodSpan("t2")[:40], status: 200, problem: "truncated-line", line: 2},
		{name: "truncated only line", contentType: ndjson, body: goodSpan("t3")[:50], status: 400, problem: "truncated-line"},
		{name: "text/plain", contentType: "text/plain", body: goodSpan("c1"), status: 415, problem: "unsupported-media-type"},
		{name: "no content type", body: goodSpan("c2"), status: 415, problem: "unsupported-media-type"},
		{name: "latin1 charset", contentType: "application/json; charset=iso-8859-1", body: goodSpan("c3"), status: 415, problem: "unsupported-media-type"},
		{name: "malformed content type", contentType: "application/;;", body: goodSpan("c4"), status: 415, problem: "unsupported-media-type"},
		{name: "empty body", contentType: ndjson, body: "", status: 400, problem: "empty-body"},
		{name: "whitespace body", contentType: "application/json", body: " \n\t ", status: 400, problem: "empty-body"},
		{name: "blank lines only", contentType: ndjson, body: "\n\n\r\n", status: 400, problem: "empty-body"},
		{name: "empty array", contentType: "application/json", body: "[]", status: 400, problem: "empty-body"},
		{name: "oversized body", contentType: ndjson, body: strings.Repeat(goodSpan("big")+"\n", 6000), status: 413, problem: "body-too-large"},
		{name: "oversized body without length", contentType: ndjson, chunked: true, body: strings.Repeat(goodSpan("big")+"\n", 6000), status: 413, problem: "body-too-large"},
		{name: "oversized line", contentType: ndjson, body: spanWith("big1", "data", `{"pad":"`+strings.Repeat("x", 5000)+`"}`), status: 413, problem: "line-too-large"},
		{name: "too many lines", contentType: ndjson, body: strings.Join(many, "\n"), status: 413, problem: "too-many-lines"},
		{name: "huge array", contentType: "application/json", body: "[" + strings.Join(many, ",") + "]", status: 413, problem: "too-many-lines"},
		{name: "missing id", contentType: ndjson, body: spanWith("", "id", ""), status: 422, problem: "invalid-span", field: "id"},
		{name: "missing tenant", contentType: ndjson, body: spanWith("m1", "tenant", ""), status: 422, problem: "invalid-span", field: "tenant"},
		{name: "missing when", contentType: ndjson, body: spanWith("m2", "when", ""), status: 422, problem: "invalid-span", field: "when"},
		{name: "missing status", contentType: ndjson, body: spanWith("m3", "status", ""), status: 422, problem: "invalid-span", field: "status"},
		{name: "missing this", contentType: ndjson, body: spanWith("m4", "this", ""), status: 422, problem: "invalid-span", field: "this"},
		{name: "empty id", contentType: ndjson, body: spanWith("x", "id", `""`), status: 422, problem: "invalid-span", field: "id"},
		{name: "id is a number", contentType: ndjson, body: spanWith("x", "id", `42`), status: 422, problem: "invalid-span", field: "id"},
		{name: "confirmed_by is a string", contentType: ndjson, body: spanWith("m5", "confirmed_by", `"pos://7"`), status: 422, problem: "invalid-span", field: "confirmed_by"},
		{name: "confirmed_by holds numbers", contentType: ndjson, body: spanWith("m6", "confirmed_by", `[1,2]`), status: 422, problem: "invalid-span", field: "confirmed_by"},
		{name: "data is an array", contentType: ndjson, body: spanWith("m7", "data", `[1]`), status: 422, problem: "invalid-span", field: "data"},
		{name: "bad RFC 3339 date", contentType: ndjson, body: spanWith("m8", "when", `"2025-13-45T22:18:07Z"`), status: 422, problem: "invalid-span", field: "when"},
		{name: "when in words", contentType: ndjson, body: spanWith("m9", "when", `"yesterday"`), status: 422, problem: "invalid-span", field: "when"},
		{name: "when without zone", contentType: ndjson, body: spanWith("m10", "when", `"2025-10-05T22:18:07"`), status: 422, problem: "invalid-span", field: "when"},
		{name: "when is a number", contentType: ndjson, body: spanWith("m11", "when", `1700000000`), status: 422, problem: "invalid-span", field: "when"},
		{name: "unknown member", contentType: ndjson, body: spanWith("m12", "color", `"red"`), status: 422, problem: "invalid-span", field: "color"},
		{name: "future when", contentType: ndjson, body: spanWith("f1", "when", `"2025-10-06T01:00:00Z"`), status: 422, problem: "future-when", field: "when"},
		{name: "tenant mismatch", contentType: ndjson, body: spanWith("tm", "tenant", `"t_b"`), status: 403, problem: "tenant-mismatch", field: "tenant"},
		{name: "invalid UTF-8 in a string", contentType: ndjson, body: spanWith("u1", "who", "\"d\xffn\""), status: 400, problem: "invalid-json"},
		{name: "invalid UTF-8 outside strings", contentType: ndjson, body: "\xfe" + goodSpan("u2"), status: 400, problem: "invalid-json"},
		{name: "byte order mark", contentType: ndjson, body: "\xef\xbb\xbf" + goodSpan("u3"), status: 400, problem: "invalid-json"},
		{name: "NUL byte", contentType: ndjson, body: spanWith("u4", "who", "\"d\x00n\""), status: 400, problem: "invalid-json"},
		{name: "lone surrogate", contentType: ndjson, body: spanWith("u5", "who", `"\ud800"`), status: 400, problem: "invalid-json"},
		{name: "duplicate member", contentType: ndjson, body: strings.Replace(goodSpan("d1"), `"who":"dan"`, `"who":"dan","who":"eve"`, 1), status: 400, problem: "invalid-json"},
		{name: "NaN", contentType: ndjson, body: spanWith("n1", "data", `{"x":NaN}`), status: 400, problem: "invalid-json"},
		{name: "leading zero", contentType: ndjson, body: spanWith("n2", "data", `{"x":012}`), status: 400, problem: "invalid-json"},
		{name: "trailing comma in object", contentType: ndjson, body: strings.TrimSuffix(goodSpan("n3"), "}") + ",}", status: 400, problem: "invalid-json"},
		{name: "depth bomb", contentType: ndjson, body: spanWith("deep", "data", deep), status: 422, problem: "limit-exceeded"},
		{name: "unclosed depth bomb", contentType: ndjson, body: strings.Repeat(`{"a":`, 500), status: 422, problem: "limit-exceeded"},
		{name: "huge depth bomb", contentType: ndjson, body: strings.Repeat(`{"a":`, 3000), status: 413, problem: "line-too-large"},
		{name: "deeper bomb of arrays", contentType: ndjson, body: strings.Repeat("[", 3000) + "\n", status: 400, problem: "invalid-json"},
		{name: "too many members", contentType: ndjson, body: spanWith("mm", "data", members.String()), status: 413, problem: "line-too-large"},
		{name: "top-level number", contentType: "application/json", body: `42`, status: 400, problem: "invalid-json"},
		{name: "top-level string", contentType: "application/json", body: `"span"`, status: 400, problem: "invalid-json"},
		{name: "array line in NDJSON", contentType: ndjson, body: `[1,2]` + "\n", status: 400, problem: "invalid-json"},
		{name: "mixed good and bad", contentType: ndjson, body: goodSpan("g1") + "\n" + spanWith("b1", "when", `"nope"`) + "\n" + goodSpan("g2") + "\n", status: 200, problem: "invalid-span", line: 2, field: "when"},
		{name: "bad token", contentType: ndjson, body: goodSpan("k1"), header: map[string]string{"Authorization": "Bearer bad"}, status: 401, problem: "unauthenticated"},
		{name: "unknown route", method: "GET", path: "/nope", status: 404, problem: "not-found"},
		{name: "unknown method on ingest", method: "DELETE", path: "/ingest", status: 405, problem: "method-not-allowed"},
		{name: "GET ingest", method: "GET", path: "/ingest", status: 405, problem: "method-not-allowed"},
		{name: "POST to a read route", method: "POST", path: "/ledger/checkpoint", status: 405, problem: "method-not-allowed"},
		{name: "missing span", method: "GET", path: "/spans/t_a/missing", status: 404, problem: "not-found"},
		{name: "other tenant's span", method: "GET", path: "/spans/t_b/s_1", status: 403, problem: "forbidden"},
		{name: "other tenant's receipt", method: "GET", path: "/receipts/t_b/s_1", status: 403, problem: "forbidden"},
		{name: "cursor not a number", method: "GET", path: "/ledger/stream?cursor=abc&tenant=t_a", status: 400, problem: "bad-cursor"},
		{name: "negative cursor", method: "GET", path: "/ledger/stream?cursor=-1&tenant=t_a", status: 400, problem: "bad-cursor"},
		{name: "cursor past the end", method: "GET", path: "/ledger/stream?cursor=99999&tenant=t_a", status: 400, problem: "bad-cursor"},
		{name: "follow not a bool", method: "GET", path: "/ledger/stream?tenant=t_a&follow=maybe", status: 400, problem: "bad-request"},
		{name: "stream every tenant", method: "GET", path: "/ledger/stream", status: 403, problem: "forbidden"},
		{name: "proof without seq", method: "GET", path: "/ledger/proof?size=1", status: 400, problem: "bad-request"},
		{name: "proof seq not a number", method: "GET", path: "/ledger/proof?seq=x&size=1", status: 400, problem: "bad-request"},
		{name: "proof past the tree", method: "GET", path: "/ledger/proof?seq=5000&size=9000", status: 404, problem: "not-found"},
		{name: "things limit zero", method: "GET", path: "/things/t_a/order:1?limit=0", status: 400, problem: "bad-request"},
		{name: "unknown problem page", method: "GET", path: "/problems/nope", status: 404, problem: "not-found"},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}
	g, l := newTestGateway(t, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := c.do(t, g)
			if w.Code >= 500 {
				t.Fatalf("status %d (5xx): %s", w.Code, w.Body)
			}
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			var resp struct {
				reply.Problem
				Results []struct {
					Line    int
					Status  string
					Problem *reply.Problem
				} `json:"results"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
				t.Fatalf("response is not JSON: %v\n%s", err, w.Body)
			}
			if w.Code >= 400 {
				if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
					t.Fatalf("Content-Type %q", ct)
				}
				if resp.Status != w.Code || resp.Title == "" || resp.RequestID == "" {
					t.Fatalf("problem lacks status/title/request_id: %s", w.Body)
				}
			}
			got := resp.Type
			field := resp.Field
			if c.line > 0 || (len(resp.Results) == 1 && resp.Results[0].Problem != nil) {
				i := max(c.line, 1) - 1
				if i >= len(resp.Results) || resp.Results[i].Problem == nil {
					t.Fatalf("line %d has no problem: %s", c.line, w.Body)
				}
				got, field = resp.Results[i].Problem.Type, resp.Results[i].Problem.Field
			}
			if got != "/problems/"+c.problem {
				t.Fatalf("problem %q, want /problems/%s\n%s", got, c.problem, w.Body)
			}
			if c.field != "" && field != c.field {
				t.Fatalf("field %q, want %q\n%s", field, c.field, w.Body)
			}
		})
	}
	// Good lines next to bad ones were stored; the bad ones were not.
	ctx := context.Background()
	for _, id := range []string{"g1", "g2", "t1"} {
		if _, err := l.Get(ctx, "t_a", id); err != nil {
			t.Errorf("good span %s not stored: %v", id, err)
		}
	}
	for _, id := range []string{"b1", "t2", "t3", "m1", "m8", "f1", "tm", "u1", "deep", "k1", "c1", "big", "big1", "d1"} {
		for _, tenant := range []string{"t_a", "t_b"} {
			if _, err := l.Get(ctx, tenant, id); err == nil {
				t.Errorf("bad span %s/%s was stored", tenant, id)
			}
		}
	}
	if n := l.Next(); n != 3 {
		t.Errorf("ledger holds %d records, want 3 (g1, g2, t1)", n)
	}
	// Still serving.
	w := reqCase{method: "GET", path: "/healthz"}.do(t, g)
	if w.Code != 200 {
		t.Fatalf("healthz after the table: %d", w.Code)
	}
}

func TestIngestResults(t *testing.T) {
	g, _ := newTestGateway(t, nil)
	body := goodSpan("s_1") + "\r\n\n" + goodSpan("s_2") + "\n" + goodSpan("s_1") + "\n"
	w := reqCase{contentType: ndjson, body: body}.do(t, g)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var resp ingestResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Accepted != 2 || resp.Duplicates != 1 || resp.Rejected != 0 {
		t.Fatalf("counts %+v", resp)
	}
	var got []string
	for _, r := range resp.Results {
		got = append(got, fmt.Sprintf("%d:%s:%s", r.Line, r.ID, r.Status))
	}
	want := "1:s_1:accepted 3:s_2:accepted 4:s_1:duplicate"
	if strings.Join(got, " ") != want {
		t.Fatalf("results %v, want %s (blank lines counted, request order kept)", got, want)
	}
	if *resp.Results[2].Seq != *resp.Results[0].Seq || resp.Results[2].Receipt.JTI != resp.Results[0].Receipt.JTI {
		t.Fatal("the duplicate did not get the original receipt")
	}
	// A JSON array: elements numbered from 1.
	w = reqCase{contentType: "application/json", body: "[" + goodSpan("s_3") + " , " + spanWith("s_4", "when", `"x"`) + "]"}.do(t, g)
	if w.Code != 200 || !bytes.Contains(w.Body.Bytes(), []byte(`"line":2,"id":"s_4","status":"rejected"`)) {
		t.Fatalf("array: %d %s", w.Code, w.Body)
	}
}

// The same id with other content is a 409 id-conflict naming the stored
// record, never a silent "duplicate"; the same content stays a duplicate.
func TestIdempotencyConflict(t *testing.T) {
	g, _ := newTestGateway(t, nil)
	if w := (reqCase{contentType: ndjson, body: goodSpan("s_1") + "\n"}).do(t, g); w.Code != 200 {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	other := spanWith("s_1", "data", `{"gross":29.9}`)
	w := reqCase{contentType: "application/json", body: other}.do(t, g)
	var p reply.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if w.Code != 409 || p.Type != "/problems/id-conflict" || !strings.Contains(p.Detail, "stored at seq 0 (leaf ") {
		t.Fatalf("conflict alone: %d %s", w.Code, w.Body)
	}
	w = reqCase{contentType: ndjson, body: goodSpan("s_1") + "\n" + other + "\n" + goodSpan("s_2") + "\n"}.do(t, g)
	var resp ingestResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Code != 200 {
		t.Fatalf("mixed: %d %s", w.Code, w.Body)
	}
	if resp.Accepted != 1 || resp.Duplicates != 1 || resp.Rejected != 1 {
		t.Fatalf("counts %+v", resp)
	}
	c := resp.Results[1]
	if c.Status != "rejected" || c.Problem == nil || c.Problem.Status != 409 || c.Problem.Type != "/problems/id-conflict" || c.Seq == nil || *c.Seq != 0 || c.Receipt != nil {
		t.Fatalf("conflicting line: %+v %+v", c, c.Problem)
	}
}

func TestOverload(t *testing.T) {
	g, _ := newTestGateway(t, func(c *Config) {
		c.Overload = OverloadConfig{MaxInflightRequests: 1, MaxInflightBytes: 1 << 20, RetryAfter: 2 * time.Second}
	})
	// Hold one request in flight, then send another.
	g.inflight.Add(1)
	w := reqCase{contentType: ndjson, body: goodSpan("o1")}.do(t, g)
	g.inflight.Add(-1)
	if w.Code != 503 || w.Header().Get("Retry-After") != "2" || !strings.Contains(w.Body.String(), "/problems/overloaded") {
		t.Fatalf("over the in-flight bound: %d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	g.inflightBytes.Add(1 << 20)
	w = reqCase{contentType: ndjson, body: goodSpan("o2")}.do(t, g)
	g.inflightBytes.Add(-(1 << 20))
	if w.Code != 503 {
		t.Fatalf("over the byte bound: %d", w.Code)
	}
	// A body is charged as it is read, not as it might be: a body of
	// undeclared length fits in the room left for its bytes.
	g.inflightBytes.Add(1<<20 - 4096)
	w = reqCase{contentType: ndjson, chunked: true, body: goodSpan("o4")}.do(t, g)
	g.inflightBytes.Add(-(1<<20 - 4096))
	if w.Code != 200 {
		t.Fatalf("chunked body within the byte bound: %d %s", w.Code, w.Body)
	}
	w = reqCase{contentType: ndjson, body: goodSpan("o3")}.do(t, g)
	if w.Code != 200 {
		t.Fatalf("after: %d %s", w.Code, w.Body)
	}
	// Streams have their own bound.
	g.streams.Add(int64(g.cfg.Overload.MaxStreams))
	w = reqCase{method: "GET", path: "/ledger/stream?tenant=t_a"}.do(t, g)
	g.streams.Add(-int64(g.cfg.Overload.MaxStreams))
	if w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("stream over the bound: %d", w.Code)
	}
}

type panicLedger struct{ Ledger }

func (panicLedger) Get(context.Context, string, string) (ledger.Record, error) { panic("boom") }

func TestPanicIsA500Problem(t *testing.T) {
	g, l := newTestGateway(t, nil)
	g2 := New(Config{Ledger: panicLedger{testLedger{l}}, Auth: tenantAuth{"t_a"}})
	_ = g
	w := reqCase{method: "GET", path: "/spans/t_a/x"}.do(t, g2)
	if w.Code != 500 || strings.Contains(w.Body.String(), "boom") || strings.Contains(w.Body.String(), "goroutine") {
		t.Fatalf("panic: %d %s", w.Code, w.Body)
	}
	if !strings.Contains(w.Body.String(), `"request_id":"req_`) {
		t.Fatalf("no request id: %s", w.Body)
	}
}

func TestIngestResponseEncoding(t *testing.T) {
	g, _ := newTestGateway(t, nil)
	body := goodSpan("e_1") + "\n" + goodSpan("e_1") + "\n" + spanWith("e_2", "who", `"<d&n>\u2028"`) + "\n" + spanWith("e_3", "when", `"x"`) + "\n"
	w := reqCase{contentType: ndjson, body: body}.do(t, g)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var resp ingestResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(&resp)
	if got := bytes.TrimSuffix(w.Body.Bytes(), []byte("\n")); !bytes.Equal(got, want) {
		t.Fatalf("the hand-written answer differs from encoding/json:\n got %s\nwant %s", got, want)
	}
}
