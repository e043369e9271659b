package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
)

// ErrNotDurable is wrapped by CheckSync's error when a NATS server of the
// cluster acknowledges writes before they are on its disk.
var ErrNotDurable = errors.New("cluster: NATS servers acknowledge writes before syncing them; configure jetstream { sync_interval: always }")

// varzSubject asks every server for its /varz.
const varzSubject = "$SYS.REQ.SERVER.PING.VARZ"

// CheckSync asks every NATS server the system-account connection sys
// reaches for its JetStream configuration and returns an error wrapping
// ErrNotDurable that names those without sync_interval: always (or
// without JetStream). JetStream's default syncs every two minutes and
// acknowledges before: a power cut on a quorum of nodes would then lose
// acknowledged spans. It waits until at least servers have answered or
// ctx is done.
func CheckSync(ctx context.Context, sys *nats.Conn, servers int) error {
	inbox := sys.NewRespInbox()
	sub, err := sys.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("cluster: %s: %w", varzSubject, err)
	}
	defer sub.Unsubscribe()
	if err := sys.PublishRequest(varzSubject, inbox, nil); err != nil {
		return fmt.Errorf("cluster: %s: %w", varzSubject, err)
	}
	seen := map[string]bool{}
	var bad []string
	for len(seen) < servers {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return fmt.Errorf("cluster: %d of %d NATS servers answered %s: %w", len(seen), servers, varzSubject, err)
		}
		var r struct {
			Server struct {
				Name string `json:"name"`
			} `json:"server"`
			Data struct {
				JetStream struct {
					Config *struct {
						SyncAlways bool `json:"sync_always"`
					} `json:"config"`
				} `json:"jetstream"`
			} `json:"data"`
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if err := json.Unmarshal(m.Data, &r); err != nil {
			return fmt.Errorf("cluster: %s: %w", varzSubject, err)
		}
		if r.Error != nil {
			return fmt.Errorf("cluster: %s: %s", varzSubject, r.Error.Description)
		}
		if seen[r.Server.Name] {
			continue
		}
		seen[r.Server.Name] = true
		if c := r.Data.JetStream.Config; c == nil || !c.SyncAlways {
			bad = append(bad, r.Server.Name)
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return fmt.Errorf("%w (servers %s)", ErrNotDurable, strings.Join(bad, ", "))
	}
	return nil
}
