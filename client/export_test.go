package client

import "time"

// WithClock makes the client renew its service account's tokens by now
// instead of time.Now, for tests of the renewal against a real server.
func WithClock(now func() time.Time) Option {
	return func(c *Client) error {
		c.now = now
		return nil
	}
}
