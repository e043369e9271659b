package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/loglineos/loglineos/internal/bundle"
)

// rebuild re-frames a bundle with other resources, optionally fixing the
// manifest's hash and resource lists, and re-signing with key (or keeping
// the old signature when key is nil).
func rebuild(t *testing.T, p *bundle.Parts, res []bundle.Resource, fixHash bool, key ed25519.PrivateKey) []byte {
	t.Helper()
	var sec bytes.Buffer
	binary.Write(&sec, binary.BigEndian, uint32(len(res)))
	for _, r := range res {
		binary.Write(&sec, binary.BigEndian, uint16(len(r.Name)))
		sec.WriteString(r.Name)
		binary.Write(&sec, binary.BigEndian, uint32(len(r.Payload)))
		sec.Write(r.Payload)
	}
	m := p.Manifest
	if fixHash {
		sum := sha256.Sum256(sec.Bytes())
		m.Hash = "sha256:" + hex.EncodeToString(sum[:])
	}
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	out.WriteString(bundle.Magic)
	binary.Write(&out, binary.BigEndian, uint32(len(mb)))
	out.Write(mb)
	out.Write(sec.Bytes())
	if key != nil {
		out.Write(ed25519.Sign(key, append([]byte(bundle.SigContext), out.Bytes()...)))
	} else {
		out.Write(p.Signature)
	}
	return out.Bytes()
}
