package ledgerfmt

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoints are C2SP checkpoints in a signed note:
//
//	logline.local/ledger
//	42
//	uE5F…base64 root…=
//
//	— logline.local/ledger Az3gr…base64(keyid||sig)…
//
// The body is the origin, the tree size in decimal and the standard base64
// root hash, one per line. It verifies with golang.org/x/mod/sumdb/note and
// the verifier key.

// Checkpoint is a signed tree head.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   Hash
	// Note is the whole signed note.
	Note []byte
}

func checkpointText(origin string, size uint64, root Hash) string {
	return origin + "\n" + strconv.FormatUint(size, 10) + "\n" + root.String() + "\n"
}

// SignCheckpoint signs a tree head of the given size and root.
func (s *Signer) SignCheckpoint(size uint64, root Hash) (*Checkpoint, error) {
	msg, err := note.Sign(&note.Note{Text: checkpointText(s.origin, size, root)}, s.note)
	if err != nil {
		return nil, fmt.Errorf("ledgerfmt: sign checkpoint: %w", err)
	}
	return &Checkpoint{Origin: s.origin, Size: size, Root: root, Note: msg}, nil
}

// OpenCheckpoint verifies a signed checkpoint with the key and parses it.
func (v *Verifier) OpenCheckpoint(msg []byte) (*Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v.note))
	if err != nil {
		return nil, &Error{Err: ErrBadCheckpoint, Reason: err.Error()}
	}
	c, err := parseCheckpointText(n.Text)
	if err != nil {
		return nil, err
	}
	if c.Origin != v.origin {
		return nil, &Error{Err: ErrBadCheckpoint, Reason: fmt.Sprintf("origin %q, want %q", c.Origin, v.origin)}
	}
	c.Note = msg
	return c, nil
}

func parseCheckpointText(text string) (*Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return nil, &Error{Err: ErrBadCheckpoint, Reason: "want origin, size and root lines"}
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || (len(lines[1]) > 1 && lines[1][0] == '0') {
		return nil, &Error{Err: ErrBadCheckpoint, Reason: fmt.Sprintf("bad size %q", lines[1])}
	}
	var root Hash
	if err := root.UnmarshalText([]byte(lines[2])); err != nil {
		return nil, &Error{Err: ErrBadCheckpoint, Reason: fmt.Sprintf("bad root %q", lines[2])}
	}
	return &Checkpoint{Origin: lines[0], Size: size, Root: root}, nil
}
