package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/loglineos/loglineos/internal/cluster"
	"github.com/loglineos/loglineos/internal/cycle"
	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/ledger"
)

// clusterNode is a server's part of a cluster (cluster.nats set): its
// connection, its ledger node, and for a gateway the Submitter ingest
// appends through.
type clusterNode struct {
	srv    *natsserver.Server // the embedded NATS server, if any
	nc     *nats.Conn
	node   *cluster.Node
	sub    *cluster.Submitter // gateway only
	cancel context.CancelFunc
	done   chan error // Run's result
}

// nodeName is cluster.name, or the host name.
func (c *Config) nodeName() string {
	if c.Cluster.Name != "" {
		return c.Cluster.Name
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "logline"
	}
	return h
}

// startNode connects to cluster.nats and runs a ledger node on the data
// directory (a follower unless integrate). It returns once the node's
// ledger is open (reconciled with the integrated log), or Run's error.
func startNode(ctx context.Context, cfg Config, lcfg ledger.Config, log *slog.Logger, integrate bool) (*clusterNode, error) {
	name := cfg.nodeName()
	var srv *natsserver.Server
	if e := cfg.Cluster.Embedded; e.Listen != "" {
		var err error
		srv, err = cluster.StartEmbedded(cluster.EmbeddedConfig{Name: name, Dir: filepath.Join(cfg.Data, "nats"),
			Listen: e.Listen, ClusterListen: e.ClusterListen, Routes: e.Routes, Token: cfg.Cluster.Token})
		if err != nil {
			return nil, err
		}
		log.Info("embedded NATS server", "listen", e.Listen, "cluster_listen", e.ClusterListen, "routes", e.Routes)
		if cfg.Cluster.Token == "" {
			log.Warn("the embedded NATS server takes any client that reaches its port, and it holds the cluster's identity (token signing keys): set cluster.token (LOGLINE_CLUSTER_TOKEN) on every node")
		}
	}
	// A refusal of this node's credentials is not something a retry
	// cures: the start fails with it instead of waiting.
	var refusal atomic.Bool
	refused := func() error {
		if !refusal.Load() {
			return nil
		}
		return fmt.Errorf("cluster.nats %s: the NATS server refused this node's credentials (cluster.token, or the URLs' user and password): %w", cfg.natsShown(), nats.ErrAuthorization)
	}
	opts := []nats.Option{nats.Name("logline " + name), nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if errors.Is(err, nats.ErrAuthorization) {
				refusal.Store(true)
			}
		})}
	if cfg.Cluster.Token != "" {
		opts = append(opts, nats.Token(cfg.Cluster.Token))
	}
	nc, err := nats.Connect(cfg.natsURLs(), opts...)
	if errors.Is(err, nats.ErrAuthorization) {
		refusal.Store(true)
		shutdown(srv)
		return nil, refused()
	}
	if err != nil {
		// No server answers yet (a cluster starting together): keep trying.
		nc, err = nats.Connect(cfg.natsURLs(), append(opts, nats.RetryOnFailedConnect(true))...)
	}
	if err != nil {
		shutdown(srv)
		return nil, fmt.Errorf("cluster.nats %s: %w", cfg.natsShown(), err)
	}
	fail := func(err error) (*clusterNode, error) {
		nc.Close()
		shutdown(srv)
		return nil, err
	}
	if integrate {
		if err := checkSync(ctx, cfg, log); err != nil {
			return fail(err)
		}
		// The integrators make the streams (or check them), once
		// JetStream answers: a cluster starting together elects its
		// meta leader first.
		js, err := jetstream.New(nc)
		if err == nil {
			sctx, cancel := context.WithTimeout(ctx, setupTimeout)
			for {
				// A request made before the meta leader is elected goes
				// unanswered: each try has its own deadline.
				actx, acancel := context.WithTimeout(sctx, setupTryTimeout)
				err = cluster.Setup(actx, js, cluster.DefaultReplicas)
				acancel()
				if err == nil || sctx.Err() != nil {
					break
				}
				if rerr := refused(); rerr != nil {
					cancel()
					return fail(rerr)
				}
				select {
				case <-sctx.Done():
				case <-time.After(250 * time.Millisecond):
				}
			}
			cancel()
		}
		if err != nil {
			return fail(err)
		}
	}
	ncfg := cluster.NodeConfig{Name: name, Dir: cfg.Data, Ledger: lcfg, Follower: !integrate, Log: log.With("component", "cluster")}
	if d := cfg.Derive.TickInterval; integrate && d > 0 {
		// The cluster's clock: the integrator that holds the lease ticks
		// (an append that fails ends the integration: no more ticks).
		ncfg.Ticks = func(ctx context.Context, l *ledger.Ledger) {
			cycle.AppendTicks(ctx, l, d, func(err error) bool {
				log.Warn("clock tick not appended", "node", name, "err", err)
				return false
			})
		}
	}
	node, err := cluster.NewNode(ctx, nc, ncfg)
	if err != nil {
		return fail(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	cn := &clusterNode{srv: srv, nc: nc, node: node, cancel: cancel, done: make(chan error, 1)}
	go func() { cn.done <- node.Run(rctx) }()
	// Wait for the ledger (a follower's never changes once open).
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for node.Ledger() == nil {
		select {
		case err := <-cn.done:
			cancel()
			if err == nil {
				err = errors.New("cluster: the node stopped")
			}
			return fail(err)
		case <-ctx.Done():
			cn.stop()
			return nil, ctx.Err()
		case <-t.C:
			if err := refused(); err != nil {
				cn.stop()
				return nil, err
			}
		}
	}
	return cn, nil
}

// stop stops the node (it closes its ledger) and the connection.
func (cn *clusterNode) stop() error {
	var errs []error
	if cn.sub != nil {
		errs = append(errs, cn.sub.Close())
	}
	cn.cancel()
	errs = append(errs, <-cn.done)
	cn.nc.Close()
	shutdown(cn.srv)
	return errors.Join(errs...)
}

// setupTimeout bounds how long an integrator waits at start for JetStream
// to make (or check) the streams.
const setupTimeout = 60 * time.Second

// setupTryTimeout bounds one try of it.
const setupTryTimeout = 2 * time.Second

// shutdown stops the embedded NATS server srv, if any.
func shutdown(srv *natsserver.Server) {
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// openClusterLedger is openLedger for a gateway or a worker: the ledger is
// the node's follower copy; a gateway's ingest goes through a Submitter,
// and so do both roles' security events.
func (s *Server) openClusterLedger(ctx context.Context) error {
	start := time.Now()
	cn, err := startNode(ctx, s.cfg, s.ledgerOptions(), s.log, false)
	if err != nil {
		return err
	}
	if cn.sub, err = cluster.NewSubmitter(cn.nc, 0); err != nil {
		cn.stop()
		return err
	}
	s.cluster = cn
	s.ledger = cn.node.Ledger()
	if s.shared, err = openSharedIdentity(ctx, s.cfg, cn, s.log); err != nil {
		return err
	}
	role := s.cfg.clusterRole()
	s.metrics.Registry.MustRegister(clusterCollector{role: role, cn: cn})
	s.log.Info("cluster "+role, "nats", s.cfg.natsShown(), "name", s.cfg.nodeName(), "records", s.ledger.Next(),
		"derives", !s.cfg.Cluster.NoDerive, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// openSharedIdentity keeps the node's identity files (sharedIdentityFile)
// the same as every other node's, through the cluster's IdentityBucket.
func openSharedIdentity(ctx context.Context, cfg Config, cn *clusterNode, log *slog.Logger) (*cluster.SharedFiles, error) {
	js, err := jetstream.New(cn.nc)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	return cluster.OpenShared(sctx, js, cluster.SharedConfig{
		Dir: cfg.Data, Node: cfg.nodeName(), Roots: []string{"jwks", "identity"},
		Match: sharedIdentityFile, Last: []string{"jwks/ring.json"},
		Log: log.With("component", "shared identity"),
	})
}

// sharedIdentityFile reports whether a data directory's file (its path,
// slash-separated) is one that every node of a cluster shares: the token
// signing keys and their ring, the redaction key, the service accounts and
// the users. The bootstrap operator's credentials (identity/operator.json)
// stay on the node that made them.
func sharedIdentityFile(rel string) bool {
	dir, name := path.Split(rel)
	switch dir {
	case "jwks/":
		return name == "ring.json" || strings.HasSuffix(name, ".key")
	case "identity/":
		return name == redactKeyFile
	case "identity/accounts/", "identity/users/":
		return strings.HasSuffix(name, ".json")
	}
	return false
}

// sharedChange runs fn as a turn of the cluster's shared identity files,
// or at once outside a cluster.
func (s *Server) sharedChange(ctx context.Context, fn func(ctx context.Context) error) error {
	if s.shared == nil {
		return fn(ctx)
	}
	return s.shared.Change(ctx, fn)
}

// clusterStore is the gateway's ledger on a cluster gateway: reads from the
// node's copy, appends through the cluster. An answer waits until the
// copy holds the records it names, so that a client reads what it was
// told is stored from the gateway that told it.
type clusterStore struct {
	ledgerStore
	sub *cluster.Submitter
}

// workerStore is the gateway's ledger on a cluster worker: reads from the
// node's copy, and no appends (spans go to a gateway).
type workerStore struct {
	ledgerStore
}

func (workerStore) Append(context.Context, []ledger.Entry) ([]ledger.Result, error) {
	return nil, reply.NewProblem("misdirected", "this server is a cluster worker (cluster.role worker): it derives and serves reads, and takes no spans; send them to a gateway of the cluster")
}

// clusterRole is cluster.role, gateway when empty.
func (c *Config) clusterRole() string {
	if c.Cluster.Role == "" {
		return "gateway"
	}
	return c.Cluster.Role
}

// followWait bounds how long an answer waits for the gateway's copy.
const followWait = 10 * time.Second

func (c clusterStore) Append(ctx context.Context, entries []ledger.Entry) ([]ledger.Result, error) {
	res, err := c.sub.Append(ctx, entries)
	if err != nil {
		if errors.Is(err, cluster.ErrNoAnswer) {
			p := reply.NewProblem("no-answer", "%v", err)
			p.RetryAfter = time.Second
			return nil, p
		}
		if errors.Is(err, cluster.ErrIntegrator) {
			return nil, reply.NewProblem("unavailable", "%v", err)
		}
		return nil, err
	}
	var need uint64
	for _, r := range res {
		need = max(need, r.Receipt.Seq+1)
	}
	// Read-your-writes on this gateway: answer once its copy holds them
	// (or after followWait: the receipts are final either way).
	wctx, cancel := context.WithTimeout(ctx, followWait)
	defer cancel()
	_ = c.WaitNext(wctx, need)
	return res, nil
}

// RunIntegrator runs an integrator node (cluster.role integrator) until
// ctx is done: no HTTP API, a ledger on cfg.Data that integrates while it
// holds the lease. ready, if not nil, is called once the node's ledger is
// open, with the handler of the node's metrics (Prometheus text format).
func RunIntegrator(ctx context.Context, cfg Config, log *slog.Logger, ready func(metrics http.Handler)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return err
	}
	lcfg := cfg.Ledger.Config
	lcfg.Holder = "logline serve --role integrator"
	lcfg.Logger = log.With("component", "ledger")
	cn, err := startNode(ctx, cfg, lcfg, log, true)
	if err != nil {
		return err
	}
	// The integrator keeps a copy of the identity files too, so that
	// logline ledger verify on its data finds what the records describe.
	shared, err := openSharedIdentity(ctx, cfg, cn, log)
	if err != nil {
		cn.stop()
		return err
	}
	log.Info("cluster integrator", "nats", cfg.natsShown(), "name", cfg.nodeName(), "data", cfg.Data)
	if ready != nil {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			clusterCollector{role: "integrator", cn: cn})
		ready(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	}
	select {
	case <-ctx.Done():
		shared.Close()
		return cn.stop()
	case err := <-cn.done:
		shared.Close()
		cn.cancel()
		cn.nc.Close()
		shutdown(cn.srv)
		if err == nil {
			err = errors.New("cluster: the node stopped")
		}
		return err
	}
}

// syncCheckTimeout bounds the wait for the NATS servers' answers to the
// check of their sync_interval.
const syncCheckTimeout = 15 * time.Second

// checkSync refuses a NATS cluster whose servers acknowledge writes before
// syncing them (cluster.ErrNotDurable), asking them over
// cluster.system_nats; without it, it only warns that it cannot check.
func checkSync(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.Cluster.SystemNATS == "" {
		log.Warn("cannot check that the NATS servers sync every write before acknowledging it (jetstream sync_interval: always): set cluster.system_nats to a URL with the system account's credentials")
		return nil
	}
	sys, err := nats.Connect(cfg.Cluster.SystemNATS, nats.Name("logline "+cfg.nodeName()+" (sync check)"))
	if err != nil {
		return fmt.Errorf("cluster.system_nats: %w", err)
	}
	defer sys.Close()
	ctx, cancel := context.WithTimeout(ctx, syncCheckTimeout)
	defer cancel()
	if err := cluster.CheckSync(ctx, sys, cluster.DefaultReplicas); err != nil {
		return fmt.Errorf("cluster.system_nats: %w", err)
	}
	log.Info("every NATS server syncs each write before acknowledging it")
	return nil
}

// clusterCollector exports a cluster node's counters (and, on a gateway,
// its Submitter's) as metrics.
type clusterCollector struct {
	role string
	cn   *clusterNode
}

var (
	descClusterRole        = prometheus.NewDesc("logline_cluster_role", "1, with this server's role in the cluster (gateway, worker or integrator) as label.", []string{"role"}, nil)
	descClusterIntegrating = prometheus.NewDesc("logline_cluster_integrating", "1 while this node holds the lease and integrates, else 0.", nil, nil)
	descClusterEpoch       = prometheus.NewDesc("logline_cluster_epoch", "The lease's epoch this node last integrated under (0 if it never did).", nil, nil)
	descClusterLogSeq      = prometheus.NewDesc("logline_cluster_log_seq", "The last LEDGER_INTEGRATED message this node applied or wrote.", nil, nil)
	descClusterRecords     = prometheus.NewDesc("logline_cluster_ledger_records", "Records in this node's ledger.", nil, nil)
	descClusterLeases      = prometheus.NewDesc("logline_cluster_leases_total", "Times this node won the integrator's lease.", nil, nil)
	descClusterStepdowns   = prometheus.NewDesc("logline_cluster_stepdowns_total", "Integrations of this node that ended (lease lost, fenced, NATS failed).", nil, nil)
	descClusterApplied     = prometheus.NewDesc("logline_cluster_commits_applied_total", "Commits this node applied from LEDGER_INTEGRATED.", nil, nil)
	descClusterPublished   = prometheus.NewDesc("logline_cluster_commits_published_total", "Commits this node integrated and published to LEDGER_INTEGRATED.", nil, nil)
	descSubmitRequests     = prometheus.NewDesc("logline_cluster_submit_requests_total", "Appends this gateway sent through the cluster (ingest requests, and its own records).", nil, nil)
	descSubmitMessages     = prometheus.NewDesc("logline_cluster_submit_messages_total", "LEDGER_IN messages this gateway published (requests arriving together share one).", nil, nil)
	descSubmitNoAnswer     = prometheus.NewDesc("logline_cluster_submit_no_answer_total", "Appends no integrator answered in time (503 no-answer; the client sends them again).", nil, nil)
	descSubmitFailed       = prometheus.NewDesc("logline_cluster_submit_failed_total", "Appends that failed otherwise (the integrator refused them, a publish failed).", nil, nil)
)

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descClusterRole, descClusterIntegrating, descClusterEpoch, descClusterLogSeq, descClusterRecords,
		descClusterLeases, descClusterStepdowns, descClusterApplied, descClusterPublished} {
		ch <- d
	}
	if c.cn.sub != nil {
		for _, d := range []*prometheus.Desc{descSubmitRequests, descSubmitMessages, descSubmitNoAnswer, descSubmitFailed} {
			ch <- d
		}
	}
}

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	st := c.cn.node.Stats()
	gauge(descClusterRole, 1, c.role)
	integrating := uint64(0)
	if st.Integrating {
		integrating = 1
	}
	gauge(descClusterIntegrating, integrating)
	gauge(descClusterEpoch, st.Epoch)
	gauge(descClusterLogSeq, st.LogSeq)
	var records uint64
	if l := c.cn.node.Ledger(); l != nil {
		records = l.Next()
	}
	gauge(descClusterRecords, records)
	counter(descClusterLeases, st.Leases)
	counter(descClusterStepdowns, st.Stepdowns)
	counter(descClusterApplied, st.Applied)
	counter(descClusterPublished, st.Published)
	if c.cn.sub != nil {
		ss := c.cn.sub.Stats()
		counter(descSubmitRequests, ss.Requests)
		counter(descSubmitMessages, ss.Messages)
		counter(descSubmitNoAnswer, ss.NoAnswer)
		counter(descSubmitFailed, ss.Failed)
	}
}
