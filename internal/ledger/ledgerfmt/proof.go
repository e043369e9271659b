package ledgerfmt

import (
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
	return proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leaf[:], hashBytes(path), root[:])
}

// VerifyConsistency checks that path proves the tree of size2 leaves with
// root root2 extends the tree of size1 leaves with root root1 (RFC 6962).
func VerifyConsistency(size1, size2 uint64, root1, root2 Hash, path []Hash) error {
	return proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, hashBytes(path), root1[:], root2[:])
}

func hashBytes(hs []Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}
