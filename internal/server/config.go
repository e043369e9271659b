package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/loglineos/loglineos/internal/bytesize"
	"github.com/loglineos/loglineos/internal/gateway"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/backend"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/runtime"
	"github.com/loglineos/loglineos/internal/suggest"
	"github.com/loglineos/loglineos/internal/tenant"
)

// Config is the server's configuration. DefaultConfig gives the embedded
// defaults; a YAML file (--config), environment variables (LOGLINE_...) and
// flags override it, in that order. Every field's YAML name is also its
// environment variable: limits.body_bytes is LOGLINE_LIMITS_BODY_BYTES.
type Config struct {
	Data   string `yaml:"data"`
	Listen string `yaml:"listen"`
	// Dev runs without login: every request acts as an administrator of the
	// tenant it names. For a laptop, never for production.
	Dev bool `yaml:"dev"`
	// Production refuses to start without TLS unless TrustedProxyTLS says
	// TLS ends at a proxy in front of the server.
	Production      bool `yaml:"production"`
	TrustedProxyTLS bool `yaml:"trusted_proxy_tls"`

	Log struct {
		Format string `yaml:"format"` // text or json
		Level  string `yaml:"level"`  // debug, info, warn, error
	} `yaml:"log"`

	// Limits, Stream and Overload are the gateway's (their defaults are
	// gateway.DefaultLimitsConfig, DefaultStreamConfig and
	// DefaultOverloadConfig). Overload bounds the work in flight on the
	// server (503 past it) and each client's share of it (429 past it): a
	// client is a principal, or a remote address before authentication.
	Limits   gateway.LimitsConfig   `yaml:"limits"`
	Stream   gateway.StreamConfig   `yaml:"stream"`
	Overload gateway.OverloadConfig `yaml:"overload"`

	// Runtime is what the bundle's routers may do on this server. Caps are
	// the host calls it allows (none by default): a bundle whose caps_allow
	// asks for another is refused at start, and each tenant allows its own
	// in its file (runtime.caps). The rest tunes the delivery of queued
	// actions (webhooks, appends); their defaults are runtime.Default*.
	Runtime struct {
		Caps           []string      `yaml:"caps"`
		Workers        int           `yaml:"workers"`
		Timeout        time.Duration `yaml:"timeout"`
		MaxAttempts    int           `yaml:"max_attempts"`
		Backoff        time.Duration `yaml:"backoff"`
		MaxBackoff     time.Duration `yaml:"max_backoff"`
		QueuePerTenant int           `yaml:"queue_per_tenant"`
		// KVQuota bounds the bytes of keys and values of each tenant's
		// key-value store (kv.set).
		KVQuota bytesize.Size `yaml:"kv_quota"`
		// EvalTimeout is the deadline of one router evaluation; one that
		// runs past it fails alone (counted, logged).
		EvalTimeout time.Duration `yaml:"eval_timeout"`
		// WebhookInBytes bounds the body of a webhook in (read before its
		// signature can be checked); limits.body_bytes bounds it too.
		WebhookInBytes bytesize.Size `yaml:"webhook_in_bytes"`
		// Trace appends a trace of every router evaluation to
		// <data>/runtime/trace.ndjson, for loglinerun --replay.
		Trace bool `yaml:"trace"`
	} `yaml:"runtime"`

	Timeouts struct {
		ReadHeader time.Duration `yaml:"read_header"`
		Read       time.Duration `yaml:"read"`
		Write      time.Duration `yaml:"write"`
		Idle       time.Duration `yaml:"idle"`
		Shutdown   time.Duration `yaml:"shutdown"`
	} `yaml:"timeouts"`

	// Ledger is the ledger's own configuration (its YAML names: origin,
	// segment_bytes, check_at_open …; a zero takes the ledger's default,
	// except check_at_open, where 0 checks nothing at open and leaves
	// every record to the scrubber), with how the server scrubs it:
	// every record is checked in the background at ScrubRate (0: never),
	// after the start unless the open checked them all, then every
	// ScrubEvery.
	Ledger struct {
		ledger.Config `yaml:",inline"`
		ScrubRate     bytesize.Size `yaml:"scrub_rate"`
		ScrubEvery    time.Duration `yaml:"scrub_every"`
	} `yaml:"ledger"`

	// Derive tunes the neutral cycle: the clock tick records the server
	// appends (0 turns them off), the derivation backlog past which ingest
	// is held back (per the tenant's derived_events_perf.on_overload), and
	// how often cfg/tenants is read.
	Derive struct {
		TickInterval       time.Duration `yaml:"tick_interval"`
		MaxBacklog         uint64        `yaml:"max_backlog"`
		SlowIngestWait     time.Duration `yaml:"slow_ingest_wait"`
		TenantScanInterval time.Duration `yaml:"tenant_scan_interval"`
		// BackgroundShare is the share of time derivation takes while ingest
		// is busy and derivation is less than half of max_backlog behind.
		BackgroundShare float64 `yaml:"background_share"`
	} `yaml:"derive"`

	// Bundle is a signed .lllb to run instead of the standard bundle, with
	// the public keys trusted to sign it.
	Bundle struct {
		Path  string   `yaml:"path"`
		Trust []string `yaml:"trust"`
		// Backend runs the span validators, the routers and the
		// derivation's event validators on eval (the interpreter), wasm
		// (the bundle's WebAssembly module) or shadow (both, every
		// input, divergences counted in logline_runtime_divergence_total
		// and logged). An operator's bundle needs a module for wasm and
		// shadow (loglinec --backend wasm); the standard bundle's is
		// compiled at start from its signed IR.
		Backend string `yaml:"backend"`
	} `yaml:"bundle"`

	// Cluster, with NATS set, runs this server in a cluster on NATS
	// JetStream (docs/cluster.md). Role gateway serves the HTTP API: its
	// ledger follows the cluster's integrated log (reads), and ingest
	// publishes to the cluster and answers with the integrator's receipts;
	// routers do not run on a gateway. Role worker serves the same API but
	// ingest: its ledger follows the log and it derives from it (the
	// derived streams, trajectories and quality), so that derivation and
	// its readers can be moved off the gateways (NoDerive). Role integrator
	// serves no API: it keeps a ledger and integrates while it holds the
	// lease.
	Cluster struct {
		NATS string `yaml:"nats"` // comma-separated URLs of the NATS cluster
		Role string `yaml:"role"` // gateway (the default), worker or integrator
		// NoDerive makes a gateway leave derivation to the workers: it
		// derives nothing, its derived endpoints answer 503 unavailable,
		// and ingest is never held back by a derivation backlog.
		NoDerive bool `yaml:"no_derive"`
		// Name names the node (its lease holder); the host name when empty.
		Name string `yaml:"name"`
		// SystemNATS is a URL of the NATS cluster with the system
		// account's credentials (nats://user:password@host:4222): an
		// integrator then asks every server at start whether it syncs each
		// write before acknowledging it (sync_interval: always) and refuses
		// to start if one does not. Without it the integrator cannot check
		// and says so in its log.
		SystemNATS string `yaml:"system_nats"`
		// Token is the cluster's NATS secret (environment
		// LOGLINE_CLUSTER_TOKEN): the embedded NATS servers require it of
		// every client and route, and this node presents it to the NATS
		// servers it connects to (an external cluster configured with the
		// same token; or leave it empty and put credentials in the
		// cluster.nats URLs). The servers hold the ledger's inbound spans
		// and the cluster's identity (token signing keys): without it,
		// whoever reaches an embedded server's port can read and write
		// them. At least 32 characters.
		Token string `yaml:"token"`
		// Embedded runs a NATS server inside this process (JetStream,
		// file storage under DATA/nats, sync_interval: always): three
		// processes whose servers route to each other make the cluster,
		// and cluster.nats defaults to this server.
		Embedded struct {
			// Listen is the embedded server's client address
			// (host:port); empty: none embedded.
			Listen string `yaml:"listen"`
			// ClusterListen is the address of its routes (host:port).
			ClusterListen string `yaml:"cluster_listen"`
			// Routes are the other servers' route URLs
			// (nats-route://host:port).
			Routes []string `yaml:"routes"`
		} `yaml:"embedded"`
	} `yaml:"cluster"`

	TLS struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	} `yaml:"tls"`

	CORS struct {
		Origins []string `yaml:"origins"`
	} `yaml:"cors"`

	// Auth is identity's configuration: the keys of its section are the
	// fields of identity.Config with a YAML key (issuer, audience,
	// rotate_every, oidc.client_id ...); Open sets the rest.
	Auth identity.Config `yaml:"auth"`
}

// DefaultConfig returns the embedded defaults: data in ./data, listening on
// 127.0.0.1:8080. The sections of other packages take their defaults from
// them; what is set here is the server's own choice.
func DefaultConfig() Config {
	var c Config
	c.Data = "./data"
	c.Listen = "127.0.0.1:8080"
	c.Log.Format = "text"
	c.Log.Level = "info"
	c.Limits = gateway.DefaultLimitsConfig()
	c.Stream = gateway.DefaultStreamConfig()
	c.Overload = gateway.DefaultOverloadConfig()
	c.Timeouts.ReadHeader = 10 * time.Second
	c.Timeouts.Read = 2 * time.Minute
	c.Timeouts.Write = 2 * time.Minute
	c.Timeouts.Idle = 2 * time.Minute
	c.Timeouts.Shutdown = 30 * time.Second
	c.Ledger.CheckpointInterval = time.Second // a server checkpoints more often than the ledger's default
	c.Ledger.Preallocate = ledger.DefaultPreallocate
	c.Ledger.CheckAtOpen = ledger.DefaultCheckAtOpen
	c.Ledger.ScrubRate = 32 << 20
	c.Ledger.ScrubEvery = 24 * time.Hour
	c.Bundle.Backend = string(backend.Eval)
	c.Runtime.Caps = []string{}
	c.Runtime.Workers = runtime.DefaultWorkers
	c.Runtime.Timeout = runtime.DefaultTimeout
	c.Runtime.MaxAttempts = runtime.DefaultMaxAttempts
	c.Runtime.Backoff = runtime.DefaultBackoff
	c.Runtime.MaxBackoff = runtime.DefaultMaxBackoff
	c.Runtime.QueuePerTenant = runtime.DefaultQueuePerTenant
	c.Runtime.KVQuota = runtime.DefaultKVQuota
	c.Runtime.WebhookInBytes = 256 << 10
	c.Runtime.EvalTimeout = eval.DefaultTimeout
	c.Derive.TickInterval = time.Minute
	c.Derive.MaxBacklog = 1_000_000
	c.Derive.SlowIngestWait = 5 * time.Second
	c.Derive.TenantScanInterval = tenant.DefaultScanInterval
	c.Derive.BackgroundShare = 0.25
	c.Auth.Audience = "logline"
	return c
}

// LoadFile overlays a YAML file on c. Unknown keys are errors, reported
// with their line.
func (c *Config) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// LoadEnv overlays environment variables named after the YAML keys:
// LOGLINE_LIMITS_BODY_BYTES=32MiB. Lists are comma-separated.
func (c *Config) LoadEnv(getenv func(string) string) error {
	return walkEnv(reflect.ValueOf(c).Elem(), "LOGLINE", getenv)
}

func walkEnv(v reflect.Value, prefix string, getenv func(string) string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		fv := v.Field(i)
		if opts == "inline" && f.Type.Kind() == reflect.Struct {
			// An embedded section (the ledger's Config): its keys are the
			// section's own.
			if err := walkEnv(fv, prefix, getenv); err != nil {
				return err
			}
			continue
		}
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		if f.Type.Kind() == reflect.Struct {
			if err := walkEnv(fv, name, getenv); err != nil {
				return err
			}
			continue
		}
		s := getenv(name)
		if s == "" {
			continue
		}
		if err := setFromString(fv, s); err != nil {
			return fmt.Errorf("%s=%q: %w", name, s, err)
		}
	}
	return nil
}

func setFromString(v reflect.Value, s string) error {
	switch v.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	case bytesize.Size:
		b, err := bytesize.Parse(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(b))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetFloat(f)
	case reflect.Slice:
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("cannot set a %s from the environment", v.Kind())
	}
	return nil
}

// Validate checks the configuration as a whole.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Data == "" {
		bad("data: empty")
	}
	for _, cp := range c.Runtime.Caps {
		if !slices.Contains(abi.Caps(), cp) {
			bad("runtime.caps: unknown capability %q%s (known: %s)", cp, suggest.DidYouMean(cp, abi.Caps()), strings.Join(abi.Caps(), ", "))
		}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen %q: %v", c.Listen, err)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format %q: want text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level %q: want debug, info, warn or error", c.Log.Level)
	}
	if c.Limits.BodyBytes <= 0 || c.Limits.LineBytes <= 0 || c.Limits.LinesPerRequest <= 0 || c.Limits.JSONDepth <= 0 || c.Limits.Members <= 0 {
		bad("limits: every limit must be positive")
	}
	if c.Limits.HeaderBytes <= 0 || c.Limits.UnauthBodyBytes <= 0 || c.Limits.BodyGrace <= 0 || c.Limits.BodyMinRate <= 0 {
		bad("limits: header_bytes, unauth_body_bytes, body_grace and body_min_rate must be positive")
	}
	if c.Runtime.EvalTimeout <= 0 {
		bad("runtime.eval_timeout must be positive")
	}
	if c.Runtime.WebhookInBytes <= 0 {
		bad("runtime.webhook_in_bytes must be positive")
	}
	if c.Runtime.KVQuota <= 0 || c.Runtime.KVQuota > 1<<30 {
		bad("runtime.kv_quota (%s) must be positive and at most 1GiB", c.Runtime.KVQuota)
	}
	if c.Limits.HeaderBytes > maxHeaderBytes {
		bad("limits.header_bytes (%s) exceeds %s", c.Limits.HeaderBytes, bytesize.Size(maxHeaderBytes))
	}
	if o := c.Overload; o.MaxClientRequests > o.MaxInflightRequests || o.MaxClientBytes > o.MaxInflightBytes ||
		o.MaxTenantStreams > o.MaxStreams || o.MaxClientStreams > o.MaxTenantStreams || o.MaxTenantDryRuns > o.MaxDryRuns {
		bad("overload: a client's or tenant's share exceeds the whole (max_client_requests <= max_inflight_requests, max_client_bytes <= max_inflight_bytes, max_client_streams <= max_tenant_streams <= max_streams, max_tenant_dry_runs <= max_dry_runs)")
	}
	if c.Limits.LineBytes > c.Limits.BodyBytes {
		bad("limits.line_bytes (%s) exceeds limits.body_bytes (%s)", c.Limits.LineBytes, c.Limits.BodyBytes)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls: give both cert and key")
	}
	if c.Production && c.TLS.Cert == "" && !c.TrustedProxyTLS {
		bad("production: refusing to serve without TLS; set tls.cert and tls.key, or trusted_proxy_tls if TLS ends at a proxy in front")
	}
	if c.Production && c.Dev {
		bad("production and dev exclude each other")
	}
	if c.Derive.BackgroundShare < 0 || c.Derive.BackgroundShare > 1 {
		bad("derive.background_share %v: want a fraction between 0 and 1", c.Derive.BackgroundShare)
	}
	if _, err := backend.ParseKind(c.Bundle.Backend); err != nil {
		bad("bundle.backend: %q: want eval, wasm or shadow", c.Bundle.Backend)
	}
	switch c.Cluster.Role {
	case "", "gateway", "worker", "integrator":
	default:
		bad("cluster.role: %q: want gateway, worker or integrator", c.Cluster.Role)
	}
	if c.Cluster.NoDerive && (!c.Clustered() || c.Cluster.Role != "" && c.Cluster.Role != "gateway") {
		bad("cluster.no_derive is for a cluster's gateways (derivation then runs on its workers, cluster.role worker)")
	}
	if c.Cluster.Role != "" && !c.Clustered() {
		bad("cluster.role %s needs cluster.nats (the NATS cluster's URLs) or cluster.embedded.listen", c.Cluster.Role)
	}
	if e := c.Cluster.Embedded; e.Listen == "" && (e.ClusterListen != "" || len(e.Routes) > 0) {
		bad("cluster.embedded.cluster_listen and routes need cluster.embedded.listen (the embedded NATS server's client address)")
	}
	if t := c.Cluster.Token; t != "" && len(t) < minClusterToken {
		bad("cluster.token: %d characters; at least %d (openssl rand -hex 32)", len(t), minClusterToken)
	}
	if c.Clustered() && c.Ledger.ReadOnly {
		bad("cluster.nats with ledger.read_only: a cluster node's ledger follows the cluster")
	}
	if c.Bundle.Path != "" && len(c.Bundle.Trust) == 0 {
		bad("bundle.path given without bundle.trust: name the public keys allowed to sign it")
	}
	return errors.Join(errs...)
}

// maxHeaderBytes is the http.Server's MaxHeaderBytes. The gateway enforces
// limits.header_bytes itself, answering problem+json; net/http's own bound
// lies this far above, and past it net/http answers 431 in plain text.
const maxHeaderBytes = 1 << 20

// HTTPServer returns the http.Server that serves h with c's timeouts and
// header bound; errLog (which may be nil) receives net/http's own errors.
func (c *Config) HTTPServer(h http.Handler, errLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.Timeouts.ReadHeader,
		ReadTimeout:       c.Timeouts.Read,
		WriteTimeout:      c.Timeouts.Write,
		IdleTimeout:       c.Timeouts.Idle,
		MaxHeaderBytes:    int(c.Limits.HeaderBytes) + maxHeaderBytes,
		ErrorLog:          errLog,
	}
}

// minClusterToken is the shortest cluster.token taken.
const minClusterToken = 32

// Clustered reports whether the server runs in a cluster (cluster.nats, or
// an embedded NATS server).
func (c *Config) Clustered() bool { return c.Cluster.NATS != "" || c.Cluster.Embedded.Listen != "" }

// natsShown is natsURLs for logs and errors: passwords in the URLs are
// shown as "xxxxx".
func (c *Config) natsShown() string {
	urls := strings.Split(c.natsURLs(), ",")
	for i, raw := range urls {
		u, err := url.Parse(strings.TrimSpace(raw))
		switch {
		case err != nil:
			urls[i] = "(an unreadable URL)"
		case u.User == nil:
		case !hasPassword(u.User):
			u.User = url.User("xxxxx") // a token in the user's place
			urls[i] = u.String()
		default:
			urls[i] = u.Redacted()
		}
	}
	return strings.Join(urls, ",")
}

func hasPassword(u *url.Userinfo) bool {
	_, ok := u.Password()
	return ok
}

// natsURLs is cluster.nats, or the embedded server's URL.
func (c *Config) natsURLs() string {
	if c.Cluster.NATS != "" {
		return c.Cluster.NATS
	}
	return "nats://" + c.Cluster.Embedded.Listen
}
