// Package cluster holds the building blocks of LogLineOS's clustered mode on
// NATS JetStream (docs/cluster.md): the streams, the integrator's lease and
// the fenced integrated log.
//
//	gateways ──publish batches──▶ LEDGER_IN ──in order──▶ integrator (one, leased)
//	(any number)                  (R3, file,               │ numbers, dedups, signs
//	                               sync always)            ▼
//	                                             LEDGER_INTEGRATED ──▶ every node's ledger,
//	                                             (R3, fenced appends)   derivation workers
//
// Safety does not rest on the lease. The lease (a key in the LEDGER_LEASE
// bucket, updated by revision) only says who should integrate; two
// integrators can still overlap for a moment (a paused process, clock
// skew). What keeps the integrated log linear is fencing: every append to
// LEDGER_INTEGRATED names the stream's last sequence its writer has read
// (Nats-Expected-Last-Sequence), and a new lease holder first appends an
// epoch marker. A deposed integrator's next append then names a sequence
// that is no longer the last one and JetStream refuses it (ErrFenced).
package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The streams and the bucket, and their subjects.
const (
	StreamIn          = "LEDGER_IN"
	SubjectIn         = "ledger.in"
	StreamIntegrated  = "LEDGER_INTEGRATED"
	SubjectIntegrated = "ledger.integrated"
	LeaseBucket       = "LEDGER_LEASE"
	leaseKey          = "integrator"
)

// Headers of the integrated log's messages.
const (
	// HeaderEpoch is the lease epoch of the integrator that appended the
	// message.
	HeaderEpoch = "Logline-Epoch"
	// HeaderKind is "epoch" for an epoch marker, "batch" for an integrated
	// batch.
	HeaderKind = "Logline-Kind"
)

// DefaultReplicas is the replication of the streams and the bucket: a
// quorum of 2 of 3 nodes acknowledges every write.
const DefaultReplicas = 3

// DefaultDuplicates is the window in which LEDGER_IN drops a message whose
// Nats-Msg-Id it has seen (a gateway's retry); later retries are caught by
// the integrator's idempotency check on (tenant, id).
const DefaultDuplicates = 2 * time.Minute

// ErrFenced is returned by Log.Append and Log.Fence when the log has moved
// past the sequence the writer named: another integrator holds the lease.
var ErrFenced = errors.New("cluster: fenced: the integrated log moved on; another integrator holds the lease")

// Setup creates the streams and the lease bucket, or checks that those
// present are configured as the cluster needs: file storage and at least
// replicas copies.
func Setup(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if replicas <= 0 {
		replicas = DefaultReplicas
	}
	for _, cfg := range []jetstream.StreamConfig{
		{Name: StreamIn, Subjects: []string{SubjectIn}, Storage: jetstream.FileStorage, Replicas: replicas, Duplicates: DefaultDuplicates},
		{Name: StreamIntegrated, Subjects: []string{SubjectIntegrated}, Storage: jetstream.FileStorage, Replicas: replicas},
	} {
		s, err := js.CreateOrUpdateStream(ctx, cfg)
		if err != nil {
			return fmt.Errorf("cluster: stream %s: %w", cfg.Name, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return fmt.Errorf("cluster: stream %s: %w", cfg.Name, err)
		}
		if info.Config.Storage != jetstream.FileStorage || info.Config.Replicas < replicas {
			return fmt.Errorf("cluster: stream %s has %s storage and %d replicas; it needs file storage and %d", cfg.Name, info.Config.Storage, info.Config.Replicas, replicas)
		}
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: LeaseBucket, Storage: jetstream.FileStorage, Replicas: replicas, History: 1}); err != nil {
		return fmt.Errorf("cluster: bucket %s: %w", LeaseBucket, err)
	}
	return nil
}

// contended reports whether err is a KV write refused because another
// writer moved the key first: the lease's and the shared files' lock's
// compare-and-set (over a deleted key, Create's second step reports it as
// a wrong last sequence, not as ErrKeyExists).
func contended(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) || wrongLastSequence(err)
}

// wrongLastSequence reports whether err is JetStream's refusal of a write
// that named a last sequence the stream has moved past (10071; 10164 on a
// replicated stream).
func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
