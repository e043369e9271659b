// Package ledger is LogLineOS's span ledger: an embedded, append-only,
// tamper-evident log of records with group commit, signed receipts,
// checkpoints, indexes and crash recovery (docs/architecture.md).
//
// # Files
//
// Under the data directory:
//
//	LOCK                            held by the one process writing the directory
//	                                (package datadir)
//	ledger/segments/NNNNNN.ndjson   the records, one framed line each (record.go)
//	ledger/segments/NNNNNN.ndjson.<offset>.broken
//	                                a torn tail moved aside at open (recover.go)
//	ledger/segments/NNNNNN.ndjson.<offset>.unpublished
//	                                records never published, moved aside by
//	                                TruncateAfter (truncate.go)
//	ledger/key, ledger/key.pub      the signing key (keys.go; its form in ledgerfmt)
//	ledger/checkpoint               the latest signed tree head (checkpoint.go;
//	                                its form in ledgerfmt)
//	ledger/DAMAGED                  damage found in the records (scrub.go)
//	ledger/index/                   derived: positions, commits, lookups (index.go,
//	                                lookup.go) and the Merkle tree (tree.go)
//	ledger/index/REBUILD            damage found in the derived files (repair.go)
//	receipts/YYYY-MM-DD.ndjson      the batch receipts, one per commit (journal.go;
//	                                their form in ledgerfmt)
//
// The segments are the truth. Everything under ledger/index and the
// receipts journal is derived from them, synced only now and then, and
// brought up to the segments at open by reading the records after the point
// each recorded as complete (recover.go, catchup.go). Deleting ledger/index
// rebuilds it.
//
// # Trust
//
// Nothing read from disk is believed unchecked. Records carry a CRC and a
// leaf hash; a small ledger has every record checked at open, a large one
// by Scrub in the background, and damage to records stops appends for good
// (scrub.go). The derived files carry checksums or are checked against the
// records they point at, and are rebuilt from the segments when damaged
// (repair.go). Verify checks every byte a server trusts (verify.go and
// the verify_*.go files). Open takes the data directory for one process
// (package datadir); read-only opens beside it see its signed checkpoint.
//
// What leaves the server (leaf hashes, receipts, checkpoints, proofs, keys)
// is defined in package ledgerfmt, which the Go SDK uses too.
//
// # Writing
//
// The write path is a pipeline of stages, each its own type, file and
// goroutine (batch.go draws it): committer (commit.go), sealer
// (sealer.go), syncer (syncer.go) and indexer (indexer.go).
//
// Append hands a request to the committer goroutine, which resolves
// duplicates, numbers the records and frames them into the open batch; a
// sealer goroutine computes their leaf hashes meanwhile, on the other core.
// The syncer takes the whole open batch, writes the leaves and CRCs into
// it (hashing what the sealer did not reach), writes it with one write and
// makes it durable with one fdatasync, in its own goroutine; while the sync
// runs, a helper builds the batch's tree, signs it (one ed25519 signature
// per commit) and extends the Merkle tree, and once the sync has returned
// it completes the batch, waking its requests. Helpers run one after
// another in commit order, and the syncer waits only for the helper two
// batches back, which keeps a slow indexer's back-pressure. Each request
// then assembles its receipts in its own goroutine. The committer fills the
// next batch meanwhile, so one commit is being built while another is
// synced. The indexer then appends each
// durable batch's tree nodes, receipts journal line, positions and commit
// entry, and adds its spans to the in-memory part of the lookup indexes; a
// compactor goroutine writes full in-memory parts to sorted run files and
// merges runs. Checkpoints sync the tree and the journal and sign the tree
// head.
//
// With Config.Publish, the helper hands each durable batch to Publish
// before it completes it; only then do its records become visible, indexed
// and covered by checkpoints (syncer.go).
//
// # Replication
//
// A publishing ledger hands out its group commits (Commit: the lines as
// written and the signed batch receipt); a follower with the same key
// writes them with Apply, byte for byte, through the same syncer and
// indexer, after checking them; TruncateAfter moves aside what a writer
// wrote and never published. A ledger takes its records from Append or
// from Apply until it is reopened. apply.go states the rules.
//
// # Duplicates
//
// A span's (tenant, id) is its idempotency key. The committer keeps a Bloom
// filter of the keyed hashes of every stored and pending id (bloom.go), so
// the common case, a new id, costs no I/O and no lock. A "maybe" is settled
// against the pending spans, then the index, confirming each candidate by
// reading its record: the index stores hashes, never keys. See committer in
// commit.go for why that is complete.
//
// # Memory
//
// The indexes live on disk; memory holds a fixed-size dedup filter
// (Config.DedupFilterBytes), at most two in-memory index parts
// (Config.IndexMemTableBytes), a 16-byte fence entry per 4 KiB of index
// run, and the batches in flight. It stays flat as the ledger grows.
package ledger
