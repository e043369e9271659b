package cluster

import (
	"encoding/json"
	"fmt"

	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// Headers of LEDGER_IN's messages.
const (
	// HeaderReply is the subject the integrator answers a LEDGER_IN
	// message on, once the commit carrying its spans is in
	// LEDGER_INTEGRATED.
	HeaderReply = "Logline-Reply"
)

// inEntry is one entry of a LEDGER_IN message. A message is a JSON array
// of them:
//
//	[{"kind":"span","tenant":"t_bakery","id":"s_1","this":"order:1","body":{…}}, …]
//
// body is the record's canonical JSON object, exactly as the gateway
// produced it (the integrator stores it as given).
type inEntry struct {
	Kind   string          `json:"kind,omitempty"`
	Tenant string          `json:"tenant"`
	ID     string          `json:"id,omitempty"`
	This   string          `json:"this,omitempty"`
	Body   json.RawMessage `json:"body"`
}

// encodeEntries is the payload of a LEDGER_IN message carrying entries.
func encodeEntries(entries []ledger.Entry) ([]byte, error) {
	in := make([]inEntry, len(entries))
	for i, e := range entries {
		if !json.Valid(e.Body) {
			return nil, fmt.Errorf("cluster: entry %d (%s/%s): the body is not JSON", i, e.Tenant, e.ID)
		}
		in[i] = inEntry{Kind: e.Kind, Tenant: e.Tenant, ID: e.ID, This: e.This, Body: e.Body}
	}
	return json.Marshal(in)
}

// decodeEntries reads a LEDGER_IN message's payload.
func decodeEntries(data []byte) ([]ledger.Entry, error) {
	var in []inEntry
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("cluster: a %s message: %w", StreamIn, err)
	}
	out := make([]ledger.Entry, len(in))
	for i, e := range in {
		out[i] = ledger.Entry{Kind: e.Kind, Tenant: e.Tenant, ID: e.ID, This: e.This, Body: e.Body}
	}
	return out, nil
}

// reply is the integrator's answer to a LEDGER_IN message: one result per
// entry, in order, or the error that stopped them all.
//
//	{"results":[{"status":"accepted","receipt":{…}}, …]}
//	{"error":"…"}
type reply struct {
	Results []replyResult `json:"results,omitempty"`
	Error   string        `json:"error,omitempty"`
}

type replyResult struct {
	Status  string            `json:"status"`
	Receipt ledgerfmt.Receipt `json:"receipt"`
}

func encodeReply(res []ledger.Result, err error) []byte {
	var r reply
	if err != nil {
		r.Error = err.Error()
	} else {
		r.Results = make([]replyResult, len(res))
		for i, x := range res {
			r.Results[i] = replyResult{Status: x.Status.String(), Receipt: x.Receipt}
		}
	}
	b, _ := json.Marshal(r) // plain structs: cannot fail
	return b
}

func decodeReply(data []byte, n int) ([]ledger.Result, error) {
	var r reply
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("cluster: the integrator's answer: %w", err)
	}
	if r.Error != "" {
		return nil, fmt.Errorf("%w: %s", ErrIntegrator, r.Error)
	}
	if len(r.Results) != n {
		return nil, fmt.Errorf("cluster: the integrator answered %d results for %d entries", len(r.Results), n)
	}
	out := make([]ledger.Result, n)
	for i, x := range r.Results {
		var s ledger.Status
		switch x.Status {
		case "accepted":
			s = ledger.Accepted
		case "duplicate":
			s = ledger.Duplicate
		case "conflict":
			s = ledger.Conflict
		default:
			return nil, fmt.Errorf("cluster: the integrator answered status %q", x.Status)
		}
		out[i] = ledger.Result{Status: s, Receipt: x.Receipt}
	}
	return out, nil
}
