package ledger

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestSlowIndexerSlowsAppends: when the indexer falls behind (its tree
// writes take 20 ms each here) and callers give up on their appends and
// retry, as HTTP handlers do, the write path must slow down with it instead
// of committing batch after batch and parking a goroutine and a batch for
// each. Without the bound on helpers this ran to tens of thousands of
// goroutines in a second.
func TestSlowIndexerSlowsAppends(t *testing.T) {
	mem := vfs.NewMem()
	var slow atomic.Bool
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(o errorfs.Op) error {
		if slow.Load() && o.Kind == errorfs.OpFileWriteAt && strings.Contains(o.Path, "/tree/") {
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}))
	cfg := testConfig(fs)
	l := mustOpen(t, fs, cfg)
	defer l.Close()
	base := runtime.NumGoroutine()
	slow.Store(true)
	defer slow.Store(false)
	const appenders = 16
	stop := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for g := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; time.Now().Before(stop); r++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
				l.Append(ctx, []Entry{spanEntry("t_a", fmt.Sprintf("b_%d_%d", g, r), "x")})
				cancel()
			}
		}()
	}
	most := 0
	for time.Now().Before(stop) {
		time.Sleep(50 * time.Millisecond)
		most = max(most, runtime.NumGoroutine())
	}
	wg.Wait()
	if limit := base + appenders + 64; most > limit {
		st := l.Stats()
		t.Fatalf("%d goroutines at most (limit %d) with a slow indexer: %d commits, %d durable, %d indexed", most, limit, st.Commits, st.Next, st.Indexed)
	}
}
