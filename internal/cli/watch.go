package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func newWatchCmd(stdio Stdio) *cobra.Command {
	var (
		api     apiFlags
		tenant  string
		derived bool
		cursor  uint64
		count   int
	)
	cmd := &cobra.Command{
		Use:   "watch --tenant T [--derived] [--cursor N] [--count N] [--url URL] [--token TOKEN | --credentials FILE]",
		Short: "Print a tenant's records, or its derived events, as the server streams them",
		Long: `watch follows a tenant's stream on a server from --cursor on and prints each
line as it arrives: the records as the ledger holds them (GET /v1/ledger/stream,
cursor: a sequence number)

  {"seq":0,"ts":"...","leaf":"...","crc":"...","span":{...}}

or, with --derived, the events LogLineOS derives from them (GET
/v1/derived/stream, cursor: an event number)

  {"position":0,"seq":0,"src_span_id":"s_1","tenant":"t","this":"order:1","trajectory_id":"...","ts":"...","type":"trajectory_edge"}

It follows until interrupted, or exits 0 once it has printed --count lines.
When the server ends the stream (it stopped, or the token expired) it says on
stderr which --cursor resumes it, and exits 1.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if tenant == "" {
				return usageErr("--tenant is required")
			}
			if count < 0 {
				return usageErr("--count must not be negative")
			}
			tok, err := api.bearer(stdio)
			if err != nil {
				return err
			}
			path := "/v1/ledger/stream"
			if derived {
				path = "/v1/derived/stream"
			}
			q := url.Values{"tenant": {tenant}, "cursor": {strconv.FormatUint(cursor, 10)}, "follow": {"true"}}
			u := strings.TrimRight(api.url, "/") + path + "?" + q.Encode()
			req, err := newRequest(cmd.Context(), "GET", u, tok, "", nil)
			if err != nil {
				return err
			}
			// No timeout: a stream lasts as long as its reader wants it.
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				return problemErr("GET", u, resp.StatusCode, b)
			}
			w := watcher{out: stdio.Out, derived: derived, cursor: cursor, count: count}
			return w.read(bufio.NewReader(resp.Body))
		},
	}
	api.add(cmd, stdio)
	cmd.Flags().StringVar(&tenant, "tenant", "", "the tenant whose stream to follow")
	cmd.Flags().BoolVar(&derived, "derived", false, "follow the derived events instead of the records")
	cmd.Flags().Uint64Var(&cursor, "cursor", 0, "where to start: a sequence number (records) or an event number (--derived)")
	cmd.Flags().IntVar(&count, "count", 0, "exit after this many lines (0: follow until interrupted)")
	return cmd
}

// watcher prints a stream's lines and keeps the cursor that resumes it.
type watcher struct {
	out     io.Writer
	derived bool
	cursor  uint64 // resumes the stream after the lines printed
	count   int    // lines to print; 0: no end
	printed int
}

// streamLine is what watch reads of a line: a record's seq, or the problem
// that ends the stream (its type is a /problems/ path, which no derived
// event's type is).
type streamLine struct {
	Seq    *uint64 `json:"seq"`
	Type   string  `json:"type"`
	Detail string  `json:"detail"`
	Cursor *uint64 `json:"cursor"`
}

// read prints the lines of r until the count is reached or the stream
// ends. A last line without its newline was cut short: it is not printed,
// and the cursor still names it.
func (w *watcher) read(r *bufio.Reader) error {
	for w.count == 0 || w.printed < w.count {
		line, err := r.ReadBytes('\n')
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return badErr("the server ended the stream; resume with --cursor %d", w.cursor)
		case err != nil:
			return badErr("the stream broke: %v; resume with --cursor %d", err, w.cursor)
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			if err := w.line(line); err != nil {
				return err
			}
		}
	}
	return nil
}

// line prints one line, or fails with the problem that ends the stream.
func (w *watcher) line(line []byte) error {
	var l streamLine
	if err := json.Unmarshal(line, &l); err != nil {
		return badErr("the stream sent a malformed line (%v); resume with --cursor %d", err, w.cursor)
	}
	if strings.HasPrefix(l.Type, "/problems/") {
		if l.Cursor != nil {
			w.cursor = *l.Cursor
		}
		return badErr("the server ended the stream: %s (%s); resume with --cursor %d", l.Detail, l.Type, w.cursor)
	}
	if _, err := fmt.Fprintf(w.out, "%s\n", line); err != nil {
		return err
	}
	w.printed++
	switch {
	case w.derived:
		w.cursor++
	case l.Seq != nil:
		w.cursor = *l.Seq + 1
	}
	return nil
}
