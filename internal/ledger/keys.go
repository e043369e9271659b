package ledger

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// The ledger's signing key lives in ledger/key (mode 0600) in the signed-note
// private key form, and its verifier key in ledger/key.pub (package
// ledgerfmt describes both). The key's name is the ledger's origin.

// loadOrCreateKey reads ledger/key, creating it on first open.
func loadOrCreateKey(fs vfs.FS, dir, origin string, rnd io.Reader, create bool) (*ledgerfmt.Signer, error) {
	name := fs.PathJoin(dir, "key")
	b, err := readFile(fs, name)
	switch {
	case err == nil:
		return ledgerfmt.NewSigner(strings.TrimSpace(string(b)))
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("ledger: read signing key: %w", err)
	case !create:
		return nil, fmt.Errorf("ledger: no signing key in %s: %w", dir, err)
	}
	skey, vkey, err := ledgerfmt.GenerateKey(rnd, origin)
	if err != nil {
		return nil, fmt.Errorf("ledger: generate signing key: %w", err)
	}
	if err := writeFileAtomic(fs, name, []byte(skey+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(fs, fs.PathJoin(dir, "key.pub"), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, err
	}
	return ledgerfmt.NewSigner(skey)
}
