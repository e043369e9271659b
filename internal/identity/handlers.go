package identity

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/loglineos/loglineos/internal/gateway/reply"
)

// Paths of the handlers, as Register mounts them.
const (
	PathLogin    = "/auth/login"
	PathCallback = callbackPath
	PathToken    = "/auth/token"
	PathJWKS     = "/.well-known/jwks.json"
)

// maxTokenRequest bounds the body of POST /auth/token.
const maxTokenRequest = 8 << 10

// Register mounts the public identity endpoints on mux:
//
//	GET  /auth/login              LoginHandler
//	GET  /auth/callback           CallbackHandler
//	POST /auth/token              TokenHandler
//	GET  /.well-known/jwks.json   JWKSHandler
//
// None of them requires authentication. Admin operations (service
// accounts, key rotation) are functions for the gateway's admin routes.
func (s *Service) Register(mux *http.ServeMux) {
	mux.Handle("GET "+PathLogin, s.LoginHandler())
	mux.Handle("GET "+PathCallback, s.CallbackHandler())
	mux.Handle("POST "+PathToken, s.TokenHandler())
	mux.Handle("GET "+PathJWKS, s.JWKSHandler())
}

// tokenRequest is the body of POST /auth/token, as a form or JSON.
type tokenRequest struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Code         string `json:"code"`
	CodeVerifier string `json:"code_verifier"`
	RedirectURI  string `json:"redirect_uri"`
}

// TokenHandler serves POST /auth/token, an OAuth 2 token endpoint with two
// grants, as application/x-www-form-urlencoded or application/json:
//
//	grant_type=client_credentials  client_id, client_secret (or HTTP Basic)
//	grant_type=authorization_code  code, code_verifier, redirect_uri (a CLI after login)
//
// It answers a Token as JSON, Cache-Control: no-store.
func (s *Service) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, err := s.token(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		_ = reply.JSON(w, http.StatusOK, t)
	})
}

func (s *Service) token(w http.ResponseWriter, r *http.Request) (Token, error) {
	var req tokenRequest
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequest)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return Token{}, badRequest(ReasonBadRequest, "body is not a token request")
		}
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return Token{}, badRequest(ReasonBadRequest, "body is not a form")
		}
		f := r.PostForm
		for k, v := range f {
			if len(v) != 1 {
				return Token{}, badRequest(ReasonBadRequest, "parameter %q repeated", k)
			}
		}
		req = tokenRequest{GrantType: f.Get("grant_type"), ClientID: f.Get("client_id"), ClientSecret: f.Get("client_secret"),
			Code: f.Get("code"), CodeVerifier: f.Get("code_verifier"), RedirectURI: f.Get("redirect_uri")}
	default:
		return Token{}, badRequest(ReasonBadRequest, "Content-Type must be application/x-www-form-urlencoded or application/json")
	}
	switch req.GrantType {
	case "client_credentials":
		if id, secret, ok := r.BasicAuth(); ok {
			if req.ClientID != "" || req.ClientSecret != "" {
				return Token{}, badRequest(ReasonBadRequest, "credentials in both the header and the body")
			}
			// RFC 6749 §2.3.1: both are form-urlencoded inside Basic.
			var err1, err2 error
			req.ClientID, err1 = url.QueryUnescape(id)
			req.ClientSecret, err2 = url.QueryUnescape(secret)
			if err1 != nil || err2 != nil {
				return Token{}, unauth(ReasonBadClient, "bad Basic credentials")
			}
		}
		if req.ClientID == "" || req.ClientSecret == "" {
			return Token{}, unauth(ReasonBadClient, "client_id and client_secret are required")
		}
		return s.ExchangeClientCredentials(req.ClientID, req.ClientSecret)
	case "authorization_code":
		if req.Code == "" || req.CodeVerifier == "" || req.RedirectURI == "" {
			return Token{}, badRequest(ReasonBadRequest, "code, code_verifier and redirect_uri are required")
		}
		return s.ExchangeLoginCode(req.Code, req.CodeVerifier, req.RedirectURI)
	case "":
		return Token{}, badRequest(ReasonBadRequest, "grant_type is required")
	default:
		return Token{}, badRequest(ReasonUnsupported, "grant_type must be client_credentials or authorization_code")
	}
}

// jwk is a public key in a JWK Set (RFC 7517, RFC 8037).
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS returns the JWK Set of the keys that verify LLSTs now, plus the next
// key, which verifiers learn before it signs.
func (s *Service) JWKS() ([]byte, error) {
	now := s.now()
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, k := range s.ring.snapshot().keys {
		if k.published(now) {
			set.Keys = append(set.Keys, jwk{Kty: "OKP", Crv: "Ed25519", X: b64.EncodeToString(k.pub), Kid: k.kid, Alg: llstAlg, Use: "sig"})
		}
	}
	return json.Marshal(set)
}

// JWKSHandler serves GET /.well-known/jwks.json. The max-age is shorter
// than the overlap, so a verifier that caches the set sees a new key
// before the old one stops verifying, and the next key is published ahead.
func (s *Service) JWKSHandler() http.Handler {
	maxAge := "public, max-age=" + strconv.Itoa(int(s.cfg.JWKSMaxAge/time.Second))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := s.JWKS()
		if err != nil {
			s.writeError(w, r, internal(err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", maxAge)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data)
	})
}

// writeError renders err with Config.WriteError, or WriteProblem when
// none is configured.
func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if s.cfg.WriteError != nil {
		s.cfg.WriteError(w, r, err)
		return
	}
	WriteProblem(w, r, err)
}

// WriteProblem writes err as application/problem+json, as ProblemOf
// says, through the API's one problem writer (reply.WriteProblem); a 401
// carries WWW-Authenticate: Bearer. The gateway renders refusals the same
// way (Config.WriteError).
func WriteProblem(w http.ResponseWriter, r *http.Request, err error) {
	p := ProblemOf(err)
	if p.Status == http.StatusUnauthorized {
		if Reason(p.Rule) == ReasonMissing {
			w.Header().Set("WWW-Authenticate", `Bearer realm="loglineos"`)
		} else {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="loglineos", error="invalid_token", error_description=%q`, p.Rule))
		}
	}
	reply.WriteProblem(w, r, p)
}
