package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultUserAgent is the User-Agent sent unless WithUserAgent says
// otherwise.
const DefaultUserAgent = "loglineos-go-client/1"

// maxResponse bounds the bytes read from one non-streaming response; an
// ingest answer for the server's 100,000-line limit is well under it.
const maxResponse = 256 << 20

// Client talks to one LogLineOS server. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	hc    *http.Client
	token func(context.Context) (string, error)
	ua    string
	retry RetryPolicy
	now   func() time.Time // the clock tokens are renewed by
}

// An Option configures a Client.
type Option func(*Client) error

// WithHTTPClient makes the client send its requests with hc (for TLS
// settings, proxies, instrumentation). A Timeout on hc bounds each request
// but not record streams, which run until their context ends; prefer
// contexts for deadlines.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("loglineos: nil *http.Client")
		}
		c.hc = hc
		return nil
	}
}

// WithToken sends token as a bearer token with every request: an LLST, or
// whatever the server accepts.
func WithToken(token string) Option {
	return WithTokenSource(func(context.Context) (string, error) { return token, nil })
}

// WithTokenSource calls src before every request (and every stream
// reconnection) for the bearer token to send, so that a short-lived LLST can
// be refreshed. src should cache the token and refresh it shortly before it
// expires; it is called concurrently. An empty token sends no Authorization
// header. An error from src fails the request without sending it, wrapped:
// "loglineos: token source: <src's error>".
//
// A golang.org/x/oauth2 TokenSource fits in a line:
//
//	client.WithTokenSource(func(context.Context) (string, error) {
//		t, err := ts.Token()
//		if err != nil {
//			return "", err
//		}
//		return t.AccessToken, nil
//	})
func WithTokenSource(src func(ctx context.Context) (string, error)) Option {
	return func(c *Client) error {
		if src == nil {
			return errors.New("loglineos: nil token source")
		}
		c.token = func(ctx context.Context) (string, error) {
			tok, err := src(ctx)
			if err != nil {
				return "", fmt.Errorf("loglineos: token source: %w", err)
			}
			return tok, nil
		}
		return nil
	}
}

// WithUserAgent sets the User-Agent header; apps should name themselves.
func WithUserAgent(ua string) Option {
	return func(c *Client) error {
		c.ua = ua
		return nil
	}
}

// WithRetry sets how failed requests are retried; see RetryPolicy.
func WithRetry(p RetryPolicy) Option {
	return func(c *Client) error {
		c.retry = p.withDefaults()
		return nil
	}
}

// RetryPolicy says how a request that failed for a passing reason is
// retried. A request is retried when it failed in transport (no answer, or
// the connection broke) or was answered 429, 502, 503 or 504; any other
// answer, a 4xx problem in particular, is final. A Retry-After from the
// server is honoured: the next try waits at least that long, and when that
// is longer than MaxDelay, or would outlast the context's deadline, the
// request fails at once with the server's answer.
//
// Lookups are always safe to retry. An ingest request is too, because the
// server stores a span once per (tenant, id): a span that an earlier try
// stored comes back as a duplicate carrying its original receipt (see
// LineResult.Stored). An ingest request holding a span without an id is
// not retried, since the server would assign it a new id on each try.
//
// Record streams reconnect with the same backoff; see StreamOptions.
type RetryPolicy struct {
	// Attempts is how many times a request is tried in all; 1 means no
	// retries. Zero means 5.
	Attempts int
	// MinDelay is the wait before the first retry; each further retry waits
	// twice as long, up to MaxDelay, less a random jitter of up to a half.
	// Zero means 100ms.
	MinDelay time.Duration
	// MaxDelay caps the waits. Zero means 10s.
	MaxDelay time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = 5
	}
	if p.MinDelay <= 0 {
		p.MinDelay = 100 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 10 * time.Second
	}
	if p.MaxDelay < p.MinDelay {
		p.MaxDelay = p.MinDelay
	}
	return p
}

// backoff is the wait before retry n (1 for the first retry).
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.MinDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	return d - rand.N(d/2+1)
}

// New returns a client for the server at baseURL, such as
// "http://127.0.0.1:8080" or "https://logline.example/api" (a path prefix is
// kept). Without options it sends no token, uses a private *http.Client on
// http.DefaultTransport and retries as the zero RetryPolicy says.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("loglineos: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("loglineos: base URL %q: want http:// or https:// and a host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("loglineos: base URL %q: no query or fragment, please", baseURL)
	}
	c := &Client{base: u, hc: &http.Client{}, ua: DefaultUserAgent, retry: RetryPolicy{}.withDefaults(), now: time.Now}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// apiVersion is the path prefix of the API version the client speaks.
const apiVersion = "/v1"

// endpoint returns the URL of the API path p (whose segments the caller has
// escaped) with the query q.
func (c *Client) endpoint(p string, q url.Values) string {
	u := *c.base
	u.RawPath = ""
	u.Path = ""
	s := u.String() + c.base.EscapedPath() + apiVersion + p
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// call is one API request.
type call struct {
	method string
	path   string // escaped, from the API root: "/spans/t/s_1"
	query  url.Values
	body   []byte
	ctype  string
	// mayRetry, when set, says whether this request may be sent again; nil
	// means it always may.
	mayRetry func() bool
	// anonymous sends no token (the token exchange itself).
	anonymous bool
}

// response is an answer read in full.
type response struct {
	path       string // the call's path, as the server's problems name it
	status     int
	header     http.Header
	body       []byte
	retryAfter time.Duration
}

func (r *response) ok() bool { return r.status >= 200 && r.status < 300 }

// retryable reports whether an answer with this status may succeed later.
func retryable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// newRequest builds a request with the client's headers, and its token
// unless anonymous.
func (c *Client) newRequest(ctx context.Context, method, u string, body []byte, ctype string, anonymous bool) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("loglineos: %w", err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("User-Agent", c.ua)
	if anonymous {
		return req, nil
	}
	if err := c.authorize(ctx, req.Header); err != nil {
		return nil, err
	}
	return req, nil
}

// authorize sets the Authorization header from the token source. Its
// errors are the SDK's own already (an *Error of the token exchange, a
// wrapped error of the caller's source): they are returned as they are.
func (c *Client) authorize(ctx context.Context, h http.Header) error {
	if c.token == nil {
		return nil
	}
	tok, err := c.token(ctx)
	if err != nil {
		return err
	}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

// do sends a call, retrying as the policy says, and returns the last
// answer, whatever its status. The error is for requests that got no
// answer.
func (c *Client) do(ctx context.Context, cl call) (*response, error) {
	u := c.endpoint(cl.path, cl.query)
	for attempt := 1; ; attempt++ {
		resp, err := c.once(ctx, cl, u)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("loglineos: %s %s: %w", cl.method, cl.path, ctx.Err())
		}
		var wait time.Duration
		switch {
		case err != nil && !isTransport(err):
			return nil, err
		case err == nil && !retryable(resp.status):
			return resp, nil
		case err == nil:
			wait = resp.retryAfter
		}
		if attempt >= c.retry.Attempts || (cl.mayRetry != nil && !cl.mayRetry()) || wait > c.retry.MaxDelay {
			return resp, err
		}
		wait = max(wait, c.retry.backoff(attempt))
		if !sleep(ctx, wait) {
			return resp, err
		}
	}
}

// transportError marks a request that got no complete answer.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

func isTransport(err error) bool {
	var te *transportError
	return errors.As(err, &te)
}

// once sends a call once and reads the answer.
func (c *Client) once(ctx context.Context, cl call, u string) (*response, error) {
	req, err := c.newRequest(ctx, cl.method, u, cl.body, cl.ctype, cl.anonymous)
	if err != nil {
		return nil, err
	}
	hr, err := c.hc.Do(req)
	if err != nil {
		return nil, &transportError{fmt.Errorf("loglineos: %s %s: %w", cl.method, cl.path, err)}
	}
	defer hr.Body.Close()
	body, err := io.ReadAll(io.LimitReader(hr.Body, maxResponse+1))
	if err != nil {
		return nil, &transportError{fmt.Errorf("loglineos: %s %s: reading the answer: %w", cl.method, cl.path, err)}
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("loglineos: %s %s: answer larger than %d bytes", cl.method, cl.path, maxResponse)
	}
	return newResponse(cl.path, hr, body), nil
}

// newResponse is the answer hr to a call of path, with its body read.
func newResponse(path string, hr *http.Response, body []byte) *response {
	return &response{path: path, status: hr.StatusCode, header: hr.Header, body: body, retryAfter: retryAfter(hr.Header, time.Now())}
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// sleep waits d or until ctx ends; it reports false, without waiting, when
// ctx would end first.
func sleep(ctx context.Context, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// get sends a GET and returns the body of a 2xx answer, or the *Error of
// any other.
func (c *Client) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	r, err := c.do(ctx, call{method: http.MethodGet, path: path, query: q})
	if err != nil {
		return nil, err
	}
	if !r.ok() {
		return nil, errorFrom(r)
	}
	return r.body, nil
}
