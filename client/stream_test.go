package client_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/client"
)

// cut says which connections a cutter drops, and where.
type cut struct{ cuts, after, wsBytes int }

// cutter drops the first few connections of the record streams after a
// number of records: NDJSON responses in the middle of the next record's
// line, WebSocket connections after a number of bytes. It notes the cursor
// each connection asked for.
type cutter struct {
	cuts    int // connections to cut
	after   int // NDJSON: records sent before the cut
	wsBytes int // WebSocket: bytes sent before the cut

	mu      sync.Mutex
	cursors []string
}

func (c *cutter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ledger/stream" && r.URL.Path != "/ledger/ws" {
			h.ServeHTTP(w, r)
			return
		}
		c.mu.Lock()
		c.cursors = append(c.cursors, r.URL.Query().Get("cursor"))
		cut := c.cuts > 0
		if cut {
			c.cuts--
		}
		c.mu.Unlock()
		if cut && r.URL.Path == "/ledger/stream" {
			w = &cutWriter{ResponseWriter: w, left: c.after}
		} else if cut {
			w = &wsCutter{ResponseWriter: w, left: c.wsBytes}
		}
		h.ServeHTTP(w, r)
	})
}

func (c *cutter) connections() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.cursors...)
}

// cutWriter passes left record lines, then half of the next, then drops
// the connection.
type cutWriter struct {
	http.ResponseWriter
	left int
}

func (w *cutWriter) Write(b []byte) (int, error) {
	i := 0
	for w.left > 0 {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
		w.left--
	}
	if w.left > 0 || i == len(b) {
		return w.ResponseWriter.Write(b)
	}
	next := len(b)
	if k := bytes.IndexByte(b[i:], '\n'); k >= 0 {
		next = i + k + 1
	}
	w.ResponseWriter.Write(b[:i+(next-i)/2])
	w.Flush()
	panic(http.ErrAbortHandler)
}

func (w *cutWriter) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

func (w *cutWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wsCutter hands the WebSocket a connection that breaks after left bytes.
type wsCutter struct {
	http.ResponseWriter
	left int
}

func (w *wsCutter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	cc := &cutConn{Conn: conn, left: w.left}
	return cc, bufio.NewReadWriter(brw.Reader, bufio.NewWriter(cc)), nil
}

type cutConn struct {
	net.Conn
	mu   sync.Mutex
	left int
}

func (c *cutConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left < 0 {
		return 0, net.ErrClosed
	}
	if len(b) <= c.left {
		c.left -= len(b)
		return c.Conn.Write(b)
	}
	c.Conn.Write(b[:c.left])
	c.left = -1
	c.Conn.Close()
	return 0, net.ErrClosed
}

// collect reads a stream until it ends, or until n records.
func collect(t *testing.T, seq func(func(client.Record, error) bool), n int) ([]uint64, error) {
	t.Helper()
	var seqs []uint64
	for rec, err := range seq {
		if err != nil {
			return seqs, err
		}
		if rec.Kind != "span" {
			t.Errorf("record %d is a %q record", rec.Seq, rec.Kind)
		}
		if err := rec.VerifyLeaf(); err != nil {
			t.Error(err)
		}
		seqs = append(seqs, rec.Seq)
		if len(seqs) == n {
			break
		}
	}
	return seqs, nil
}

func seqRange(from, to uint64, step uint64) []uint64 {
	var out []uint64
	for s := from; s < to; s += step {
		out = append(out, s)
	}
	return out
}

// TestStreamResume reads the ledger through connections that break, and
// checks every record arrives once, in order, each reconnection asking for
// the record after the last delivered.
func TestStreamResume(t *testing.T) {
	tests := []struct {
		name    string
		opts    client.StreamOptions
		cut     cut
		want    []uint64
		cursors []string
	}{{
		name:    "to the end",
		opts:    client.StreamOptions{Tenant: "t_a"},
		want:    seqRange(0, 10, 2),
		cursors: []string{"0"},
	}, {
		name:    "from a cursor",
		opts:    client.StreamOptions{Tenant: "t_b", Cursor: 4},
		want:    seqRange(5, 10, 2),
		cursors: []string{"4"},
	}, {
		name:    "every tenant",
		opts:    client.StreamOptions{},
		want:    seqRange(0, 10, 1),
		cursors: []string{"0"},
	}, {
		name:    "cut three times after three records",
		opts:    client.StreamOptions{},
		cut:     cut{cuts: 3, after: 3},
		want:    seqRange(0, 10, 1),
		cursors: []string{"0", "3", "6", "9"},
	}, {
		name:    "cut within one tenant's records",
		opts:    client.StreamOptions{Tenant: "t_a"},
		cut:     cut{cuts: 2, after: 2},
		want:    seqRange(0, 10, 2),
		cursors: []string{"0", "3", "7"},
	}, {
		name:    "cut in the first record",
		opts:    client.StreamOptions{},
		cut:     cut{cuts: 2, after: 0},
		want:    seqRange(0, 10, 1),
		cursors: []string{"0", "0", "0"},
	}, {
		name:    "WebSocket",
		opts:    client.StreamOptions{Tenant: "t_a", WebSocket: true},
		want:    seqRange(0, 10, 2),
		cursors: []string{"0"},
	}, {
		name:    "WebSocket cut",
		opts:    client.StreamOptions{WebSocket: true},
		cut:     cut{cuts: 2, wsBytes: 700},
		want:    seqRange(0, 10, 1),
		cursors: nil, // where the cuts fall depends on framing; checked below
	}}
	// One ledger for every case, each with its own cutter.
	var sw switchable
	ts := startServer(t, serverOpts{wrap: sw.wrap})
	c := newClient(t, ts.URL)
	for i := range 10 { // t_a at even seqs, t_b at odd
		tenant := []string{"t_a", "t_b"}[i%2]
		ingest(t, c, sale(tenant, "s_1"+string(rune('0'+i)), "order:1"))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cut := &cutter{cuts: tt.cut.cuts, after: tt.cut.after, wsBytes: tt.cut.wsBytes}
			sw.use(cut.wrap)
			got, err := collect(t, c.Stream(testCtx(t), tt.opts), len(tt.want))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			conns := cut.connections()
			if tt.cursors != nil {
				if diff := cmp.Diff(tt.cursors, conns); diff != "" {
					t.Errorf("cursors asked for (-want +got):\n%s", diff)
				}
			} else if len(conns) != 3 {
				t.Errorf("%d connections (%v), want 3", len(conns), conns)
			}
		})
	}
}

// TestStreamFollow follows the ledger as spans arrive, across a dropped
// connection, over NDJSON and WebSocket.
func TestStreamFollow(t *testing.T) {
	for _, ws := range []bool{false, true} {
		name := map[bool]string{false: "NDJSON", true: "WebSocket"}[ws]
		t.Run(name, func(t *testing.T) {
			cut := &cutter{cuts: 1, after: 2, wsBytes: 500}
			ts := startServer(t, serverOpts{wrap: cut.wrap})
			c := newClient(t, ts.URL)
			ingest(t, c, sales("t_a", 0, 3)...)
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			var got []uint64
			for rec, err := range c.Stream(ctx, client.StreamOptions{Tenant: "t_a", Follow: true, WebSocket: ws}) {
				if err != nil {
					if len(got) == 8 && errors.Is(err, context.Canceled) {
						break
					}
					t.Fatal(err)
				}
				got = append(got, rec.Seq)
				switch len(got) {
				case 3: // caught up: more arrive while the stream waits
					ingest(t, c, sales("t_a", 3, 2)...)
					ingest(t, c, sales("t_a", 5, 3)...)
				case 8:
					cancel()
				}
			}
			if diff := cmp.Diff(seqRange(0, 8, 1), got); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if n := len(cut.connections()); n != 2 {
				t.Errorf("%d connections, want 2", n)
			}
		})
	}
}

func TestStreamErrors(t *testing.T) {
	tests := []struct {
		name   string
		opts   client.StreamOptions
		inject http.Handler
		is     error
		status int
		conns  int
	}{{
		name:   "cursor past the end",
		opts:   client.StreamOptions{Cursor: 99},
		status: 400,
		conns:  1,
	}, {
		name:   "cursor past the end, WebSocket",
		opts:   client.StreamOptions{Cursor: 99, WebSocket: true},
		status: 400,
		conns:  1,
	}, {
		name:   "forbidden",
		opts:   client.StreamOptions{Tenant: "t_a"},
		inject: problemHandler(403, "/problems/forbidden", "not allowed"),
		is:     client.ErrForbidden,
		status: 403,
		conns:  1,
	}, {
		name:   "unavailable until the retries run out",
		opts:   client.StreamOptions{Tenant: "t_a", Follow: true, Retries: 3},
		inject: problemHandler(503, "/problems/unavailable", "service unavailable"),
		status: 503,
		conns:  3,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cut cutter
			ts := startServer(t, serverOpts{wrap: func(h http.Handler) http.Handler {
				if tt.inject != nil {
					h = tt.inject
				}
				return cut.wrap(h)
			}})
			c := newClient(t, ts.URL)
			var errs []error
			for _, err := range c.Stream(testCtx(t), tt.opts) {
				if err == nil {
					t.Fatal("a record, want an error")
				}
				errs = append(errs, err)
			}
			if len(errs) != 1 {
				t.Fatalf("errors %v, want one", errs)
			}
			var ae *client.Error
			if !errors.As(errs[0], &ae) || ae.Status != tt.status {
				t.Errorf("error %v, want an *Error of status %d", errs[0], tt.status)
			}
			if tt.is != nil && !errors.Is(errs[0], tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", errs[0], tt.is)
			}
			if n := len(cut.connections()); n != tt.conns {
				t.Errorf("%d connections, want %d", n, tt.conns)
			}
		})
	}
}

// TestStreamContext: a follower ends with its context's error.
func TestStreamContext(t *testing.T) {
	ts := startServer(t, serverOpts{})
	c := newClient(t, ts.URL)
	ingest(t, c, sales("t_a", 0, 1)...)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var last error
	n := 0
	for _, err := range c.Stream(ctx, client.StreamOptions{Tenant: "t_a", Follow: true}) {
		if n++; n == 1 {
			cancel() // the stream is now waiting for more
		}
		last = err
	}
	if n != 2 || !errors.Is(last, context.Canceled) {
		t.Errorf("%d values, last error %v; want a record, then context.Canceled", n, last)
	}
}
