package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/loglineos/loglineos/client/webhook"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
)

// InputWebhook is the input type of routers over webhooks received.
const InputWebhook = "webhook"

// Errors of Receive.
var (
	ErrUnknownSource = errors.New("runtime: unknown webhook source")
	ErrBadSignature  = errors.New("runtime: webhook signature does not verify")
	ErrStale         = errors.New("runtime: webhook timestamp outside the tolerance")
	ErrReplay        = errors.New("runtime: webhook already received")
	ErrBadPayload    = errors.New("runtime: webhook body is not a JSON value")
)

// Appended is a span a router appended for a webhook received.
type Appended struct {
	ID        string             `json:"id"`
	Status    string             `json:"status"` // accepted, duplicate, rejected
	Receipt   *ledgerfmt.Receipt `json:"receipt,omitempty"`
	Error     string             `json:"error,omitempty"`
	Router    string             `json:"router"`
	Duplicate bool               `json:"-"`
}

// seenIDs remembers the webhook-ids received in the last two tolerances;
// older ones are refused as stale anyway. After a restart, a replay is
// still caught by the ids of the spans it would append (the ledger answers
// duplicate).
type seenIDs struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

func (s *seenIDs) add(key string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[string]time.Time{}
	}
	if len(s.ids) > 4096 {
		for k, t := range s.ids {
			if now.Sub(t) > 2*webhook.DefaultTolerance {
				delete(s.ids, k)
			}
		}
	}
	if _, ok := s.ids[key]; ok {
		return false
	}
	s.ids[key] = now
	return true
}

// Receive checks a webhook sent to tenant by source and hands it to the
// routers whose input is "webhook"; their ledger.append actions are
// performed before Receive returns, and it returns the spans appended.
func (rt *Runtime) Receive(ctx context.Context, tenant, source string, h http.Header, body []byte) ([]Appended, error) {
	conf := rt.cfg.Tenants.Runtime(tenant)
	if conf == nil {
		rt.m.webhooksIn.WithLabelValues(rt.m.tenant(tenant), "unknown_source").Inc()
		return nil, fmt.Errorf("%w %q for tenant %q (the tenant has no runtime section)", ErrUnknownSource, source, tenant)
	}
	src, ok := conf.Sources[source]
	if !ok || src.Verifier == nil {
		rt.m.webhooksIn.WithLabelValues(rt.m.tenant(tenant), "unknown_source").Inc()
		return nil, fmt.Errorf("%w %q for tenant %q (runtime.sources in its file)", ErrUnknownSource, source, tenant)
	}
	now := rt.cfg.Now()
	id, err := src.Verifier.Verify(h, body, now)
	switch {
	case errors.Is(err, webhook.ErrBadTimestamp):
		rt.m.webhooksIn.WithLabelValues(rt.m.tenant(tenant), "stale").Inc()
		return nil, fmt.Errorf("%w: %v", ErrStale, err)
	case err != nil:
		rt.m.webhooksIn.WithLabelValues(rt.m.tenant(tenant), "bad_signature").Inc()
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	payload, err := decodeValue(body)
	if err != nil {
		rt.m.webhooksIn.WithLabelValues(rt.m.tenant(tenant), "rejected").Inc()
		return nil, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	if !rt.seen.add(tenant+"\x00"+source+"\x00"+id, now) {
		rt.m.webhooksIn.WithLabelValues(rt.m.tenant(tenant), "replay").Inc()
		return nil, fmt.Errorf("%w: webhook-id %q from %s", ErrReplay, id, source)
	}
	ev := ir.MapValue(map[string]ir.Value{
		"source": ir.StringValue(source), "id": ir.StringValue(id), "tenant": ir.StringValue(tenant),
		"received_at": ir.TimestampValue(now.UTC().Truncate(time.Microsecond)), "payload": payload,
	})
	var raw []byte
	if rt.trace != nil {
		raw, _ = json.Marshal(ev.Interface())
	}
	acts, tenants := rt.route(rt.byInput[InputWebhook], eval.Input{Event: ev}, InputWebhook, raw, 0, tenant, nil, nil, nil)
	var out []Appended
	dups := 0
	for i := range acts {
		a := &acts[i]
		mid := idOf(tenant + "\x00" + source + "\x00" + id + "\x00" + fmt.Sprint(i))
		if a.Call != "ledger.append" {
			outcome := rt.doKeyed(mid, 0, a, tenants[i], 0, now)
			rt.m.actions.WithLabelValues(rt.m.tenant(tenant), a.Router, a.Call, outcome).Inc()
			continue
		}
		ap := rt.appendNow(ctx, a, tenant, "rt1_"+strings.TrimPrefix(mid, "msg_"))
		if ap.Duplicate {
			dups++
		}
		out = append(out, ap)
	}
	if len(out) > 0 && dups == len(out) {
		rt.m.webhooksIn.WithLabelValues(rt.m.tenant(tenant), "replay").Inc()
		return out, fmt.Errorf("%w: webhook-id %q from %s", ErrReplay, id, source)
	}
	rt.m.webhooksIn.WithLabelValues(rt.m.tenant(tenant), "accepted").Inc()
	return out, nil
}

// appendNow performs a ledger.append action at once.
func (rt *Runtime) appendNow(ctx context.Context, a *eval.Action, tenant, id string) Appended {
	ap := Appended{ID: id, Router: a.Router}
	outcome := OutcomeQueued
	defer func() { rt.m.actions.WithLabelValues(rt.m.tenant(tenant), a.Router, a.Call, outcome).Inc() }()
	if !rt.allowed(tenant, a.Call) {
		outcome, ap.Status, ap.Error = OutcomeDenied, "rejected", "capability ledger.append not allowed"
		return ap
	}
	body, err := spanBody(a, tenant, id)
	if err != nil {
		outcome, ap.Status, ap.Error = OutcomeBadAction, "rejected", err.Error()
		return ap
	}
	rc, dup, err := rt.cfg.Appender.AppendSpan(ctx, tenant, body)
	switch {
	case err != nil:
		outcome, ap.Status, ap.Error = OutcomeError, "rejected", err.Error()
	case dup:
		ap.Status, ap.Receipt, ap.Duplicate = "duplicate", &rc, true
	default:
		ap.Status, ap.Receipt = "accepted", &rc
	}
	return ap
}
