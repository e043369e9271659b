package identity

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
	"time"
)

// LLID derives the LogLineOS identifier of a person from the issuer and
// subject of their id_token. The format, part of the API:
//
//	llid = "u_" lower(base32(sha256("llid/v1" 0x00 iss 0x00 sub)[:20]))  (no padding, 34 chars)
//
// (iss, sub) is the only pair OpenID Connect promises to be stable and
// unique; an email address can change or be reassigned, so it never keys
// an identity. The hash keeps the provider's subject out of tokens and logs.
func LLID(iss, sub string) string {
	h := sha256.New()
	h.Write([]byte("llid/v1\x00"))
	h.Write([]byte(iss))
	h.Write([]byte{0})
	h.Write([]byte(sub))
	sum := h.Sum(nil)
	return "u_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20]))
}

// validLLID reports whether s has the shape LLID produces. It guards file
// names built from an LLID.
func validLLID(s string) bool {
	if len(s) != 34 || !strings.HasPrefix(s, "u_") {
		return false
	}
	for _, c := range s[2:] {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// User is the record kept of a person who logged in.
type User struct {
	LLID          string    `json:"llid"`
	Issuer        string    `json:"iss"`
	Subject       string    `json:"sub"`
	Email         string    `json:"email,omitempty"`
	EmailVerified bool      `json:"email_verified"`
	HostedDomain  string    `json:"hd,omitempty"`
	Name          string    `json:"name,omitempty"`
	FirstLogin    time.Time `json:"first_login"`
	LastLogin     time.Time `json:"last_login"`
}
