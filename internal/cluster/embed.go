package cluster

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedConfig configures a NATS server run inside a logline process,
// so that three logline processes make a three-node NATS JetStream cluster
// without another program (docs/cluster.md).
type EmbeddedConfig struct {
	// Name is the server's name in the NATS cluster (unique).
	Name string
	// Dir is JetStream's store.
	Dir string
	// Listen is the host:port clients (the logline nodes) connect to.
	Listen string
	// ClusterListen is the host:port the other servers' routes connect
	// to; empty for a server alone.
	ClusterListen string
	// Routes are the other servers' route URLs (nats-route://host:port).
	Routes []string
	// Token, when not empty, is required of every client (as its token)
	// and of every route (as the password of the user EmbeddedRouteUser);
	// the routes to the others present it.
	Token string
}

// EmbeddedRouteUser is the user name the embedded servers' routes
// authenticate with (the password is the token).
const EmbeddedRouteUser = "logline"

// EmbeddedClusterName is the NATS cluster name embedded servers share.
const EmbeddedClusterName = "logline"

// StartEmbedded starts a NATS server with JetStream on file storage that
// syncs every write before acknowledging it (sync_interval: always), and
// returns once it accepts connections. Shut it down with Shutdown.
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	host, port, err := hostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded NATS listen %q: %w", cfg.Listen, err)
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       host,
		Port:       port,
		NoLog:      true,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   cfg.Dir,
		SyncAlways: true,
	}
	if cfg.Token != "" {
		opts.Authorization = cfg.Token
	}
	if cfg.ClusterListen != "" {
		ch, cp, err := hostPort(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("cluster: embedded NATS cluster listen %q: %w", cfg.ClusterListen, err)
		}
		opts.Cluster = server.ClusterOpts{Name: EmbeddedClusterName, Host: ch, Port: cp}
		if cfg.Token != "" {
			opts.Cluster.Username, opts.Cluster.Password = EmbeddedRouteUser, cfg.Token
		}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil || u.Scheme != "nats-route" || u.Host == "" {
				return nil, fmt.Errorf("cluster: embedded NATS route %q: want nats-route://HOST:PORT", r)
			}
			if cfg.Token != "" && u.User == nil {
				u.User = url.UserPassword(EmbeddedRouteUser, cfg.Token)
			}
			opts.Routes = append(opts.Routes, u)
		}
	} else if len(cfg.Routes) > 0 {
		return nil, fmt.Errorf("cluster: embedded NATS routes need a cluster listen address")
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded NATS: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("cluster: the embedded NATS server did not start listening on %s", cfg.Listen)
	}
	return s, nil
}

func hostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, n, nil
}
