package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"

	"github.com/coder/websocket"
)

// StreamOptions say which records a stream reads.
type StreamOptions struct {
	// Tenant keeps that tenant's spans only. Empty reads every record of
	// every tenant, which needs the cross_tenant capability.
	Tenant string
	// Cursor is the sequence number to start from: 0 for the beginning, the
	// last seq seen plus one to carry on.
	Cursor uint64
	// Follow keeps the stream open at the end of the ledger and delivers
	// records as they become durable, until ctx ends. Without it the stream
	// ends at the records durable when it started.
	Follow bool
	// WebSocket reads from GET /ledger/ws instead of the NDJSON stream
	// GET /ledger/stream. A WebSocket stream always follows.
	WebSocket bool
	// Retries is how many connections in a row may fail before the stream
	// gives up: 0 means 20 (with the default RetryPolicy, a server away for
	// a minute or two), a negative number never gives up. A connection
	// that delivered a record resets the count. The waits between them
	// follow the client's RetryPolicy.
	Retries int
}

// Stream reads ledger records from opts.Cursor on, in order, and survives
// dropped connections: when the connection breaks (or, when following, the
// server ends it, as it does at shutdown or for a slow WebSocket consumer)
// it reconnects with backoff from the last sequence number delivered plus
// one, so the caller sees every record exactly once and in order. A partial
// line from a broken connection is dropped and read again.
//
//	for rec, err := range c.Stream(ctx, client.StreamOptions{Tenant: "t_bakery", Follow: true}) {
//		if err != nil {
//			return err // the stream has ended
//		}
//		// rec.Seq + 1 is where to resume after a restart.
//	}
//
// An error is yielded once, last: ctx's error, an *Error the server
// answered that retrying cannot fix (403, a cursor past the end), the last
// connection error when Retries reconnections in a row failed, or a record
// the client cannot read. Breaking out of the loop closes the connection.
func (c *Client) Stream(ctx context.Context, opts StreamOptions) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		s := &streamer{c: c, opts: opts, next: opts.Cursor}
		limit := opts.Retries
		if limit == 0 {
			limit = 20
		}
		failures := 0
		for {
			var sent int
			var stopped bool
			var err error
			if opts.WebSocket {
				sent, stopped, err = s.websocket(ctx, yield)
			} else {
				sent, stopped, err = s.ndjson(ctx, yield)
			}
			if stopped {
				return
			}
			if ctx.Err() != nil {
				yield(Record{}, ctx.Err())
				return
			}
			if err == nil && !opts.Follow && !opts.WebSocket {
				return // the end of the ledger as it was
			}
			var rerr *recordError
			var apiErr *Error
			switch {
			case errors.As(err, &rerr):
				yield(Record{}, err)
				return
			case errors.As(err, &apiErr) && !retryable(apiErr.Status):
				yield(Record{}, err)
				return
			}
			if sent > 0 {
				failures = 0
			}
			failures++
			if limit > 0 && failures >= limit {
				if err == nil {
					err = errors.New("the server kept ending the stream")
				}
				yield(Record{}, after(fmt.Sprintf("loglineos: stream: giving up after %d failed connections at cursor %d", failures, s.next), err))
				return
			}
			wait := c.retry.backoff(failures)
			if apiErr != nil {
				if apiErr.RetryAfter > c.retry.MaxDelay && sent == 0 {
					yield(Record{}, err)
					return
				}
				wait = max(wait, apiErr.RetryAfter)
			}
			if !sleep(ctx, wait) {
				if ctx.Err() == nil {
					// The deadline comes before the next try.
					yield(Record{}, err)
				} else {
					yield(Record{}, ctx.Err())
				}
				return
			}
		}
	}
}

// streamer is one stream's state across connections.
type streamer struct {
	c    *Client
	opts StreamOptions
	next uint64 // the sequence number to deliver next
}

// recordError is a record the client cannot read: not worth a reconnection.
type recordError struct{ err error }

func (e *recordError) Error() string { return e.err.Error() }
func (e *recordError) Unwrap() error { return e.err }

func (s *streamer) query() url.Values {
	q := url.Values{"cursor": {strconv.FormatUint(s.next, 10)}}
	if s.opts.Tenant != "" {
		q.Set("tenant", s.opts.Tenant)
	}
	if s.opts.Follow {
		q.Set("follow", "true")
	}
	return q
}

// deliver parses one record and yields it unless it was delivered before.
// It reports whether the caller wants more.
func (s *streamer) deliver(line []byte, yield func(Record, error) bool, sent *int) (bool, error) {
	rec, err := parseRecord(line)
	if err != nil {
		return true, &recordError{fmt.Errorf("loglineos: stream: record after cursor %d: %w", s.next, err)}
	}
	if rec.Seq < s.next {
		return true, nil // sent before a reconnection
	}
	s.next = rec.Seq + 1
	*sent++
	return yield(rec, nil), nil
}

// ndjson reads one connection of GET /ledger/stream. It returns how many
// records it delivered, whether the caller stopped, and why the connection
// ended (nil for a clean end of the response).
func (s *streamer) ndjson(ctx context.Context, yield func(Record, error) bool) (sent int, stopped bool, err error) {
	req, err := s.c.newRequest(ctx, http.MethodGet, s.c.endpoint("/ledger/stream", s.query()), nil, "", false)
	if err != nil {
		return 0, false, &recordError{err} // not worth a reconnection either
	}
	req.Header.Set("Accept", "application/x-ndjson")
	hc := *s.c.hc
	hc.Timeout = 0 // a stream lasts as long as its context
	resp, err := hc.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return 0, false, errorFrom(newResponse("/ledger/stream", resp, b))
	}
	lr := lineReader{r: bufio.NewReaderSize(resp.Body, 64<<10), max: 16 << 20}
	for {
		line, err := lr.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return sent, false, nil
			}
			return sent, false, err
		}
		more, err := s.deliver(line, yield, &sent)
		if err != nil {
			return sent, false, err
		}
		if !more {
			return sent, true, nil
		}
	}
}

// websocket reads one connection of GET /ledger/ws.
func (s *streamer) websocket(ctx context.Context, yield func(Record, error) bool) (sent int, stopped bool, err error) {
	u := s.c.endpoint("/ledger/ws", s.query())
	switch s.c.base.Scheme {
	case "https":
		u = "wss" + u[len("https"):]
	default:
		u = "ws" + u[len("http"):]
	}
	h := http.Header{"User-Agent": {s.c.ua}}
	if err := s.c.authorize(ctx, h); err != nil {
		return 0, false, &recordError{err}
	}
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: s.c.hc, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			b, _ := io.ReadAll(resp.Body)
			return 0, false, errorFrom(newResponse("/ledger/ws", resp, b))
		}
		return 0, false, err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(16 << 20)
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			return sent, false, err
		}
		more, err := s.deliver(msg, yield, &sent)
		if err != nil {
			return sent, false, err
		}
		if !more {
			conn.Close(websocket.StatusNormalClosure, "")
			return sent, true, nil
		}
	}
}

// lineReader reads complete lines; a last line without its newline is an
// error (io.ErrUnexpectedEOF), never a record.
type lineReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

func (l *lineReader) next() ([]byte, error) {
	l.buf = l.buf[:0]
	for {
		frag, err := l.r.ReadSlice('\n')
		switch {
		case err == nil:
			if len(l.buf) == 0 {
				return bytes.TrimSuffix(frag, []byte{'\n'}), nil
			}
			l.buf = append(l.buf, frag[:len(frag)-1]...)
			return l.buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			l.buf = append(l.buf, frag...)
			if len(l.buf) > l.max {
				return nil, &recordError{fmt.Errorf("loglineos: stream: a line longer than %d bytes", l.max)}
			}
		case errors.Is(err, io.EOF):
			if len(l.buf)+len(frag) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, io.EOF
		default:
			return nil, err
		}
	}
}

// parseRecord reads one stream line: {"seq":…,"ts":…,"leaf":…,"crc":…,"<kind>":{…}}.
func parseRecord(line []byte) (Record, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return Record{}, err
	}
	var r Record
	for k, v := range m {
		var err error
		switch k {
		case "seq":
			err = json.Unmarshal(v, &r.Seq)
		case "ts":
			err = json.Unmarshal(v, &r.TS)
		case "leaf":
			err = json.Unmarshal(v, &r.Leaf)
		case "crc":
			err = json.Unmarshal(v, &r.CRC)
		default:
			if r.Kind != "" {
				return Record{}, fmt.Errorf("two bodies, %q and %q", r.Kind, k)
			}
			r.Kind, r.Body = k, v
		}
		if err != nil {
			return Record{}, fmt.Errorf("member %q: %w", k, err)
		}
	}
	for _, k := range []string{"seq", "ts", "leaf"} {
		if _, ok := m[k]; !ok {
			return Record{}, fmt.Errorf("no %q member", k)
		}
	}
	if r.Kind == "" {
		return Record{}, errors.New("no body")
	}
	return r, nil
}
