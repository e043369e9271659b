package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/loglineos/loglineos/internal/gateway"
	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/span"
)

// The admin API, for operators and tenant administrators:
//
//	POST   /admin/tenants/{tenant}/service-accounts        {"role":"app","name":"till"} -> the account and its secret, once
//	GET    /admin/tenants/{tenant}/service-accounts        -> the accounts (never secrets)
//	DELETE /admin/tenants/{tenant}/service-accounts/{id}   revoke
//	POST   /admin/keys/rotate[?reason=compromised]         -> the new signing key id
//	GET    /admin/keys                                     -> the token signing keys and their states
//
// Each needs a capability: accounts.admin on the tenant, keys.rotate (an
// operator). Every change is a ledger record (kind "audit") with its receipt.

// KindAudit is the ledger record kind of security events: key rotations,
// service account changes, the creation of the redaction key. Its body is
// {"fields":{...},"op":"keys.rotate","ts":"..."}.
const KindAudit = "audit"

// auditRecorder makes identity's security events ledger records.
type auditRecorder struct {
	l interface {
		Append(ctx context.Context, entries []ledger.Entry) ([]ledger.Result, error)
	}
	now func() time.Time
}

func (a auditRecorder) Record(ctx context.Context, op string, fields map[string]any) error {
	raw, err := json.Marshal(map[string]any{"op": op, "fields": fields, "ts": a.now().UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return err
	}
	body, err := span.Canonicalize(raw)
	if err != nil {
		return err
	}
	_, err = a.l.Append(ctx, []ledger.Entry{{Kind: KindAudit, Body: body}})
	return err
}

func (s *Server) mountAdmin(mux *http.ServeMux, wrap gateway.Wrap) {
	if s.identity == nil {
		return
	}
	route := func(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
		mux.Handle(pattern, wrap(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-store") // secrets, keys, accounts
			if err := h(w, r); err != nil {
				s.gateway.WriteProblem(w, r, err)
			}
		}), true))
	}
	route("POST /admin/tenants/{tenant}/service-accounts", s.createAccount)
	route("GET /admin/tenants/{tenant}/service-accounts", s.listAccounts)
	route("DELETE /admin/tenants/{tenant}/service-accounts/{id}", s.revokeAccount)
	route("POST /admin/keys/rotate", s.rotateKeys)
	route("GET /admin/keys", s.listKeys)
}

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request) error {
	tenant := r.PathValue("tenant")
	p := gateway.PrincipalOf(r)
	if err := s.identity.Authorize(p, tenant, identity.CapAccountsAdmin); err != nil {
		return err
	}
	var req struct {
		Role string `json:"role"`
		Name string `json:"name"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return reply.NewProblem("invalid-json", "%v", err)
	}
	if req.Role == "" {
		return reply.NewProblem("bad-request", "role is required")
	}
	acct, secret, err := s.identity.CreateServiceAccount(r.Context(), identity.NewServiceAccount{Tenant: tenant, Role: req.Role, Name: req.Name, CreatedBy: p.Subject})
	if err != nil {
		return err
	}
	return reply.JSON(w, http.StatusCreated, map[string]any{"account": acct, "client_id": acct.ID, "client_secret": secret,
		"note": "the secret is shown this once; exchange it at POST /auth/token (grant_type=client_credentials)"})
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request) error {
	tenant := r.PathValue("tenant")
	if err := s.identity.Authorize(gateway.PrincipalOf(r), tenant, identity.CapAccountsAdmin); err != nil {
		return err
	}
	accts := s.identity.ServiceAccounts(tenant)
	if accts == nil {
		accts = []identity.ServiceAccount{}
	}
	return reply.JSON(w, http.StatusOK, map[string]any{"tenant": tenant, "service_accounts": accts})
}

func (s *Server) revokeAccount(w http.ResponseWriter, r *http.Request) error {
	tenant, id := r.PathValue("tenant"), r.PathValue("id")
	p := gateway.PrincipalOf(r)
	if err := s.identity.Authorize(p, tenant, identity.CapAccountsAdmin); err != nil {
		return err
	}
	found := false
	for _, a := range s.identity.ServiceAccounts(tenant) {
		found = found || a.ID == id
	}
	if !found {
		return reply.NewProblem("not-found", "no service account %q in tenant %q", id, tenant)
	}
	if err := s.identity.RevokeServiceAccount(r.Context(), id, p.Subject); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request) error {
	p := gateway.PrincipalOf(r)
	if err := s.identity.Authorize(p, p.Tenant, identity.CapKeysRotate); err != nil {
		return err
	}
	rotate := s.identity.Rotate
	switch reason := r.URL.Query().Get("reason"); reason {
	case "", "manual":
	case "compromised":
		// A leak: no overlap; every token issued before is refused.
		rotate = s.identity.RotateCompromised
	default:
		return reply.NewProblem("bad-request", "reason=%q: want manual (the old key keeps verifying for the overlap) or compromised (the keys that may have leaked stop verifying now)", reason)
	}
	kid, err := rotate(r.Context())
	if err != nil {
		return err
	}
	return reply.JSON(w, http.StatusOK, map[string]any{"kid": kid, "keys": s.identity.Keys()})
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) error {
	p := gateway.PrincipalOf(r)
	if err := s.identity.Authorize(p, p.Tenant, identity.CapKeysRotate); err != nil {
		return err
	}
	return reply.JSON(w, http.StatusOK, map[string]any{"keys": s.identity.Keys()})
}

// OperatorTenant is the tenant whose administrators run the server.
const OperatorTenant = "system"

// operatorFile is the bootstrap operator's credentials in <data>/identity,
// written once for the human; the server never reads it.
const operatorFile = "operator.json"

// operatorRole is the bootstrap operator's role.
const operatorRole = "admin"

// operatorCredentials is the content of operatorFile:
//
//	{
//	  "client_id": "<account id>",
//	  "client_secret": "llsa_…",
//	  "note": "exchange at POST /auth/token …",
//	  "role": "admin",
//	  "tenant": "system"
//	}
func operatorCredentials(id, secret string) []byte {
	b, _ := json.MarshalIndent(map[string]string{"client_id": id, "client_secret": secret, "tenant": OperatorTenant, "role": operatorRole,
		"note": "exchange at POST /auth/token (grant_type=client_credentials); create real accounts, then revoke this one and delete this file"}, "", "  ")
	return append(b, '\n')
}

// bootstrapOperator creates, at the first start without --dev, an
// administrator service account of the operator tenant, and writes its
// credentials to <data>/identity/operator.json (mode 0600) — never to the
// log — so that someone can create the real accounts. Later starts do
// nothing while any operator account exists.
func (s *Server) bootstrapOperator(ctx context.Context) error {
	if len(s.identity.ServiceAccounts(OperatorTenant)) > 0 {
		return nil
	}
	acct, secret, err := s.identity.CreateServiceAccount(ctx, identity.NewServiceAccount{
		Tenant: OperatorTenant, Role: operatorRole, Name: "bootstrap operator", CreatedBy: "logline serve (first start)"})
	if err != nil {
		return fmt.Errorf("bootstrap operator account: %w", err)
	}
	path := filepath.Join(s.cfg.Data, "identity", operatorFile)
	if err := os.WriteFile(path, operatorCredentials(acct.ID, secret), 0o600); err != nil {
		return err
	}
	s.log.Warn("first start: an operator service account was created; its credentials are in a file readable only by this user", "file", path, "client_id", acct.ID)
	return nil
}
