// Package natstest runs a NATS JetStream cluster inside a test process:
// real nats-server nodes with file storage in temporary directories, real
// routes between them on loopback ports, and a proxy in front of every
// node's cluster port so a test can cut a node off from the others (a
// partition) and heal it.
//
//	node 0 ──route──▶ proxy 1 ──▶ node 1's cluster port
//	node 2 ──route──▶ proxy 1 ──┘
//
// Every route goes through the proxy of the node it reaches: the nodes'
// configured routes are the proxies, and each node advertises its proxy as
// its route address, so no node learns another's real cluster port and
// connects around them. A proxy reads the connecting server's id from its
// CONNECT line; cutting node i off cuts its own proxy and, on the others,
// the connections node i opened. Ports are chosen once, so a node killed
// and restarted comes back at the same addresses with the same store, as
// a machine that rebooted would.
//
// Every node is configured as the cluster mode requires in production:
// JetStream with file storage and sync_interval: always (an fsync after
// every write, before the write is acknowledged).
package natstest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a running test cluster.
type Cluster struct {
	t       T
	name    string
	nodes   []*Node
	proxies []*Proxy // in front of each node's cluster port
	cfg     Config
}

// Node is one nats-server of a Cluster.
type Node struct {
	Index       int
	Name        string
	Dir         string // the JetStream store directory
	ClientPort  int
	ClusterPort int

	mu  sync.Mutex
	srv *server.Server
}

// Config changes what Start runs.
type Config struct {
	// SyncInterval, when not zero, replaces sync_interval: always (for
	// tests of the check that refuses such a cluster).
	SyncInterval time.Duration
	// MaxPayload, when not zero, replaces NATS's default maximum payload
	// of a message (1 MiB).
	MaxPayload int32
}

// The system account's user, for requests such as
// $SYS.REQ.SERVER.PING.VARZ. Clients without credentials are the
// application user of the global account.
const (
	SystemUser     = "sys"
	SystemPassword = "sys"
)

// Start starts an n-node cluster and waits until JetStream has a meta
// leader and every node is current. It stops everything at the test's end.
func Start(t T, n int) *Cluster { return StartConfig(t, n, Config{}) }

// T is what a Cluster needs of its test: a *testing.T or *testing.B, or
// an adapter (a script test's).
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
	Cleanup(func())
}

var _ T = testing.TB(nil)

// StartConfig is Start with cfg.
func StartConfig(t T, n int, cfg Config) *Cluster {
	t.Helper()
	c := &Cluster{t: t, name: "logline-test", cfg: cfg}
	base := t.TempDir()
	// The nodes' ports are held while the proxies take theirs, so that
	// no proxy is given one of them, and each node's until it starts: the
	// other processes of a test run (servers listening on port 0,
	// outgoing connections) take ports from the same range meanwhile.
	ports, held := freePorts(t, 2*n)
	release := func() {
		for _, l := range held {
			l.Close()
		}
	}
	t.Cleanup(release)
	for i := range n {
		c.nodes = append(c.nodes, &Node{Index: i, Name: fmt.Sprintf("n%d", i), Dir: filepath.Join(base, fmt.Sprintf("n%d", i)),
			ClientPort: ports[2*i], ClusterPort: ports[2*i+1]})
	}
	for i := range n {
		p, err := NewProxy(fmt.Sprintf("127.0.0.1:%d", c.nodes[i].ClusterPort))
		if err != nil {
			release()
			t.Fatal(err)
		}
		c.proxies = append(c.proxies, p)
	}
	t.Cleanup(c.Shutdown)
	for i := range n {
		held[2*i].Close()
		held[2*i+1].Close()
		c.Restart(i)
	}
	c.WaitReady(30 * time.Second)
	return c
}

// Options returns node i's configuration.
func (c *Cluster) Options(i int) *server.Options {
	nd := c.nodes[i]
	var routes []*url.URL
	for j := range c.nodes {
		if j != i {
			routes = append(routes, &url.URL{Scheme: "nats-route", Host: c.proxies[j].Addr()})
		}
	}
	sys := server.NewAccount("SYS")
	return &server.Options{
		ServerName:    nd.Name,
		Host:          "127.0.0.1",
		Port:          nd.ClientPort,
		NoLog:         true,
		NoSigs:        true,
		JetStream:     true,
		StoreDir:      nd.Dir,
		SyncAlways:    c.cfg.SyncInterval == 0,
		SyncInterval:  c.cfg.SyncInterval,
		MaxPayload:    c.cfg.MaxPayload,
		Accounts:      []*server.Account{sys},
		SystemAccount: "SYS",
		Users: []*server.User{
			{Username: SystemUser, Password: SystemPassword, Account: sys},
			{Username: "app", Password: "app"},
		},
		NoAuthUser: "app",
		Cluster: server.ClusterOpts{
			Name: c.name,
			Host: "127.0.0.1",
			Port: nd.ClusterPort,
			// Without it, nodes tell each other their own cluster
			// addresses and connect there directly, around the proxies.
			Advertise: c.proxies[i].Addr(),
		},
		Routes: routes,
	}
}

// Restart starts node i (again), with its store as it was left.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.srv != nil && nd.srv.Running() {
		c.t.Fatalf("natstest: node %d is running", i)
	}
	s, err := server.NewServer(c.Options(i))
	if err != nil {
		c.t.Fatalf("natstest: node %d: %v", i, err)
	}
	// The nodes log nothing, but a node that does not start says why.
	errs := &errorLog{}
	s.SetLoggerV2(errs, false, false, false)
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		c.t.Fatalf("natstest: node %d did not start: %s", i, errs)
	}
	nd.srv = s
}

// errorLog is a NATS server's logger that keeps its errors and fatal
// errors (the rest is dropped).
type errorLog struct {
	mu   sync.Mutex
	errs []string
}

func (l *errorLog) add(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 20 {
		l.errs = append(l.errs, fmt.Sprintf(format, v...))
	}
}

func (l *errorLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) == 0 {
		return "no error logged"
	}
	return strings.Join(l.errs, "; ")
}

func (l *errorLog) Noticef(string, ...any)         {}
func (l *errorLog) Warnf(string, ...any)           {}
func (l *errorLog) Debugf(string, ...any)          {}
func (l *errorLog) Tracef(string, ...any)          {}
func (l *errorLog) Errorf(format string, v ...any) { l.add(format, v...) }
func (l *errorLog) Fatalf(format string, v ...any) { l.add(format, v...) }

// Kill stops node i at once, as a crash would from the cluster's point of
// view (its store keeps what it synced).
func (c *Cluster) Kill(i int) {
	nd := c.nodes[i]
	nd.mu.Lock()
	s := nd.srv
	nd.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Partition cuts node i off from every other node until Heal.
func (c *Cluster) Partition(i int) {
	c.t.Helper()
	s := c.Server(i)
	if s == nil {
		c.t.Fatalf("natstest: node %d is not running", i)
	}
	for j, p := range c.proxies {
		if j == i {
			p.Cut()
		} else {
			p.CutFrom(s.ID())
		}
	}
}

// Heal restores every route.
func (c *Cluster) Heal() {
	for _, p := range c.proxies {
		p.Heal()
	}
}

// Server returns node i's server (nil before its first start).
func (c *Cluster) Server(i int) *server.Server {
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.srv
}

// Nodes returns the nodes.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// URLs returns every node's client URL, comma-separated, as NATS clients
// take them.
func (c *Cluster) URLs() string {
	var u []string
	for _, nd := range c.nodes {
		u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", nd.ClientPort))
	}
	return strings.Join(u, ",")
}

// URL returns node i's client URL.
func (c *Cluster) URL(i int) string { return fmt.Sprintf("nats://127.0.0.1:%d", c.nodes[i].ClientPort) }

// SystemURL is node i's client URL with the system account's credentials.
func (c *Cluster) SystemURL(i int) string {
	return fmt.Sprintf("nats://%s:%s@127.0.0.1:%d", SystemUser, SystemPassword, c.nodes[i].ClientPort)
}

// WaitReady waits until the running nodes have a JetStream meta leader
// that sees them all as peers and each is current.
func (c *Cluster) WaitReady(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c.ready() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("natstest: the cluster did not become ready in %s", timeout)
}

func (c *Cluster) ready() bool {
	running := 0
	var leader *server.Server
	for i := range c.nodes {
		s := c.Server(i)
		if s == nil || !s.Running() {
			continue
		}
		running++
		if s.JetStreamIsLeader() {
			leader = s
		}
	}
	if leader == nil || len(leader.JetStreamClusterPeers()) < running {
		return false
	}
	for i := range c.nodes {
		if s := c.Server(i); s != nil && s.Running() && !s.JetStreamIsCurrent() {
			return false
		}
	}
	return true
}

// Shutdown stops every node and proxy.
func (c *Cluster) Shutdown() {
	for i := range c.nodes {
		c.Kill(i)
	}
	for _, p := range c.proxies {
		p.Close()
	}
}

// freePorts returns n distinct TCP ports free on 127.0.0.1, each held by
// its listener (held[k] on ports[k]) until the caller closes it.
func freePorts(t T, n int) (ports []int, held []net.Listener) {
	t.Helper()
	for range n {
		l, err := Listen()
		if err != nil {
			for _, l := range held {
				l.Close()
			}
			t.Fatal(err)
		}
		held = append(held, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, held
}

// Listen listens on a free TCP port of 127.0.0.1 for a server that will
// bind it again once the listener is closed: outside the kernel's
// ephemeral range when it can tell it (/proc/sys/net/ipv4/
// ip_local_port_range), where the ports other processes get for port 0
// and for outgoing connections come from, so that none takes it in
// between (a node of a test cluster once found its port taken so, and did
// not start); port 0 otherwise.
func Listen() (net.Listener, error) {
	if low, ok := ephemeralLow(); ok && low > 11024 {
		for range 64 {
			port := 10000 + 1024 + rand.IntN(low-11024)
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				return l, nil
			}
		}
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// ephemeralLow returns the first port of the kernel's ephemeral range.
func ephemeralLow() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	low, err := strconv.Atoi(f[0])
	return low, err == nil
}
