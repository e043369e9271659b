package cli

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/loglineos/loglineos/internal/cluster/natstest"
	"github.com/loglineos/loglineos/internal/ledger"
)

// scriptT adapts a script to what natstest needs of a test.
type scriptT struct {
	ts  *testscript.TestScript
	dir string
	n   atomic.Int64
}

func (t *scriptT) Helper()                           {}
func (t *scriptT) Fatal(args ...any)                 { t.ts.Fatalf("%v", args...) }
func (t *scriptT) Fatalf(format string, args ...any) { t.ts.Fatalf(format, args...) }
func (t *scriptT) Cleanup(f func())                  { t.ts.Defer(f) }
func (t *scriptT) TempDir() string {
	d := filepath.Join(t.dir, "nats", string(rune('a'+t.n.Add(1))))
	t.ts.Check(os.MkdirAll(d, 0o755))
	return d
}

var natsClusters sync.Map // *testscript.TestScript -> *natstest.Cluster

// cmdNATSCluster runs a three-node NATS JetStream cluster in the test
// process for the script (sync_interval always, or JetStream's default of
// two minutes with "start unsynced"; file storage under $WORK/nats) and
// sets $NATS to its client URLs, $NATS0..$NATS2 to each node's and
// $NATSSYS to node 0's with the system account's credentials.
// "natscluster kill I" and "natscluster restart I" kill and restart node I.
func cmdNATSCluster(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: natscluster start [unsynced] | kill I | restart I")
	}
	switch args[0] {
	case "start":
		var cfg natstest.Config
		if len(args) == 2 && args[1] == "unsynced" {
			cfg.SyncInterval = 2 * time.Minute // JetStream's default
		} else if len(args) != 1 {
			ts.Fatalf("usage: natscluster start [unsynced]")
		}
		c := natstest.StartConfig(&scriptT{ts: ts, dir: ts.Getenv("WORK")}, 3, cfg)
		natsClusters.Store(ts, c)
		ts.Setenv("NATS", c.URLs())
		for i := range 3 {
			ts.Setenv("NATS"+string(rune('0'+i)), c.URL(i))
		}
		ts.Setenv("NATSSYS", c.SystemURL(0))
	case "kill", "restart":
		v, ok := natsClusters.Load(ts)
		if !ok || len(args) != 2 || len(args[1]) != 1 || args[1][0] < '0' || args[1][0] > '2' {
			ts.Fatalf("usage: natscluster %s 0|1|2 (after natscluster start)", args[0])
		}
		c, i := v.(*natstest.Cluster), int(args[1][0]-'0')
		if args[0] == "kill" {
			c.Kill(i)
		} else {
			c.Restart(i)
		}
	default:
		ts.Fatalf("usage: natscluster start [unsynced] | kill I | restart I")
	}
}

// cmdSameSize waits (up to a minute) until the ledgers in the data
// directories DIR... hold the same number of records, at least N with
// -least N (else 1), as their signed checkpoints say (a read-only open
// beside a running server), and prints it.
func cmdSameSize(ts *testscript.TestScript, neg bool, args []string) {
	var least uint64 = 1
	if len(args) > 2 && args[0] == "-least" {
		n, err := strconv.ParseUint(args[1], 10, 64)
		ts.Check(err)
		least, args = n, args[2:]
	}
	if len(args) < 2 {
		ts.Fatalf("usage: samesize [-least N] DIR DIR...")
	}
	var sizes []uint64
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		sizes = sizes[:0]
		for _, d := range args {
			l, err := ledger.Open(ts.MkAbs(d), ledger.Config{ReadOnly: true, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				sizes = append(sizes, 0)
				continue
			}
			sizes = append(sizes, l.Next())
			l.Close()
		}
		same := sizes[0] >= least
		for _, n := range sizes {
			same = same && n == sizes[0]
		}
		if same {
			fmt.Fprintf(ts.Stdout(), "%d records\n", sizes[0])
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	ts.Fatalf("the ledgers did not reach one size: %v", sizes)
}

// cmdFreePort sets each variable NAME... to a TCP port free on 127.0.0.1
// now (for servers whose addresses must be known before they start, such
// as embedded NATS servers routing to each other).
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: freeport NAME...")
	}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for _, name := range args {
		l, err := natstest.Listen() // outside the ephemeral range: not taken before the server binds it
		ts.Check(err)
		ls = append(ls, l) // held until all are chosen: no two the same
		ts.Setenv(name, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
}
