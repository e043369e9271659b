package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/loglineos/loglineos/internal/progress"
)

func newBenchCmd(stdio Stdio) *cobra.Command {
	return group("bench", "Load generators", newBenchIngestCmd(stdio), newBenchSinkCmd(stdio))
}

// benchReport is what bench ingest measured. It counts only what the server
// answered: spans of requests that got no answer were not sent as far as
// anyone can tell, and count as failed requests only.
type benchReport struct {
	URL string `json:"url"`
	// Spans is the number of spans in the requests the server answered,
	// whatever the answer.
	Spans int64 `json:"spans_sent"`
	// Accepted, Duplicates and Rejected are the server's verdicts on them.
	Accepted   int64 `json:"accepted"`
	Duplicates int64 `json:"duplicates"`
	Rejected   int64 `json:"rejected"`
	// FirstRejection is the problem of the first rejected span.
	FirstRejection string `json:"first_rejection,omitempty"`
	// Requests is the number of requests the server answered.
	Requests int64 `json:"requests"`
	// Failed is the number of requests that got no answer, or an answer
	// other than the verdicts on their spans; FirstError says why the first
	// one failed.
	Failed         int64   `json:"requests_failed"`
	FirstError     string  `json:"first_error,omitempty"`
	Batch          int     `json:"batch"`
	Concurrency    int     `json:"concurrency"`
	Rate           float64 `json:"rate,omitempty"`
	Seconds        float64 `json:"seconds"`
	SpansPerSec    float64 `json:"spans_per_second"`
	RequestsPerSec float64 `json:"requests_per_second"`
	// LatencyMS are the latencies of the answered requests.
	LatencyMS struct {
		P50 float64 `json:"p50"`
		P95 float64 `json:"p95"`
		P99 float64 `json:"p99"`
		Max float64 `json:"max"`
	} `json:"latency_ms"`
	// tried is the number of requests sent or tried, answered or not.
	tried int64
}

func newBenchIngestCmd(stdio Stdio) *cobra.Command {
	var (
		url, tenant, token string
		spans              int64
		batch, conc, size  int
		duration           time.Duration
		rate               float64
		asJSON, noProgress bool
	)
	cmd := &cobra.Command{
		Use:   "ingest --url URL[,URL...]",
		Short: "Post spans to a server and measure durable throughput and latency",
		Long: `bench ingest posts --spans spans (or until --duration passes, whichever comes
first) to URL/ingest in NDJSON batches of --batch spans from --concurrency
clients at once, each waiting for its answer (which comes only once its spans
are durable). It reports the spans sent and answered, the server's verdicts
on them (accepted, duplicates, rejected), accepted spans per second and the
latency of the answered requests (p50, p95, p99, max). Every span has a fresh
id, so nothing is a duplicate. A request that gets no answer, or an answer
other than the verdicts on its spans, failed; the spans of a request with no
answer are not counted as sent. Exit status 1, with a line saying how many
and why the first, if any request failed or any span was rejected.

By default each client sends its next request as soon as the last is
answered (closed loop: the figures are the server's capacity). With --rate,
requests are sent on a fixed schedule of that many requests per second
(open loop), and each latency counts from the moment its request was due,
so a server that falls behind shows it.

Several URLs, separated by commas, spread the clients over several gateways
of one cluster: client i posts to URL number i modulo their count.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if url == "" {
				return usageErr("--url is required (e.g. http://127.0.0.1:8080)")
			}
			if spans <= 0 || batch <= 0 || conc <= 0 || duration <= 0 || size < 200 {
				return usageErr("--spans, --batch, --concurrency and --duration must be positive, --size at least 200")
			}
			if token == "" {
				token = stdio.getenv("LOGLINE_TOKEN")
			}
			if rate < 0 {
				return usageErr("--rate must not be negative")
			}
			p, err := newReporter(stdio, noProgress)
			if err != nil {
				return err
			}
			var urls []string
			for _, u := range strings.Split(url, ",") {
				if u = strings.TrimRight(strings.TrimSpace(u), "/"); u == "" {
					return usageErr("--url has an empty URL between its commas")
				}
				urls = append(urls, u)
			}
			rep, err := benchIngest(cmd.Context(), benchOpts{urls: urls, tenant: tenant, token: token,
				spans: spans, batch: batch, conc: conc, size: size, duration: duration, rate: rate}, p)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(stdio.Out, rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(stdio.Out, "%d spans sent and answered in %.2fs: %d accepted, %d duplicates, %d rejected; %.0f spans/s accepted\n",
					rep.Spans, rep.Seconds, rep.Accepted, rep.Duplicates, rep.Rejected, rep.SpansPerSec)
				fmt.Fprintf(stdio.Out, "%d requests of %d spans from %d clients: %.0f requests/s", rep.Requests, rep.Batch, rep.Concurrency, rep.RequestsPerSec)
				if rep.Requests > 0 {
					fmt.Fprintf(stdio.Out, ", latency p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms",
						rep.LatencyMS.P50, rep.LatencyMS.P95, rep.LatencyMS.P99, rep.LatencyMS.Max)
				}
				fmt.Fprintln(stdio.Out)
			}
			switch {
			case rep.Failed > 0:
				return badErr("bench: %d of %d requests failed; first: %s", rep.Failed, rep.tried, rep.FirstError)
			case rep.Rejected > 0:
				return badErr("bench: %d of %d spans rejected; first: %s", rep.Rejected, rep.Spans, rep.FirstRejection)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "", "server base URL")
	f.Int64Var(&spans, "spans", 100_000, "spans to send in all")
	f.IntVar(&batch, "batch", 100, "spans per request")
	f.IntVar(&conc, "concurrency", 8, "requests in flight at once")
	f.DurationVar(&duration, "duration", time.Minute, "stop after this long even if spans remain")
	f.StringVar(&tenant, "tenant", "t_bench", "tenant of the spans")
	f.StringVar(&token, "token", "", "bearer token (env LOGLINE_TOKEN); not needed with serve --dev")
	f.IntVar(&size, "size", 300, "approximate bytes per span")
	f.Float64Var(&rate, "rate", 0, "send this many requests per second on a fixed schedule (open loop); 0: as fast as answered")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	addNoProgressFlag(cmd, &noProgress)
	return cmd
}

type benchOpts struct {
	urls              []string // client i posts to urls[i%len(urls)]
	tenant, token     string
	spans             int64
	batch, conc, size int
	duration          time.Duration
	rate              float64
}

// benchIngest runs the load o describes, showing on p (if not nil) the
// spans sent and answered.
func benchIngest(ctx context.Context, o benchOpts, p *progress.Reporter) (*benchReport, error) {
	var run [6]byte
	rand.Read(run[:])
	runID := hex.EncodeToString(run[:])
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: o.conc, MaxConnsPerHost: o.conc, DisableCompression: true},
		Timeout:   2 * time.Minute,
	}
	pad := strings.Repeat("x", max(0, o.size-260))
	now := time.Now().UTC().Format(time.RFC3339)
	body := func(dst []byte, first int64, n int) []byte {
		dst = dst[:0]
		for i := int64(0); i < int64(n); i++ {
			k := first + i
			dst = append(dst, `{"id":"s_`...)
			dst = append(dst, runID...)
			dst = append(dst, '_')
			dst = strconv.AppendInt(dst, k, 10)
			dst = append(dst, `","tenant":`...)
			dst = strconv.AppendQuote(dst, o.tenant)
			dst = append(dst, `,"who":"bench","did":"bench.post","this":"order:`...)
			dst = strconv.AppendInt(dst, k%100000, 10)
			dst = append(dst, `","when":"`...)
			dst = append(dst, now...)
			dst = append(dst, `","status":"confirmed","confirmed_by":["bench://`...)
			dst = strconv.AppendInt(dst, k%7, 10)
			dst = append(dst, `"],"data":{"n":`...)
			dst = strconv.AppendInt(dst, k, 10)
			dst = append(dst, `,"pad":"`...)
			dst = append(dst, pad...)
			dst = append(dst, "\"}}\n"...)
		}
		return dst
	}

	rep := &benchReport{URL: strings.Join(o.urls, ","), Batch: o.batch, Concurrency: o.conc, Rate: o.rate}
	var (
		next, sent, accepted, dups, rejected atomic.Int64
		tried, reqs, failed                  atomic.Int64
		mu                                   sync.Mutex
		lat                                  []time.Duration
	)
	// note keeps the first of each kind of trouble.
	note := func(first *string, msg string) {
		mu.Lock()
		if *first == "" {
			*first = msg
		}
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	begin := time.Now()
	start := begin.Add(10 * time.Millisecond) // the open loop's schedule
	var wg sync.WaitGroup
	for c := range o.conc {
		url := o.urls[c%len(o.urls)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			defer func() {
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
			var buf []byte
			var ans bytes.Buffer
			for ctx.Err() == nil {
				first := next.Add(int64(o.batch)) - int64(o.batch)
				if first >= o.spans {
					return
				}
				n := int(min(int64(o.batch), o.spans-first))
				buf = body(buf, first, n)
				req, _ := http.NewRequestWithContext(ctx, "POST", url+"/ingest", bytes.NewReader(buf))
				req.Header.Set("Content-Type", "application/x-ndjson")
				if o.token != "" {
					req.Header.Set("Authorization", "Bearer "+o.token)
				}
				t0 := time.Now()
				if o.rate > 0 {
					// Open loop: request k is due at start + k/rate; its
					// latency counts from then.
					due := start.Add(time.Duration(float64(first/int64(o.batch)) / o.rate * float64(time.Second)))
					if wait := time.Until(due); wait > 0 {
						select {
						case <-time.After(wait):
						case <-ctx.Done():
							return
						}
					}
					t0 = due
				}
				resp, err := client.Do(req)
				if err == nil {
					ans.Reset()
					_, err = ans.ReadFrom(resp.Body)
					resp.Body.Close()
				}
				if ctx.Err() != nil {
					return // the time bound, not the server
				}
				tried.Add(1)
				if err != nil {
					// No answer (or half of one): nothing is known of these spans.
					failed.Add(1)
					note(&rep.FirstError, err.Error())
					continue
				}
				mine = append(mine, time.Since(t0))
				reqs.Add(1)
				sent.Add(int64(n))
				out, err := readAnswer(resp.StatusCode, ans.Bytes())
				if err != nil {
					failed.Add(1)
					note(&rep.FirstError, err.Error())
					continue
				}
				accepted.Add(out.Accepted)
				dups.Add(out.Duplicates)
				rejected.Add(out.Rejected)
				if out.Rejected > 0 {
					note(&rep.FirstRejection, out.firstProblem)
				}
			}
		}()
	}
	stop := showBench(p, o.spans, &sent, &failed)
	wg.Wait()
	stop()
	el := time.Since(begin).Seconds()
	rep.Spans, rep.Accepted, rep.Duplicates, rep.Rejected = sent.Load(), accepted.Load(), dups.Load(), rejected.Load()
	rep.tried, rep.Requests, rep.Failed = tried.Load(), reqs.Load(), failed.Load()
	rep.Seconds = el
	rep.SpansPerSec = float64(rep.Accepted) / el
	rep.RequestsPerSec = float64(rep.Requests) / el
	if len(lat) > 0 {
		slices.Sort(lat)
		q := func(p float64) float64 {
			return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
		}
		rep.LatencyMS.P50, rep.LatencyMS.P95, rep.LatencyMS.P99 = q(.50), q(.95), q(.99)
		rep.LatencyMS.Max = float64(lat[len(lat)-1].Microseconds()) / 1000
	}
	return rep, nil
}

// showBench shows on p, until stop is called, the spans sent and answered
// of total, and the requests failed if any.
func showBench(p *progress.Reporter, total int64, sent, failed *atomic.Int64) (stop func()) {
	if p == nil {
		return func() {}
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(progress.DefaultInterval)
		defer t.Stop()
		for {
			if n := failed.Load(); n > 0 {
				p.SetNote(fmt.Sprintf("%d requests failed", n))
			}
			p.Update("bench ingest", progress.Spans, sent.Load(), total)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		p.Clear()
	}
}

// verdicts is what an ingest answer says of the spans of its request.
type verdicts struct {
	counts
	// firstProblem is the first rejected span's problem, when some were.
	firstProblem string
}

// readAnswer reads the answer to an ingest request: 200 with the verdicts
// on every span, or, when every span was rejected, a problem carrying each
// line's result. Any other answer is an error.
func readAnswer(status int, b []byte) (verdicts, error) {
	var v verdicts
	if status == http.StatusOK {
		c, err := answerCounts(b)
		if err != nil {
			return v, err
		}
		v.counts = c
		if c.Rejected > 0 {
			v.firstProblem = firstProblem(b)
		}
		return v, nil
	}
	var pr struct {
		Title, Detail string
		Results       []json.RawMessage `json:"results"`
	}
	switch err := json.Unmarshal(b, &pr); {
	case err != nil || pr.Title == "":
		return v, fmt.Errorf("HTTP %d: %.200s", status, bytes.TrimSpace(b))
	case len(pr.Results) == 0 && pr.Detail == "":
		return v, fmt.Errorf("HTTP %d: %s", status, pr.Title)
	case len(pr.Results) == 0:
		return v, fmt.Errorf("HTTP %d: %s: %s", status, pr.Title, pr.Detail)
	}
	v.Rejected = int64(len(pr.Results))
	v.firstProblem = firstProblem(b)
	return v, nil
}

// firstProblem returns the problem of the first rejected line of an ingest
// answer as one line: its title and detail, and the rule when it names one.
func firstProblem(b []byte) string {
	var ans struct {
		Results []struct {
			Problem *struct {
				Title, Detail, Rule string
			} `json:"problem"`
		} `json:"results"`
	}
	json.Unmarshal(b, &ans)
	for _, r := range ans.Results {
		if p := r.Problem; p != nil {
			msg := p.Title
			if p.Detail != "" {
				msg += ": " + p.Detail
			}
			if p.Rule != "" {
				msg += " (rule " + p.Rule + ")"
			}
			return msg
		}
	}
	return "(the answer names no problem)"
}

type counts struct{ Accepted, Duplicates, Rejected int64 }

// answerCounts reads the three counts at the head of an ingest answer,
// {"accepted":N,"duplicates":N,"rejected":N,"results":...}, without decoding
// the receipts after them.
func answerCounts(b []byte) (counts, error) {
	var c counts
	rest := b
	for _, f := range []struct {
		key string
		dst *int64
	}{{`{"accepted":`, &c.Accepted}, {`,"duplicates":`, &c.Duplicates}, {`,"rejected":`, &c.Rejected}} {
		v, ok := bytes.CutPrefix(rest, []byte(f.key))
		if !ok {
			return c, fmt.Errorf("unexpected answer: %.120s", b)
		}
		i := 0
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		n, err := strconv.ParseInt(string(v[:i]), 10, 64)
		if err != nil {
			return c, fmt.Errorf("unexpected answer: %.120s", b)
		}
		*f.dst, rest = n, v[i:]
	}
	return c, nil
}
