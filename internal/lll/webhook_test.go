package lll_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/lll/eval"
)

// TestWebhookInput checks the map a webhook router sees: every field, the
// payload decoded (null when there is none), and a payload that is not
// one JSON value refused.
func TestWebhookInput(t *testing.T) {
	at := time.Date(2025, 10, 5, 22, 18, 7, 0, time.UTC)
	tests := []struct {
		payload string
		want    string // the event as the language prints it; "" for an error
	}{
		{`{"type":"charge.succeeded","amount":12.5}`, `{id: "msg_1", payload: {amount: 12.5, type: "charge.succeeded"}, received_at: "2025-10-05T22:18:07Z", source: "stripe", tenant: "acme"}`},
		{``, `{id: "msg_1", payload: null, received_at: "2025-10-05T22:18:07Z", source: "stripe", tenant: "acme"}`},
		{`[1, "a"]`, `{id: "msg_1", payload: [1, "a"], received_at: "2025-10-05T22:18:07Z", source: "stripe", tenant: "acme"}`},
		{`{"type":`, ""},
		{`{} {}`, ""},
		{`{"n":1e400}`, ""},
	}
	for _, tt := range tests {
		in, err := eval.Webhook{Source: "stripe", ID: "msg_1", ReceivedAt: at, Tenant: "acme", Payload: []byte(tt.payload)}.Input()
		if tt.want == "" {
			if err == nil {
				t.Errorf("payload %q: no error, event %v", tt.payload, in.Event)
			}
			continue
		}
		if err != nil {
			t.Errorf("payload %q: %v", tt.payload, err)
			continue
		}
		if diff := cmp.Diff(tt.want, in.Event.String()); diff != "" {
			t.Errorf("payload %q (-want +got):\n%s", tt.payload, diff)
		}
	}
}
