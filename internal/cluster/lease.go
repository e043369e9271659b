package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrLeaseHeld is wrapped by Acquire's error while another holder's lease
// runs.
var ErrLeaseHeld = errors.New("cluster: the integrator lease is held")

// ErrLeaseLost is returned by Renew when the lease was taken over.
var ErrLeaseLost = errors.New("cluster: the integrator lease was taken over")

// leaseValue is the lease key's value.
type leaseValue struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// Lease is a held integrator lease. Its epoch is the key's revision when
// it was acquired, and grows with every acquisition.
type Lease struct {
	kv     jetstream.KeyValue
	holder string
	ttl    time.Duration
	now    func() time.Time
	epoch  uint64
	rev    uint64 // the key's revision after the last acquire or renew
	until  time.Time
}

// LeaseOptions tune Acquire.
type LeaseOptions struct {
	// TTL is how long a lease runs without renewal (DefaultLeaseTTL when
	// zero). Renew it well within that.
	TTL time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// DefaultLeaseTTL is the lease's time to live: how long the cluster goes
// without an integrator when one dies.
const DefaultLeaseTTL = 5 * time.Second

// Acquire takes the integrator lease for holder if no one holds it or the
// holder's lease has run out; else it returns an error wrapping
// ErrLeaseHeld that names the holder.
func Acquire(ctx context.Context, js jetstream.JetStream, holder string, opts LeaseOptions) (*Lease, error) {
	if opts.TTL <= 0 {
		opts.TTL = DefaultLeaseTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	kv, err := js.KeyValue(ctx, LeaseBucket)
	if err != nil {
		return nil, fmt.Errorf("cluster: lease: %w", err)
	}
	l := &Lease{kv: kv, holder: holder, ttl: opts.TTL, now: opts.Now}
	e, err := kv.Get(ctx, leaseKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		err = l.put(ctx, 0)
	case err != nil:
		return nil, fmt.Errorf("cluster: lease: %w", err)
	default:
		var cur leaseValue
		if err := json.Unmarshal(e.Value(), &cur); err != nil {
			return nil, fmt.Errorf("cluster: lease: the value of %s/%s: %w", LeaseBucket, leaseKey, err)
		}
		if cur.Holder != holder && l.now().Before(cur.Until) {
			return nil, fmt.Errorf("%w by %s until %s", ErrLeaseHeld, cur.Holder, cur.Until.Format(time.RFC3339Nano))
		}
		err = l.put(ctx, e.Revision())
	}
	if contended(err) {
		return nil, fmt.Errorf("%w: another holder took it first", ErrLeaseHeld)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: lease: %w", err)
	}
	l.epoch = l.rev
	return l, nil
}

// put writes the lease over revision rev (0: the key must not exist).
func (l *Lease) put(ctx context.Context, rev uint64) error {
	until := l.now().Add(l.ttl)
	v, _ := json.Marshal(leaseValue{Holder: l.holder, Until: until})
	var err error
	var nrev uint64
	if rev == 0 {
		nrev, err = l.kv.Create(ctx, leaseKey, v)
	} else {
		nrev, err = l.kv.Update(ctx, leaseKey, v, rev)
	}
	if err != nil {
		return err
	}
	l.rev, l.until = nrev, until
	return nil
}

// Renew extends the lease by its TTL, or returns ErrLeaseLost when someone
// else took it over.
func (l *Lease) Renew(ctx context.Context) error {
	err := l.put(ctx, l.rev)
	if contended(err) {
		return ErrLeaseLost
	}
	if err != nil {
		return fmt.Errorf("cluster: lease: renew: %w", err)
	}
	return nil
}

// Epoch returns the lease's epoch.
func (l *Lease) Epoch() uint64 { return l.epoch }

// Holder returns the holder's name.
func (l *Lease) Holder() string { return l.holder }

// Until returns when the lease runs out unless renewed.
func (l *Lease) Until() time.Time { return l.until }
