// Package ledgerfmt holds the ledger's formats that leave the server: what a
// record's leaf hash is, what receipts, checkpoints and inclusion proofs
// say, and how each is checked. It reads and writes no file, so the server,
// the CLI and the Go SDK (package client) all use it, and a program that
// only verifies links no storage code.
//
// # Formats
//
//   - A record's leaf hash (hash.go): SHA-256(0x00 || {"seq":S,"ts":"T","KIND":BODY}),
//     the RFC 6962 leaf hash of the record's sequence number, time (TimeLayout),
//     kind and canonical body. The segments frame records around it (package
//     ledger, record.go).
//   - A receipt (receipt.go): one ed25519 signature over a group commit's
//     batch statement, and the place of one record in that commit.
//   - A checkpoint (checkpoint.go): a C2SP signed note stating the tree size
//     and root.
//   - An inclusion or consistency proof (proof.go): RFC 6962 audit paths in
//     the ledger's Merkle tree, checked with transparency-dev/merkle.
//   - The keys (keys.go): signed-note ed25519 keys; the verifier key is what
//     `logline ledger key` prints.
//
// A receipt, checkpoint or verifier key that does not verify or parse is an
// *Error (errors.go): its sentinel (ErrBadReceipt, ErrBadCheckpoint,
// ErrBadVerifierKey) and the reason apart, so that a caller with sentinels
// of its own (the Go SDK) says the reason under its own once.
package ledgerfmt
