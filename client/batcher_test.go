package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/client"
)

// addAll adds spans to b and returns their handles.
func addAll(t *testing.T, b *client.Batcher, spans []client.Span) []*client.Pending {
	t.Helper()
	ps := make([]*client.Pending, len(spans))
	for i, s := range spans {
		p, err := b.Add(testCtx(t), s)
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = p
	}
	return ps
}

// waitAll waits for every handle and checks each got its own span's result.
func waitAll(t *testing.T, spans []client.Span, ps []*client.Pending, want client.LineStatus) []client.LineResult {
	t.Helper()
	out := make([]client.LineResult, len(ps))
	for i, p := range ps {
		res, err := p.Wait(testCtx(t))
		if err != nil {
			t.Fatalf("span %s: %v", spans[i].ID, err)
		}
		if res.ID != spans[i].ID || res.Status != want || res.Receipt == nil || res.Receipt.SpanID != spans[i].ID {
			t.Errorf("span %s got result %+v, want its own, %s", spans[i].ID, res, want)
		}
		out[i] = res
	}
	return out
}

func TestBatcherFlushBySize(t *testing.T) {
	// A sale's JSON is about 190 bytes.
	tests := []struct {
		name  string
		opts  client.BatchOptions
		spans int
		early int   // answered before Close: their batches filled up
		lines []int // per request
	}{
		{"by count", client.BatchOptions{MaxSpans: 3, MaxDelay: time.Hour}, 7, 6, []int{3, 3, 1}},
		{"by bytes", client.BatchOptions{MaxBytes: 450, MaxDelay: time.Hour}, 5, 4, []int{2, 2, 1}},
		{"a span over MaxBytes goes alone", client.BatchOptions{MaxBytes: 10, MaxDelay: time.Hour}, 3, 3, []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rc routeCounter
			ts := startServer(t, serverOpts{wrap: rc.wrap})
			c := newClient(t, ts.URL)
			b := client.NewBatcher(c, tt.opts)
			spans := sales("t_a", 0, tt.spans)
			ps := addAll(t, b, spans)
			// The full batches are on their way without waiting for MaxDelay.
			waitAll(t, spans[:tt.early], ps[:tt.early], client.Accepted)
			for i, p := range ps[tt.early:] {
				select {
				case <-p.Done():
					t.Errorf("span %d answered before Close", tt.early+i)
				default:
				}
			}
			if err := b.Close(testCtx(t)); err != nil { // sends the rest
				t.Fatal(err)
			}
			waitAll(t, spans, ps, client.Accepted)
			if diff := cmp.Diff(tt.lines, rc.ingestLines()); diff != "" {
				t.Errorf("lines per request (-want +got):\n%s", diff)
			}
			if _, err := b.Add(testCtx(t), sale("t_a", "s_late", "order:1")); !errors.Is(err, client.ErrClosed) {
				t.Errorf("Add after Close: %v, want ErrClosed", err)
			}
			if err := b.Close(testCtx(t)); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestBatcherFlushByDelay(t *testing.T) {
	var rc routeCounter
	ts := startServer(t, serverOpts{wrap: rc.wrap})
	c := newClient(t, ts.URL)
	b := client.NewBatcher(c, client.BatchOptions{MaxSpans: 1000, MaxDelay: 20 * time.Millisecond})
	defer b.Close(testCtx(t))
	spans := sales("t_a", 0, 3)
	start := time.Now()
	ps := addAll(t, b, spans)
	waitAll(t, spans, ps, client.Accepted) // no Close: the delay sends them
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Errorf("sent after %v, before MaxDelay", el)
	}
	// A second batch, after the first was sent.
	more := sales("t_a", 3, 2)
	waitAll(t, more, addAll(t, b, more), client.Accepted)
	if diff := cmp.Diff([]int{3, 2}, rc.ingestLines()); diff != "" {
		t.Errorf("lines per request (-want +got):\n%s", diff)
	}
}

// TestBatcherConcurrentAdds routes each of many spans, added from several
// goroutines, to its own handle, with bounded requests in flight.
func TestBatcherConcurrentAdds(t *testing.T) {
	var rc routeCounter
	ts := startServer(t, serverOpts{wrap: rc.wrap})
	c := newClient(t, ts.URL)
	b := client.NewBatcher(c, client.BatchOptions{MaxSpans: 7, MaxDelay: 5 * time.Millisecond, Concurrency: 2})
	const workers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				s := sale("t_a", fmt.Sprintf("s_%d_%d", w, i), fmt.Sprintf("order:%d", w))
				if i%10 == 9 {
					s.Who = "" // rejected: its handle must say so, alone
				}
				p, err := b.Add(testCtx(t), s)
				if err != nil {
					errs <- err
					return
				}
				res, err := p.Wait(testCtx(t))
				switch {
				case s.Who == "":
					var ae *client.Error
					if !errors.As(err, &ae) || ae.Problem.Field != "who" || res.Status != client.Rejected || res.ID != s.ID {
						errs <- fmt.Errorf("span %s: %+v, %v; want rejected for its who", s.ID, res, err)
					}
				case err != nil:
					errs <- err
				case res.ID != s.ID || !res.Stored():
					errs <- fmt.Errorf("span %s got %+v", s.ID, res)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := b.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if rc.peak > 2 {
		t.Errorf("%d requests in flight at once, want at most 2", rc.peak)
	}
	total := 0
	for _, n := range rc.ingestLines() {
		if n > 7 {
			t.Errorf("a request of %d lines, want at most 7", n)
		}
		total += n
	}
	if total != workers*each {
		t.Errorf("%d lines sent, want %d", total, workers*each)
	}
}

// failFirst answers the first POST /ingest with fail, then passes through.
func failFirst(fail http.Handler) func(http.Handler) http.Handler {
	var failed atomic.Bool
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/ingest" && failed.CompareAndSwap(false, true) {
				fail.ServeHTTP(w, r)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

func TestBatcherRetries(t *testing.T) {
	tests := []struct {
		name     string
		fail     func(real http.Handler) http.Handler
		want     client.LineStatus
		minWait  time.Duration
		requests int
	}{{
		name: "503 with Retry-After",
		fail: func(http.Handler) http.Handler {
			return problemHandler(503, "/problems/overloaded", "server overloaded", "Retry-After", "1")
		},
		want:     client.Accepted,
		minWait:  time.Second,
		requests: 2,
	}, {
		name: "429",
		fail: func(http.Handler) http.Handler {
			return problemHandler(429, "/problems/quota-exceeded", "quota exceeded")
		},
		want:     client.Accepted,
		requests: 2,
	}, {
		// The first request is stored, but its answer is lost: the retry
		// finds the spans stored and gets their original receipts.
		name: "answer lost after the spans were stored",
		fail: func(real http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				real.ServeHTTP(httptest.NewRecorder(), r)
				panic(http.ErrAbortHandler) // drops the connection
			})
		},
		want:     client.Duplicate,
		requests: 2,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rc routeCounter
			ts := startServer(t, serverOpts{wrap: func(h http.Handler) http.Handler {
				return rc.wrap(failFirst(tt.fail(h))(h))
			}})
			c := newClient(t, ts.URL)
			b := client.NewBatcher(c, client.BatchOptions{MaxSpans: 3})
			spans := sales("t_a", 0, 3)
			start := time.Now()
			results := waitAll(t, spans, addAll(t, b, spans), tt.want)
			if el := time.Since(start); el < tt.minWait {
				t.Errorf("retried after %v, want at least %v", el, tt.minWait)
			}
			if err := b.Close(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			if got := rc.count("POST /ingest"); got != tt.requests {
				t.Errorf("%d requests, want %d", got, tt.requests)
			}
			for i, r := range results {
				if r.Seq != uint64(i) {
					t.Errorf("span %d stored at seq %d: stored twice?", i, r.Seq)
				}
			}
		})
	}
}

// TestBatcherNoRetry: a request refused with a problem that retrying cannot
// fix fails every span of it, once.
func TestBatcherNoRetry(t *testing.T) {
	var rc routeCounter
	ts := startServer(t, serverOpts{wrap: func(h http.Handler) http.Handler {
		return rc.wrap(failFirst(problemHandler(403, "/problems/forbidden", "not allowed"))(h))
	}})
	c := newClient(t, ts.URL)
	b := client.NewBatcher(c, client.BatchOptions{MaxSpans: 2})
	defer b.Close(testCtx(t))
	for _, p := range addAll(t, b, sales("t_a", 0, 2)) {
		if _, err := p.Wait(testCtx(t)); !errors.Is(err, client.ErrForbidden) {
			t.Errorf("Wait: %v, want ErrForbidden", err)
		}
	}
	if got := rc.count("POST /ingest"); got != 1 {
		t.Errorf("%d requests, want 1", got)
	}
}

// TestBatcherCloseDeadline: Close with a context that ends cancels the
// requests in flight, and their handles say so.
func TestBatcherCloseDeadline(t *testing.T) {
	release := make(chan struct{})
	ts := startServer(t, serverOpts{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select { // hang until the client gives up
			case <-r.Context().Done():
			case <-release:
			}
		})
	}})
	defer close(release)
	c := newClient(t, ts.URL)
	b := client.NewBatcher(c, client.BatchOptions{MaxDelay: time.Millisecond})
	ps := addAll(t, b, sales("t_a", 0, 2))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want the deadline", err)
	}
	for _, p := range ps {
		if _, err := p.Wait(testCtx(t)); !errors.Is(err, context.Canceled) {
			t.Errorf("Wait = %v, want a cancellation", err)
		}
	}
}
