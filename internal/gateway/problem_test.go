package gateway

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/identity"
)

// TestIdentityProblems: a refusal of identity reads the same whether the
// gateway renders it or identity's handlers do on their own: one problem
// type per kind (/problems/NAME), the message as the detail, the reason as
// the rule, and an internal error without details.
func TestIdentityProblems(t *testing.T) {
	g, _ := newTestGateway(t, nil)
	for _, tc := range []struct {
		err    *identity.Error
		status int
		want   map[string]any
	}{
		{&identity.Error{Kind: identity.KindUnauthenticated, Reason: identity.ReasonExpired, Detail: "token expired"}, 401, map[string]any{
			"type": "/problems/unauthenticated", "title": "authentication required", "detail": "identity: expired: token expired", "rule": "expired"}},
		{&identity.Error{Kind: identity.KindForbidden, Reason: identity.ReasonCrossTenant, Detail: "not yours"}, 403, map[string]any{
			"type": "/problems/forbidden", "title": "not allowed", "detail": "identity: cross_tenant: not yours", "rule": "cross_tenant"}},
		{&identity.Error{Kind: identity.KindBadRequest, Reason: identity.ReasonBadRequest, Detail: "grant_type is required"}, 400, map[string]any{
			"type": "/problems/bad-request", "title": "bad request", "detail": "identity: bad_request: grant_type is required", "rule": "bad_request"}},
		{&identity.Error{Kind: identity.KindQuota, Reason: identity.ReasonQuota, RetryAfter: 1500 * time.Millisecond}, 429, map[string]any{
			"type": "/problems/quota-exceeded", "title": "quota exceeded", "detail": "identity: quota", "rule": "quota"}},
		{&identity.Error{Kind: identity.KindUnavailable, Reason: identity.ReasonProviderDown, Detail: "discovery failed"}, 503, map[string]any{
			"type": "/problems/unavailable", "title": "service unavailable", "detail": "identity: provider_unavailable: discovery failed", "rule": "provider_unavailable"}},
		{&identity.Error{Kind: identity.KindNotFound, Reason: identity.ReasonNotFound, Detail: "no account sa_1"}, 404, map[string]any{
			"type": "/problems/not-found", "title": "not found", "detail": "identity: not_found: no account sa_1", "rule": "not_found"}},
		{&identity.Error{Kind: identity.KindInternal, Reason: identity.ReasonInternal, Detail: "disk full"}, 500, map[string]any{
			"type": "/problems/internal", "title": "internal error"}},
	} {
		t.Run(tc.err.Kind.String(), func(t *testing.T) {
			tc.want["status"] = float64(tc.status)
			tc.want["instance"] = "/auth/token"
			render := func(write func(w *httptest.ResponseRecorder)) (int, string, map[string]any) {
				w := httptest.NewRecorder()
				write(w)
				var got map[string]any
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
					t.Fatalf("body %q: %v", w.Body, err)
				}
				return w.Code, w.Header().Get("Content-Type"), got
			}
			r := httptest.NewRequest("POST", "/auth/token", nil)
			gs, gct, gw := render(func(w *httptest.ResponseRecorder) { g.WriteProblem(w, r, tc.err) })
			is, ict, id := render(func(w *httptest.ResponseRecorder) { identity.WriteProblem(w, r, tc.err) })
			if gs != tc.status || is != tc.status || gct != "application/problem+json" || ict != gct {
				t.Errorf("gateway %d %s, identity %d %s; want %d application/problem+json", gs, gct, is, ict, tc.status)
			}
			if d := cmp.Diff(tc.want, gw); d != "" {
				t.Errorf("the gateway's problem (-want +got):\n%s", d)
			}
			if d := cmp.Diff(gw, id); d != "" {
				t.Errorf("identity's problem differs from the gateway's (-gateway +identity):\n%s", d)
			}
		})
	}
}
