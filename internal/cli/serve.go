package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/server"
)

func newServeCmd(stdio Stdio) *cobra.Command {
	var (
		data, listen, config, logFormat, logLevel, addrFile, bundlePath, pprofAddr, backendName string
		natsURLs, role, nodeName, natsEmbedded, natsClusterListen                               string
		trust, natsRoutes                                                                       []string
		dev, readOnly, noDerive                                                                 bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the LogLineOS server",
		Long: `serve runs the gateway, the ledger and the derivation in one process, with
its data in --data (default ./data) and listening on --listen (default
127.0.0.1:8080).

Configuration comes from the embedded defaults, then a YAML file (--config or
LOGLINE_CONFIG), then environment variables named after the YAML keys
(LOGLINE_LIMITS_BODY_BYTES=32MiB), then flags.

--dev runs without login: every request acts as an administrator of the
tenant it names. It is for a laptop, never for production.

--backend wasm runs the span validators, the routers and the derivation's
event validators on the bundle's WebAssembly module (an operator's bundle
built with loglinec --backend wasm; the standard bundle's is compiled at
start); --backend shadow runs both it and the interpreter on every input,
keeps the interpreter's answer and counts each disagreement in
logline_runtime_divergence_total.

--nats URL[,URL...] runs the server in a cluster on NATS JetStream
(docs/cluster.md) as --role gateway (the default: the HTTP API, a ledger
following the cluster's, ingest through the cluster; --no-derive leaves
derivation to the workers), --role worker (the HTTP API but ingest: a ledger
following the cluster's, derived from) or --role integrator (no HTTP API: a
ledger that integrates while it holds the lease; the integrators create the
streams). Every integrator's data directory must
hold the cluster's ledger key (ledger/key, ledger/key.pub) before its first
start. --nats-embedded HOST:PORT runs a NATS server inside the process
(JetStream, its store under DATA/nats, every write synced before it is
acknowledged), --nats-cluster-listen and --nats-routes joining it to the
others': three such processes are a cluster with nothing else to run, and
--nats defaults to the embedded server. The cluster mode is new: see
docs/cluster.md for what it does not do yet.

One server at a time uses a data directory: a second one (or a command that
changes the directory, like ledger reindex) exits 1 naming the holder.

SIGTERM or SIGINT stops it gracefully: it stops accepting, drains requests in
flight, ends streams, and writes a final signed checkpoint.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := server.DefaultConfig()
			if config == "" {
				config = stdio.getenv("LOGLINE_CONFIG")
			}
			if config != "" {
				if err := cfg.LoadFile(config); err != nil {
					return usageErr("config: %v", err)
				}
			}
			if err := cfg.LoadEnv(stdio.getenv); err != nil {
				return usageErr("environment: %v", err)
			}
			f := cmd.Flags()
			set := func(name string, apply func()) {
				if f.Changed(name) {
					apply()
				}
			}
			set("data", func() { cfg.Data = data })
			set("listen", func() { cfg.Listen = listen })
			set("dev", func() { cfg.Dev = dev })
			set("log-format", func() { cfg.Log.Format = logFormat })
			set("log-level", func() { cfg.Log.Level = logLevel })
			set("bundle", func() { cfg.Bundle.Path = bundlePath })
			set("trust", func() { cfg.Bundle.Trust = trust })
			set("backend", func() { cfg.Bundle.Backend = backendName })
			set("read-only", func() { cfg.Ledger.ReadOnly = readOnly })
			set("nats", func() { cfg.Cluster.NATS = natsURLs })
			set("role", func() { cfg.Cluster.Role = role })
			set("no-derive", func() { cfg.Cluster.NoDerive = noDerive })
			set("name", func() { cfg.Cluster.Name = nodeName })
			set("nats-embedded", func() { cfg.Cluster.Embedded.Listen = natsEmbedded })
			set("nats-cluster-listen", func() { cfg.Cluster.Embedded.ClusterListen = natsClusterListen })
			set("nats-routes", func() { cfg.Cluster.Embedded.Routes = natsRoutes })
			if err := cfg.Validate(); err != nil {
				return usageErr("%v", strings.ReplaceAll(err.Error(), "\n", "; "))
			}
			if pprofAddr != "" {
				host, _, err := net.SplitHostPort(pprofAddr)
				if err != nil || !isLoopback(host) {
					return usageErr("--pprof %q: give a loopback address (127.0.0.1:PORT): profiles reveal the server's internals", pprofAddr)
				}
				go servePprof(pprofAddr, stdio)
			}
			if cfg.Cluster.Role == "integrator" {
				return runIntegrator(cmd.Context(), cfg, addrFile, stdio)
			}
			return runServe(cmd.Context(), cfg, addrFile, stdio)
		},
	}
	f, def := cmd.Flags(), server.DefaultConfig()
	f.StringVar(&data, "data", def.Data, "data directory")
	f.StringVar(&listen, "listen", def.Listen, "address to listen on (port 0 picks a free port)")
	f.StringVar(&config, "config", "", "YAML configuration file (env LOGLINE_CONFIG)")
	f.BoolVar(&dev, "dev", false, "development mode: no login, every request is an administrator of the tenant it names")
	f.StringVar(&logFormat, "log-format", def.Log.Format, "log format: text or json")
	f.StringVar(&logLevel, "log-level", def.Log.Level, "log level: debug, info, warn or error")
	f.StringVar(&addrFile, "addr-file", "", "write the address the server listens on to this file once it accepts connections")
	f.StringVar(&bundlePath, "bundle", "", "run this signed .lllb bundle instead of the standard one")
	f.StringSliceVar(&trust, "trust", nil, "public key file trusted to sign --bundle (repeatable)")
	f.StringVar(&backendName, "backend", def.Bundle.Backend, "run the span validators on eval (the interpreter), wasm (the bundle's WebAssembly module) or shadow (both, compared on every span)")
	f.StringVar(&pprofAddr, "pprof", "", "serve Go's profiling endpoints (/debug/pprof/) on this loopback address")
	f.StringVar(&natsURLs, "nats", "", "run in a cluster: the NATS cluster's URLs, comma-separated (docs/cluster.md)")
	f.StringVar(&role, "role", "", "the role in the cluster: gateway (default), worker or integrator")
	f.BoolVar(&noDerive, "no-derive", false, "a cluster gateway that leaves derivation to the workers (--role worker)")
	f.StringVar(&nodeName, "name", "", "the node's name in the cluster (default: the host name)")
	f.StringVar(&natsEmbedded, "nats-embedded", "", "run a NATS server in this process, its clients on this host:port (docs/cluster.md)")
	f.StringVar(&natsClusterListen, "nats-cluster-listen", "", "the embedded NATS server's route address (host:port)")
	f.StringSliceVar(&natsRoutes, "nats-routes", nil, "the other embedded NATS servers' routes (nats-route://host:port; comma-separated or repeated)")
	f.BoolVar(&readOnly, "read-only", false, "open the ledger read-only (salvage after damage): reads serve what is readable, ingest answers 503")
	return cmd
}

const devBanner = `
  ************************************************************************
  *  DEVELOPMENT MODE (--dev): THERE IS NO LOGIN.                         *
  *  Every request acts as an administrator of the tenant it names.       *
  *  Use it on a laptop only. Never expose this server to a network.      *
  ************************************************************************

`

func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runIntegrator runs a cluster's integrator node until SIGINT or SIGTERM,
// serving only /healthz, /readyz and /metrics on --listen (and writing
// --addr-file once it is running).
func runIntegrator(parent context.Context, cfg server.Config, addrFile string, stdio Stdio) error {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := newLogger(stdio.Err, cfg.Log.Format, cfg.Log.Level)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	var ready atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok","role":"integrator"}`+"\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			reply.WriteProblem(w, r, reply.NewProblem("unavailable", "the integrator's ledger is not open yet"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ready","role":"integrator"}`+"\n")
	})
	var metrics atomic.Pointer[http.Handler]
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		h := metrics.Load()
		if h == nil {
			reply.WriteProblem(w, r, reply.NewProblem("unavailable", "the integrator's ledger is not open yet"))
			return
		}
		(*h).ServeHTTP(w, r)
	})
	srv := cfg.HTTPServer(mux, log.New(&slogWriter{logger.With("component", "http")}, "", 0))
	go srv.Serve(ln)
	defer srv.Close()
	err = server.RunIntegrator(ctx, cfg, logger, func(h http.Handler) {
		metrics.Store(&h)
		ready.Store(true)
		if addrFile != "" {
			if err := os.WriteFile(addrFile+".tmp", []byte(ln.Addr().String()+"\n"), 0o644); err == nil {
				os.Rename(addrFile+".tmp", addrFile)
			}
		}
	})
	logger.Info("stopped", "err", err)
	return err
}

func runServe(parent context.Context, cfg server.Config, addrFile string, stdio Stdio) error {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := newLogger(stdio.Err, cfg.Log.Format, cfg.Log.Level)
	if cfg.Dev {
		fmt.Fprint(stdio.Err, devBanner)
		if host, _, _ := net.SplitHostPort(cfg.Listen); !isLoopback(host) {
			logger.Warn("--dev is listening beyond this machine: anyone who can reach it is an administrator", "listen", cfg.Listen)
		}
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	scheme := "http"
	if cfg.TLS.Cert != "" {
		scheme = "https"
	}
	addr := ln.Addr().String()

	// Until the ledger is recovered, /healthz answers and everything else
	// says the server is starting.
	var handler atomic.Pointer[http.Handler]
	starting := startingHandler()
	handler.Store(&starting)
	srv := cfg.HTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }),
		log.New(&slogWriter{logger.With("component", "http")}, "", 0))
	serveErr := make(chan error, 1)
	go func() {
		var err error
		if cfg.TLS.Cert != "" {
			err = srv.ServeTLS(ln, cfg.TLS.Cert, cfg.TLS.Key)
		} else {
			err = srv.Serve(ln)
		}
		serveErr <- err
	}()
	logger.Info("listening", "url", scheme+"://"+addr, "data", cfg.Data, "dev", cfg.Dev)

	s, err := server.Open(ctx, cfg, logger)
	if err != nil {
		srv.Close()
		return err
	}
	var h http.Handler = s.Handler()
	handler.Store(&h)
	if addrFile != "" {
		if err := os.WriteFile(addrFile+".tmp", []byte(addr+"\n"), 0o644); err == nil {
			os.Rename(addrFile+".tmp", addrFile)
		}
	}
	logger.Info("ready", "url", scheme+"://"+addr, "records", s.Ledger().Next())

	select {
	case <-ctx.Done():
		logger.Info("shutting down: draining requests")
	case err := <-serveErr:
		logger.Error("server stopped", "err", err)
		s.Close()
		return err
	}
	s.BeginShutdown()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Shutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("drain cut short", "err", err)
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	c := s.Ledger().Checkpoint()
	if c != nil {
		logger.Info("stopped", "checkpoint_size", c.Size, "root", c.Root)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func startingHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"status":"ok"}` + "\n"))
			return
		}
		p := reply.NewProblem("unavailable", "starting: recovering the ledger")
		p.RetryAfter = time.Second
		reply.WriteProblem(w, r, p)
	})
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// slogWriter adapts net/http's error log to slog.
type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	w.l.Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}

// servePprof serves net/http/pprof's handlers on their own listener.
func servePprof(addr string, stdio Stdio) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintf(stdio.Err, "logline: --pprof: %v\n", err)
	}
}
