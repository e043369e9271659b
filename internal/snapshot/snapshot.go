// Package snapshot takes consistent point-in-time copies of a data
// directory beside a running server (Take), and rebuilds a working data
// directory from one (Restore).
//
// # What a snapshot holds
//
// A snapshot is a directory:
//
//	SNAPSHOT                        the manifest (Manifest), written last
//	ledger/checkpoint               the signed checkpoint of size S it is cut at
//	ledger/key, ledger/key.pub      the ledger's signing key and verifier key
//	ledger/segments/NNNNNN.ndjson   the records 0..S-1 exactly: sealed segments
//	                                hard-linked (copied across file systems),
//	                                the last one copied up to record S-1's end
//	bundle/                         the standard bundle's key pair
//	identity/, jwks/                accounts, users, operator credentials, the
//	                                redaction key, token signing keys
//	cfg/tenants/                    tenant files and the watcher's sealed state
//	runtime/                        webhook outbox and key (not kv.json)
//	billing.json                    the counters the ledger does not hold
//
// Everything derived from the records is left out and rebuilt by Restore
// (the ledger's indexes and tree, the receipts journal, derived/,
// runtime/kv.json), as logline ledger reindex rebuilds it: identical. The
// lock files are left out too.
//
// The keys make a snapshot as secret as the data directory: whoever holds
// one can sign as the ledger and as the token issuer.
//
// # Consistency
//
// The records are exactly the tree of the checkpoint: Restore arrives at
// the same root. The state files are described by records (audit and
// config records) that the server appends as it writes them; Take copies
// them first, notes where the segments end, then waits (TakeConfig.Wait)
// for a signed checkpoint written after that which covers every record
// written by then (or, when nothing was appended for a moment, takes the
// latest if it does), and checks that none of the state files changed
// meanwhile (copying them again when one did). Left uncovered is a state
// change whose record was still being committed when the copy ended and
// whose commit the new checkpoint just missed: logline ledger verify on the
// restored directory names such a file. A tenant file is operator input and
// may be newer than S: verify notes the difference, and the restored
// server applies it at start.
package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// ManifestName is the manifest's file name in a snapshot.
const ManifestName = "SNAPSHOT"

// Format names the snapshot format in its manifest.
const Format = "logline-snapshot/1"

// ErrBad is returned (wrapped) for a snapshot Restore refuses: a checkpoint
// that does not verify, a manifest that does not match the files, another
// ledger's key.
var ErrBad = errors.New("snapshot: refused")

// Manifest is the SNAPSHOT file, JSON:
//
//	{"format":"logline-snapshot/1",
//	 "origin":"logline.local/ledger",    the checkpoint's origin
//	 "size":1234,                        the checkpoint's tree size S
//	 "root":"<base64>",                  its root
//	 "time":"2026-01-02T03:04:05Z",      when the snapshot was taken
//	 "files":[{"path":"ledger/key","size":93,"mode":384,"sha256":"<hex>"}, ...]}
//
// files lists every other file of the snapshot, slash-separated paths
// relative to it, in lexical order.
type Manifest struct {
	Format string         `json:"format"`
	Origin string         `json:"origin"`
	Size   uint64         `json:"size"`
	Root   ledgerfmt.Hash `json:"root"`
	Time   time.Time      `json:"time"`
	Files  []File         `json:"files"`
}

// File is one file of a snapshot.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Mode   uint32 `json:"mode"` // permission bits
	SHA256 string `json:"sha256"`
}

func parseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBad, ManifestName, err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("%w: %s: format %q, want %q", ErrBad, ManifestName, m.Format, Format)
	}
	return &m, nil
}
