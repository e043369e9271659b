package ledgerfmt

import (
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// The Merkle tree is the RFC 6962 tree whose leaves are the records' leaf
// hashes in sequence order; an interior node is SHA-256(0x01 || left ||
// right). A batch tree is the same tree over the leaves of one group commit.

// Proof is an RFC 6962 inclusion proof: the audit path of record Index's
// leaf in the ledger's Merkle tree of TreeSize records.
//
//	{"leaf_index":41,"tree_size":42,"leaf_hash":"…","path":["…","…"]}
type Proof struct {
	Index    uint64 `json:"leaf_index"`
	TreeSize uint64 `json:"tree_size"`
	Leaf     Hash   `json:"leaf_hash"`
	Path     []Hash `json:"path"`
}

// VerifyInclusion checks that path is the audit path of leaf index in the
// tree of size leaves whose root is root (RFC 6962).
func VerifyInclusion(index, size uint64, leaf Hash, path []Hash, root Hash) error {
	return oneLine(proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leaf[:], hashBytes(path), root[:]))
}

// VerifyConsistency checks that path proves the tree of size2 leaves with
// root root2 extends the tree of size1 leaves with root root1 (RFC 6962).
func VerifyConsistency(size1, size2 uint64, root1, root2 Hash, path []Hash) error {
	return oneLine(proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, hashBytes(path), root1[:], root2[:]))
}

// oneLine says a root mismatch of the merkle package, whose message spans
// five lines of hex, in one line and base64, as the roots are written
// everywhere else; it returns other errors as they are.
func oneLine(err error) error {
	var rm proof.RootMismatchError
	if !errors.As(err, &rm) || len(rm.CalculatedRoot) != len(Hash{}) || len(rm.ExpectedRoot) != len(Hash{}) {
		return err
	}
	return fmt.Errorf("the path leads to root %s, not %s", Hash(rm.CalculatedRoot), Hash(rm.ExpectedRoot))
}

func hashBytes(hs []Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}
