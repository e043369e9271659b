package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// renewBefore is how long before its expiry a service account's token is
// exchanged again, at most; a token that lives less than five times as long
// is renewed when a fifth of its life is left.
const renewBefore = time.Minute

// WithServiceAccount authenticates the client as a service account: it
// exchanges the account's id and secret for an LLST at the server's
// POST /auth/token (grant_type=client_credentials, RFC 6749 §4.4), sends
// that token with every request, and exchanges again shortly before it
// expires. One exchange runs at a time; the other requests wait for it. A
// wrong id or secret, or a revoked account, fails the request with an
// *Error matching ErrUnauthenticated, without sending it.
//
// The account is created by an administrator of its tenant
// (`logline accounts create --tenant T --role app`), which shows the secret
// once: keep it out of source code and logs, in a file that WithAccountFile
// reads, say.
func WithServiceAccount(id, secret string) Option {
	return func(c *Client) error { return c.useServiceAccount(id, secret) }
}

// WithAccountFile is WithServiceAccount with the id and secret read from a
// credentials file (see Account and ReadAccountFile): the JSON that
// `logline accounts create` prints, or a server's operator.json. The file
// is read once, by New; a file that cannot be used fails New with
// ErrBadAccountFile, naming the file and what is wrong. Keep the file
// readable by the app alone (mode 0600).
func WithAccountFile(path string) Option {
	return func(c *Client) error {
		a, err := ReadAccountFile(path)
		if err != nil {
			return err
		}
		return c.useServiceAccount(a.ClientID, a.ClientSecret)
	}
}

// useServiceAccount makes the client exchange the service account's id and
// secret for its tokens.
func (c *Client) useServiceAccount(id, secret string) error {
	if id == "" || secret == "" {
		return fmt.Errorf("loglineos: service account: id and secret are required")
	}
	c.token = newServiceAccount(c, id, secret).token
	return nil
}

// serviceAccount is the token source of WithServiceAccount.
type serviceAccount struct {
	c    *Client
	form []byte
	// sem is held while the token is read or exchanged: it guards tok and
	// renew, and lets a waiting request give up when its context ends.
	sem   chan struct{}
	tok   string
	renew time.Time // when tok is to be exchanged again
}

func newServiceAccount(c *Client, id, secret string) *serviceAccount {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
	return &serviceAccount{c: c, form: []byte(form.Encode()), sem: make(chan struct{}, 1)}
}

// token returns the kept token, exchanging the credentials for a new one
// when there is none or it is due for renewal.
func (sa *serviceAccount) token(ctx context.Context) (string, error) {
	select {
	case sa.sem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-sa.sem }()
	if sa.tok != "" && sa.c.now().Before(sa.renew) {
		return sa.tok, nil
	}
	start := sa.c.now()
	r, err := sa.c.do(ctx, call{method: http.MethodPost, path: "/auth/token", body: sa.form,
		ctype: "application/x-www-form-urlencoded", anonymous: true})
	if err != nil {
		return "", err
	}
	if !r.ok() {
		return "", errorFrom(r)
	}
	var t struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(r.body, &t); err != nil {
		return "", fmt.Errorf("loglineos: POST /auth/token: reading the answer: %w", err)
	}
	if t.AccessToken == "" || !strings.EqualFold(t.TokenType, "bearer") {
		return "", fmt.Errorf("loglineos: POST /auth/token: the answer holds no bearer token")
	}
	life := time.Duration(t.ExpiresIn) * time.Second
	sa.tok, sa.renew = t.AccessToken, start.Add(life-min(life/5, renewBefore))
	return sa.tok, nil
}
