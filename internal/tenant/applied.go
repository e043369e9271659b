package tenant

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// AppliedFile is the watcher's state in its directory: which file content
// of each tenant the ledger last recorded, sealed so that damage is found:
//
//	{
//	  "applied": {"t_bakery": "<hex SHA-256 of cfg/tenants/t_bakery.yaml>", …},
//	  "sha256": "<hex SHA-256 of \"logline applied tenants v1\\n\" and the JSON of applied>"
//	}
//
// A file that does not read, or fails its seal, is not trusted: every
// tenant file is applied again (a config record with the same content).
// Earlier versions wrote the map alone; it is read as before, and sealed at
// the next change.
const AppliedFile = ".applied.json"

const appliedSealPrefix = "logline applied tenants v1\n"

type appliedState struct {
	Applied map[string]string `json:"applied"`
	SHA256  string            `json:"sha256"`
}

func appliedSeal(m map[string]string) string {
	b, _ := json.Marshal(m) // keys sorted
	sum := sha256.Sum256(append([]byte(appliedSealPrefix), b...))
	return hex.EncodeToString(sum[:])
}

func encodeApplied(m map[string]string) []byte {
	if m == nil {
		m = map[string]string{}
	}
	b, _ := json.MarshalIndent(appliedState{Applied: m, SHA256: appliedSeal(m)}, "", "  ")
	return append(b, '\n')
}

// ReadApplied reads the content of AppliedFile: each tenant's applied file
// hash, and whether the file was sealed (an unsealed one, from an earlier
// version, cannot be checked). It fails unless the file is exactly as the
// watcher writes it, with a seal that matches.
func ReadApplied(data []byte) (applied map[string]string, sealed bool, err error) {
	var st appliedState
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		var old map[string]string
		if json.Unmarshal(data, &old) == nil && old != nil {
			return old, false, nil
		}
		return nil, false, fmt.Errorf("not a tenant state file: %w", err)
	}
	switch {
	case st.Applied == nil:
		return nil, false, errors.New(`no "applied" member`)
	case !bytes.Equal(encodeApplied(st.Applied), data):
		return nil, false, errors.New("not as the server writes it")
	case appliedSeal(st.Applied) != st.SHA256:
		return nil, false, errors.New("its seal does not match its content")
	}
	return st.Applied, true, nil
}
