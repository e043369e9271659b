package runtime

import (
	"context"
	"fmt"
	"testing"

	"github.com/loglineos/loglineos/internal/lll/eval"
)

// TestConfigRoute: a Config's Route runs the routers' evaluations (a
// server's backend), with the runtime's host, and its actions are the
// ones queued.
func TestConfigRoute(t *testing.T) {
	var routed []string
	src := fmt.Sprintf(hookRouter, "https://h.example")
	rt := open(t, t.TempDir(), src, tenants{"acme": endpointTenant("https://h.example", "http.request")}, nil, func(c *Config) {
		c.Route = func(ctx context.Context, r *eval.Router, in eval.Input, env *eval.Env) ([]eval.Action, error) {
			if env == nil || env.Host == nil {
				t.Error("Route without the runtime's host")
			}
			routed = append(routed, r.IR.Name+" "+in.Span.ID)
			return r.Route(ctx, in, env)
		}
	})
	defer rt.Close()
	if err := rt.Record(spanRecord(1, sale("s_1")), nil); err != nil {
		t.Fatal(err)
	}
	if len(routed) != 1 || routed[0] != "tills s_1" {
		t.Fatalf("routed %q, want the router tills over s_1", routed)
	}
}
