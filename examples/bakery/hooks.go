package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/loglineos/loglineos/client/webhook"
)

// maxHookBody bounds a webhook's body; a diamond_candidate is ~200 bytes.
const maxHookBody = 64 << 10

// candidate is a diamond_candidate event as the server delivers it, its
// canonical JSON:
//
//	{"score":78,"seq":41,"tenant":"bakery","threshold":76,"trajectory_id":"t_...","ts":"...","type":"diamond_candidate"}
type candidate struct {
	Score        int       `json:"score"`
	Seq          uint64    `json:"seq"`
	Tenant       string    `json:"tenant"`
	Threshold    int       `json:"threshold"`
	TrajectoryID string    `json:"trajectory_id"`
	TS           time.Time `json:"ts"`
	Type         string    `json:"type"`
}

// hooks is the endpoint of the server's diamond_candidate webhooks
// (POST /candidates): it verifies each delivery's Standard Webhooks
// signature, refuses with 401 what does not verify, and reports each
// candidate once, however often it is delivered.
type hooks struct {
	verifier webhook.Verifier
	now      func() time.Time
	out      *report

	mu   sync.Mutex
	seen map[string]bool // webhook-ids reported; a redelivery is acknowledged, not reported again
}

func newHooks(secret webhook.Secret, out *report) *hooks {
	return &hooks{verifier: webhook.Verifier{Secrets: []webhook.Secret{secret}}, now: time.Now, out: out, seen: map[string]bool{}}
}

func (h *hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHookBody))
	if err != nil {
		problem(w, http.StatusRequestEntityTooLarge, "body too large", err)
		return
	}
	id, err := h.verifier.Verify(r.Header, body, h.now())
	if err != nil {
		h.out.print(line{Event: "refused", WebhookID: id, Reason: err.Error()})
		problem(w, http.StatusUnauthorized, "webhook signature does not verify", err)
		return
	}
	var c candidate
	if err := json.Unmarshal(body, &c); err != nil {
		problem(w, http.StatusBadRequest, "body is not a JSON event", err)
		return
	}
	if c.Type != "diamond_candidate" {
		problem(w, http.StatusUnprocessableEntity, "not a diamond_candidate", errors.New("type "+c.Type))
		return
	}
	h.mu.Lock()
	again := h.seen[id]
	h.seen[id] = true
	h.mu.Unlock()
	if !again {
		h.out.print(line{Event: "candidate", WebhookID: id, Candidate: &c})
	}
	w.WriteHeader(http.StatusNoContent)
}

// problem answers an RFC 9457 problem.
func problem(w http.ResponseWriter, status int, title string, err error) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"title": title, "status": status, "detail": err.Error()})
}
