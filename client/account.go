package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrBadAccountFile is returned (wrapped, naming the file and what is
// wrong) by ReadAccountFile and WithAccountFile for a credentials file that
// cannot be used. A file that does not exist is fs.ErrNotExist as well.
var ErrBadAccountFile = errors.New("loglineos: bad account file")

// maxAccountFile bounds the bytes read from a credentials file; one holds a
// few hundred.
const maxAccountFile = 64 << 10

// Account is a service account's credentials, as a JSON file holds them:
// what `logline accounts create` prints, and the operator.json a server
// writes at its first start.
//
//	{
//	  "client_id": "sa_01JD…",
//	  "client_secret": "llsa_…",
//	  "tenant": "t_bakery",
//	  "role": "app"
//	}
//
// ClientID and ClientSecret are required; Tenant and Role say what the
// account may do and are not sent. Other members (operator.json's note) are
// ignored. String leaves the secret out, so an Account can be logged.
type Account struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Tenant       string `json:"tenant,omitempty"`
	Role         string `json:"role,omitempty"`
}

// String names the account without its secret:
// "service account sa_01JD… (tenant t_bakery, role app)".
func (a Account) String() string {
	s := "service account " + a.ClientID
	switch {
	case a.Tenant != "" && a.Role != "":
		s += " (tenant " + a.Tenant + ", role " + a.Role + ")"
	case a.Tenant != "":
		s += " (tenant " + a.Tenant + ")"
	case a.Role != "":
		s += " (role " + a.Role + ")"
	}
	return s
}

// ReadAccountFile reads a service account's credentials file (see
// Account). A file that is missing, unreadable, not a JSON object, or
// without client_id or client_secret is ErrBadAccountFile, with the file's
// name and what is wrong.
func ReadAccountFile(path string) (*Account, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrBadAccountFile, path, fmt.Sprintf(format, args...))
	}
	b, err := readSmall(path, maxAccountFile)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the message names the file already
		}
		return nil, fmt.Errorf("%w %s: %w", ErrBadAccountFile, path, err)
	}
	if len(b) > maxAccountFile {
		return nil, bad("larger than %d bytes: not a credentials file", maxAccountFile)
	}
	if b = bytes.TrimSpace(b); len(b) == 0 {
		return nil, bad("empty")
	}
	if b[0] != '{' {
		return nil, bad(`not a JSON object (want {"client_id":…,"client_secret":…}, as logline accounts create prints it)`)
	}
	var a Account
	if err := json.Unmarshal(b, &a); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, bad("%s is not a string", te.Field)
		}
		return nil, bad("not valid JSON: %v", err)
	}
	switch {
	case a.ClientID == "" && a.ClientSecret == "":
		return nil, bad(`no client_id and no client_secret (want {"client_id":…,"client_secret":…}, as logline accounts create prints it)`)
	case a.ClientID == "":
		return nil, bad("no client_id")
	case a.ClientSecret == "":
		return nil, bad("no client_secret")
	}
	return &a, nil
}

// readSmall reads at most limit+1 bytes of the file at path.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit+1))
}
