package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/loglineos/loglineos/internal/gateway/reply"
)

// ingestAnswer is what post reads of POST /v1/ingest's answer (and of the
// problem that refuses a request whose every line was rejected): one
// result per line sent.
type ingestAnswer struct {
	Results []json.RawMessage `json:"results"`
}

// lineResult is what post reads of one result.
type lineResult struct {
	Line    int            `json:"line"`
	ID      string         `json:"id"`
	Status  string         `json:"status"`
	Problem *reply.Problem `json:"problem"`
}

func newPostCmd(stdio Stdio) *cobra.Command {
	var api apiFlags
	cmd := &cobra.Command{
		Use:   "post FILE|- [--url URL] [--token TOKEN | --credentials FILE]",
		Short: "Post spans to a server (POST /v1/ingest); print one result a line",
		Long: `post sends the spans of FILE ("-": stdin) to POST /v1/ingest: one span, a JSON
array of spans, or NDJSON (one span a line). Once they are on disk it prints
the server's answer, one result a line in the order sent:

  {"line":1,"id":"s_1","status":"accepted","seq":0,"receipt":{...}}

accepted with its signed receipt, duplicate with the original's, or rejected
with a problem naming the field and the rule. The line of one span is a file
'logline ledger verify-receipt' checks.

It exits 0 when every span is stored (accepted or duplicate); 1 when a span
is rejected (each one also on stderr, on one line: its line, its id and the
problem's detail; correct the span, a retry gets the same answer), or when
the whole request is refused (a bad token, a quota, overload: the problem's
detail; retry those later). A server run with --dev needs no token.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("want one file of spans (- for stdin)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := readArg(args[0], stdio.In)
			if err != nil {
				return err
			}
			if len(bytes.TrimSpace(body)) == 0 {
				return usageErr("%s holds no span", args[0])
			}
			tok, err := api.bearer(stdio)
			if err != nil {
				return err
			}
			// One JSON value (a span, an array) goes as JSON; anything
			// else as NDJSON, where the server judges each line.
			ctype := "application/x-ndjson"
			if json.Valid(body) {
				ctype = "application/json"
			}
			u := strings.TrimRight(api.url, "/") + "/v1/ingest"
			status, b, err := send("POST", u, tok, ctype, body)
			if err != nil {
				return err
			}
			var ans ingestAnswer
			if err := json.Unmarshal(b, &ans); err != nil || len(ans.Results) == 0 {
				if status >= 400 {
					return problemErr("POST", u, status, b)
				}
				return badErr("POST %s: HTTP %d: the answer holds no results", u, status)
			}
			return printResults(stdio, ans.Results)
		},
	}
	api.add(cmd, stdio)
	return cmd
}

// printResults prints each result on one line of stdout, and each rejected
// one on stderr too; it fails (exit 1) when one was rejected.
func printResults(stdio Stdio, results []json.RawMessage) error {
	rejected := 0
	var line bytes.Buffer
	for _, raw := range results {
		line.Reset()
		if err := json.Compact(&line, raw); err != nil {
			return badErr("the answer holds a malformed result: %v", err)
		}
		line.WriteByte('\n')
		if _, err := stdio.Out.Write(line.Bytes()); err != nil {
			return err
		}
		var r lineResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return badErr("the answer holds a malformed result: %v", err)
		}
		if r.Status != "rejected" {
			continue
		}
		rejected++
		which := fmt.Sprintf("line %d", r.Line)
		if r.ID != "" {
			which += fmt.Sprintf(" (span %q)", r.ID)
		}
		fmt.Fprintf(stdio.Err, "logline: %s rejected: %s\n", which, problemText(r.Problem))
	}
	if rejected > 0 {
		return silentExit(ExitBad)
	}
	return nil
}

// problemText is a rejected line's problem on one line: its detail (or
// title), its type and where the rule it breaks is written.
func problemText(p *reply.Problem) string {
	if p == nil {
		return "no reason given"
	}
	what := p.Detail
	if what == "" {
		what = p.Title
	}
	where := p.Type
	if p.At != "" {
		where += ", " + p.At
	}
	return strings.ReplaceAll(what, "\n", " ") + " (" + where + ")"
}
