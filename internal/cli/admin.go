package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loglineos/loglineos/internal/server"
)

// The operator commands talk to a running server: its admin API holds the
// keys and accounts (and locks their directories while it runs).

// apiFlags are the flags of commands that call a server.
type apiFlags struct {
	url, token, credentials string
}

func (a *apiFlags) add(cmd *cobra.Command, stdio Stdio) {
	def := stdio.getenv("LOGLINE_URL")
	if def == "" {
		def = "http://" + server.DefaultConfig().Listen
	}
	cmd.Flags().StringVar(&a.url, "url", def, "server base URL (env LOGLINE_URL)")
	cmd.Flags().StringVar(&a.token, "token", "", "bearer token (env LOGLINE_TOKEN)")
	cmd.Flags().StringVar(&a.credentials, "credentials", "", "a service account's credentials file (client_id, client_secret), exchanged for a token")
}

// bearer returns the token to send: --token, LOGLINE_TOKEN, or one exchanged
// for --credentials.
func (a *apiFlags) bearer(stdio Stdio) (string, error) {
	if a.token != "" {
		return a.token, nil
	}
	if a.credentials != "" {
		tok, err := exchange(a.url, a.credentials)
		if err != nil {
			return "", err
		}
		return tok["access_token"].(string), nil
	}
	return stdio.getenv("LOGLINE_TOKEN"), nil
}

// exchange trades a credentials file for a token at POST /auth/token.
func exchange(base, credentials string) (map[string]any, error) {
	b, err := os.ReadFile(credentials)
	if err != nil {
		return nil, usageErr("--credentials: %v", err)
	}
	var c struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.ClientID == "" || c.ClientSecret == "" {
		return nil, usageErr("--credentials: want a JSON file with client_id and client_secret")
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID}, "client_secret": {c.ClientSecret}}
	var out map[string]any
	if err := call("POST", strings.TrimRight(base, "/")+"/v1/auth/token", "", "application/x-www-form-urlencoded", []byte(form.Encode()), &out); err != nil {
		return nil, err
	}
	if _, ok := out["access_token"].(string); !ok {
		return nil, badErr("the server answered no access_token")
	}
	return out, nil
}

// call sends a request and decodes a JSON answer into out; a problem answer
// becomes an error with its type and detail.
func call(method, u, token, ctype string, body []byte, out any) error {
	status, b, err := send(method, u, token, ctype, body)
	if err != nil {
		return err
	}
	if status >= 400 {
		return problemErr(method, u, status, b)
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

// newRequest makes a request to a server's API, with the bearer token when
// there is one.
func newRequest(ctx context.Context, method, u, token, ctype string, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, nil
}

// send sends a request and returns the answer's status and body (its first
// 16 MiB).
func send(method, u, token, ctype string, body []byte) (int, []byte, error) {
	req, err := newRequest(context.Background(), method, u, token, ctype, body)
	if err != nil {
		return 0, nil, err
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, b, nil
}

// problemErr is the error of an answer of status 400 or more: the
// problem's title, detail and type when the body is a problem.
func problemErr(method, u string, status int, b []byte) error {
	var p struct {
		Type, Title, Detail string
	}
	if json.Unmarshal(b, &p) == nil && p.Type != "" {
		return badErr("%s %s: HTTP %d %s: %s (%s)", method, u, status, p.Title, p.Detail, p.Type)
	}
	return badErr("%s %s: HTTP %d", method, u, status)
}

func newTokenCmd(stdio Stdio) *cobra.Command {
	var api apiFlags
	var asJSON bool
	issue := &cobra.Command{
		Use:   "issue --credentials FILE [--url URL]",
		Short: "Exchange a service account's credentials for a short-lived token (LLST)",
		Long: `issue trades a service account's client_id and client_secret (a JSON file, such
as the operator.json a server writes at its first start) for an LLST at
POST /auth/token, and prints the token, e.g. for
  export LOGLINE_TOKEN=$(logline token issue --credentials operator.json)`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if api.credentials == "" {
				return usageErr("--credentials is required")
			}
			tok, err := exchange(api.url, api.credentials)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(stdio.Out, tok)
			}
			fmt.Fprintln(stdio.Out, tok["access_token"])
			return nil
		},
	}
	api.add(issue, stdio)
	issue.Flags().BoolVar(&asJSON, "json", false, "print the whole token response")
	return group("token", "Tokens for scripts and apps", issue)
}

func newKeysCmd(stdio Stdio) *cobra.Command {
	var api apiFlags
	var compromised bool
	rotate := &cobra.Command{
		Use:   "rotate [--compromised] [--url URL] [--token TOKEN | --credentials FILE]",
		Short: "Rotate the key that signs tokens (the old one keeps verifying for the overlap)",
		Long: `rotate makes the next signing key the active one; the old one keeps verifying
tokens for the overlap (16 minutes), so nobody is logged out.

--compromised is for a leak: the active and the next key (both on the
server's disk) are replaced by new ones at once, and every key that may have
leaked stops verifying now. Every token issued before is refused: apps
exchange their credentials again, people log in again.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := api.bearer(stdio)
			if err != nil {
				return err
			}
			var out struct {
				KID  string           `json:"kid"`
				Keys []map[string]any `json:"keys"`
			}
			u := strings.TrimRight(api.url, "/") + "/v1/admin/keys/rotate"
			if compromised {
				u += "?reason=compromised"
			}
			if err := call("POST", u, tok, "", nil, &out); err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "rotated: tokens are now signed with key %s\n", out.KID)
			for _, k := range out.Keys {
				fmt.Fprintf(stdio.Out, "  %v %v\n", k["kid"], k["state"])
			}
			return nil
		},
	}
	api.add(rotate, stdio)
	rotate.Flags().BoolVar(&compromised, "compromised", false, "a leak: replace the active and the next key at once; every token issued before stops verifying")
	return group("keys", "Token signing keys", rotate)
}

func newAccountsCmd(stdio Stdio) *cobra.Command {
	var createAPI, listAPI, revokeAPI apiFlags
	var tenant, role, name string
	create := &cobra.Command{
		Use:   "create --tenant T --role ROLE [--name NAME]",
		Short: "Create a service account for an app; its secret is printed once",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if tenant == "" || role == "" {
				return usageErr("--tenant and --role are required")
			}
			tok, err := createAPI.bearer(stdio)
			if err != nil {
				return err
			}
			body, _ := json.Marshal(map[string]string{"role": role, "name": name})
			var out map[string]any
			u := strings.TrimRight(createAPI.url, "/") + "/v1/admin/tenants/" + url.PathEscape(tenant) + "/service-accounts"
			if err := call("POST", u, tok, "application/json", body, &out); err != nil {
				return err
			}
			return printJSON(stdio.Out, map[string]any{"client_id": out["client_id"], "client_secret": out["client_secret"], "tenant": tenant, "role": role})
		},
	}
	createAPI.add(create, stdio)
	create.Flags().StringVar(&tenant, "tenant", "", "tenant of the account")
	create.Flags().StringVar(&role, "role", "", "role: admin, writer, reader, auditor, app, monitor (operator tenant: reads /metrics), or one the tenant defines")
	create.Flags().StringVar(&name, "name", "", "a name to recognise it by")

	var listTenant string
	list := &cobra.Command{
		Use:   "list --tenant T",
		Short: "List a tenant's service accounts",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if listTenant == "" {
				return usageErr("--tenant is required")
			}
			tok, err := listAPI.bearer(stdio)
			if err != nil {
				return err
			}
			var out any
			u := strings.TrimRight(listAPI.url, "/") + "/v1/admin/tenants/" + url.PathEscape(listTenant) + "/service-accounts"
			if err := call("GET", u, tok, "", nil, &out); err != nil {
				return err
			}
			return printJSON(stdio.Out, out)
		},
	}
	listAPI.add(list, stdio)
	list.Flags().StringVar(&listTenant, "tenant", "", "tenant")

	var revokeTenant string
	revoke := &cobra.Command{
		Use:   "revoke --tenant T CLIENT_ID",
		Short: "Revoke a service account: its tokens stop working at once",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("want one client id")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if revokeTenant == "" {
				return usageErr("--tenant is required")
			}
			tok, err := revokeAPI.bearer(stdio)
			if err != nil {
				return err
			}
			u := strings.TrimRight(revokeAPI.url, "/") + "/v1/admin/tenants/" + url.PathEscape(revokeTenant) + "/service-accounts/" + url.PathEscape(args[0])
			if err := call("DELETE", u, tok, "", nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "revoked %s\n", args[0])
			return nil
		},
	}
	revokeAPI.add(revoke, stdio)
	revoke.Flags().StringVar(&revokeTenant, "tenant", "", "tenant of the account")
	return group("accounts", "Service accounts for apps", create, list, revoke)
}
