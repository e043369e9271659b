package identity_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
)

// ledgerReceipts stands for the ledger's implementation of the hook.
type ledgerReceipts struct{}

func (ledgerReceipts) Record(ctx context.Context, op string, fields map[string]any) error { return nil }

// authenticator is what the gateway needs: *identity.Service in
// production, identity.DevAuthenticator under --dev.
type authenticator interface {
	Authenticate(*http.Request) (*identity.Principal, error)
}

// Example wires the identity service into a gateway's ServeMux.
func Example() {
	ctx := context.Background()
	svc, err := identity.New(ctx, identity.Config{
		Issuer:   "https://logline.example.com",
		KeyDir:   "/var/lib/logline/jwks",     // <data>/jwks/
		StateDir: "/var/lib/logline/identity", // users and service accounts
		OIDC: identity.OIDCConfig{ // Google unless Issuer is set
			ClientID:     "1234.apps.googleusercontent.com",
			ClientSecret: "…",
			RedirectURL:  "https://logline.example.com/auth/callback",
			HostedDomain: "example.com", // optional
		},
		Tenants: map[string]identity.TenantConfig{
			"acme": {
				Members: []identity.Member{{Email: "ana@example.com", Roles: []string{identity.RoleAdmin}}},
				Quota:   identity.Quota{IngestPerSecond: 500, Burst: 1000},
			},
		},
		Receipts: ledgerReceipts{},
		OnReject: func(r identity.Reason) { /* metrics: logline_auth_rejected_total{reason=r}++ */ },
	})
	if err != nil {
		log.Fatal(err) // identity.ErrDirLocked if another process holds the dirs
	}
	defer svc.Close()
	go svc.Run(ctx, time.Minute, func(err error) { log.Print(err) }) // scheduled rotation, retirement

	var auth authenticator = svc // or identity.DevAuthenticator{TenantOf: ...} under --dev
	mux := http.NewServeMux()
	svc.Register(mux) // /auth/login, /auth/callback, /auth/token, /.well-known/jwks.json

	// A guarded route: authenticate, authorise, take quota.
	mux.HandleFunc("POST /ingest/{tenant}", func(w http.ResponseWriter, r *http.Request) {
		p, err := auth.Authenticate(r) // 401 with a reason
		if err == nil {
			err = identity.Authorize(p, r.PathValue("tenant"), identity.CapIngest) // 403
		}
		if err == nil {
			err = svc.Limiter().AllowPrincipal(p, 1) // 429 with Retry-After
		}
		if err != nil {
			identity.WriteProblem(w, r, err) // the gateway renders refusals the same way
			return
		}
		// ... ingest as p.Subject in p.Tenant
	})

	// Admin routes call the functions; the gateway checks the capability.
	mux.HandleFunc("POST /admin/keys/rotate", func(w http.ResponseWriter, r *http.Request) {
		p, err := auth.Authenticate(r)
		if err == nil {
			err = identity.Authorize(p, "system", identity.CapKeysRotate)
		}
		if err != nil {
			identity.WriteProblem(w, r, err)
			return
		}
		kid, err := svc.Rotate(r.Context())
		if err != nil {
			identity.WriteProblem(w, r, err)
			return
		}
		_, _ = w.Write([]byte(kid))
	})
	mux.HandleFunc("POST /admin/{tenant}/service-accounts", func(w http.ResponseWriter, r *http.Request) {
		p, err := auth.Authenticate(r)
		if err == nil {
			err = identity.Authorize(p, r.PathValue("tenant"), identity.CapAccountsAdmin)
		}
		if err != nil {
			identity.WriteProblem(w, r, err)
			return
		}
		sa, secret, err := svc.CreateServiceAccount(r.Context(), identity.NewServiceAccount{
			Tenant: r.PathValue("tenant"), Role: r.FormValue("role"), Name: r.FormValue("name"), CreatedBy: p.Subject,
		})
		if err != nil {
			identity.WriteProblem(w, r, err)
			return
		}
		_, _ = w.Write([]byte(sa.ID + " " + secret)) // shown once
	})

	// A gateway of its own renders refusals as ProblemOf says (status,
	// problem type, reason, Retry-After):
	_ = func(w http.ResponseWriter, r *http.Request, err error) {
		reply.WriteProblem(w, r, identity.ProblemOf(err))
	}
}
