package server

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/bytesize"
	"go.yaml.in/yaml/v3"
)

func TestConfigLayers(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "logline.yaml")
	os.WriteFile(file, []byte("listen: 127.0.0.1:9000\nlimits:\n  body_bytes: 32MiB\n  future_skew: 10m\nstream:\n  flush_objects: 7\n"), 0o644)
	c := DefaultConfig()
	if err := c.LoadFile(file); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LOGLINE_LISTEN": "127.0.0.1:9001", "LOGLINE_LIMITS_LINE_BYTES": "128KiB", "LOGLINE_CORS_ORIGINS": "https://a.example, https://b.example", "LOGLINE_DEV": "true"}
	if err := c.LoadEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9001" || c.Limits.BodyBytes != 32<<20 || c.Limits.LineBytes != 128<<10 || c.Limits.FutureSkew != 10*time.Minute ||
		c.Stream.FlushObjects != 7 || !c.Dev || len(c.CORS.Origins) != 2 || c.Data != "./data" {
		t.Fatalf("layers not applied in order: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, env, want string
	}{
		{"unknown key", "limits:\n  body_byte: 1\n", "", "field body_byte not found"},
		{"bad size", "limits:\n  body_bytes: lots\n", "", "bad size"},
		{"size past int64", "limits:\n  body_bytes: 8589934592GiB\n", "", "bad size"},
		{"size past int64 in the environment", "", "LOGLINE_LEDGER_SCRUB_RATE=9223372036854775807KiB", "bad size"},
		{"bad duration", "limits:\n  future_skew: soon\n", "", "duration"},
		{"bad env", "", "LOGLINE_LIMITS_LINES_PER_REQUEST=many", "LOGLINE_LIMITS_LINES_PER_REQUEST"},
		{"production without TLS", "production: true\n", "", "refusing to serve without TLS"},
		{"half TLS", "tls:\n  cert: c.pem\n", "", "give both cert and key"},
		{"dev in production", "production: true\ndev: true\ntrusted_proxy_tls: true\n", "", "exclude each other"},
		{"bundle without trust", "bundle:\n  path: x.lllb\n", "", "bundle.trust"},
		{"bad listen", "listen: nowhere\n", "", "listen"},
		{"line over body", "limits:\n  body_bytes: 1KiB\n  line_bytes: 2KiB\n", "", "exceeds limits.body_bytes"},
		{"client share over the whole", "overload:\n  max_inflight_bytes: 1MiB\n  max_client_bytes: 2MiB\n", "", "share exceeds the whole"},
		{"tenant streams over the whole", "overload:\n  max_streams: 8\n", "", "share exceeds the whole"},
		{"zero body rate", "limits:\n  body_min_rate: 0\n", "", "body_min_rate"},
		{"header limit past net/http's", "limits:\n  header_bytes: 2MiB\n", "", "limits.header_bytes"},
		{"unknown cluster role", "cluster:\n  nats: nats://127.0.0.1:4222\n  role: deriver\n", "", "want gateway, worker or integrator"},
		{"no_derive without a cluster", "cluster:\n  no_derive: true\n", "", "cluster.no_derive is for a cluster's gateways"},
		{"no_derive on a worker", "cluster:\n  nats: nats://127.0.0.1:4222\n  role: worker\n  no_derive: true\n", "", "cluster.no_derive is for a cluster's gateways"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			file := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(file, []byte(tc.yaml), 0o644)
			err := c.LoadFile(file)
			if err == nil && tc.env != "" {
				k, v, _ := strings.Cut(tc.env, "=")
				err = c.LoadEnv(func(s string) string {
					if s == k {
						return v
					}
					return ""
				})
			}
			if err == nil {
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	// Production behind a TLS-terminating proxy is allowed when said so.
	c := DefaultConfig()
	c.Production, c.TrustedProxyTLS = true, true
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestConfigKeys: the configuration's YAML keys and environment variables
// are these, whichever package a section's type comes from; a key is
// never renamed or dropped (deployed files and units name them).
func TestConfigKeys(t *testing.T) {
	want := []string{"auth.audience", "auth.issuer", "auth.oidc.client_id", "auth.oidc.client_secret", "auth.oidc.hosted_domain", "auth.oidc.issuer", "auth.oidc.redirect_url", "auth.rotate_every", "bundle.backend", "bundle.path", "bundle.trust", "cluster.embedded.cluster_listen", "cluster.embedded.listen", "cluster.embedded.routes", "cluster.name", "cluster.nats", "cluster.no_derive", "cluster.role", "cluster.system_nats", "cluster.token", "cors.origins", "data", "derive.background_share", "derive.max_backlog", "derive.slow_ingest_wait", "derive.tenant_scan_interval", "derive.tick_interval", "dev", "ledger.check_at_open", "ledger.checkpoint_every", "ledger.checkpoint_interval", "ledger.max_batch_bytes", "ledger.max_batch_entries", "ledger.max_delay", "ledger.origin", "ledger.preallocate", "ledger.read_only", "ledger.scrub_every", "ledger.scrub_rate", "ledger.segment_bytes", "limits.body_bytes", "limits.body_grace", "limits.body_min_rate", "limits.future_skew", "limits.header_bytes", "limits.json_depth", "limits.line_bytes", "limits.lines_per_request", "limits.members", "limits.unauth_body_bytes", "listen", "log.format", "log.level", "overload.max_client_bytes", "overload.max_client_requests", "overload.max_client_streams", "overload.max_dry_runs", "overload.max_inflight_bytes", "overload.max_inflight_requests", "overload.max_streams", "overload.max_tenant_dry_runs", "overload.max_tenant_streams", "overload.retry_after", "production", "runtime.backoff", "runtime.caps", "runtime.eval_timeout", "runtime.kv_quota", "runtime.max_attempts", "runtime.max_backoff", "runtime.queue_per_tenant", "runtime.timeout", "runtime.trace", "runtime.webhook_in_bytes", "runtime.workers", "stream.flush_interval", "stream.flush_objects", "stream.ws_max_lag", "stream.ws_write_timeout", "timeouts.idle", "timeouts.read", "timeouts.read_header", "timeouts.shutdown", "timeouts.write", "tls.cert", "tls.key", "trusted_proxy_tls"}
	var wantEnv []string
	for _, k := range want {
		wantEnv = append(wantEnv, "LOGLINE_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_")))
	}

	// Every key of the defaults, written out and read back strictly.
	c := DefaultConfig()
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			got = append(got, prefix)
			return
		}
		for k, x := range m {
			if prefix != "" {
				k = prefix + "." + k
			}
			walk(k, x)
		}
	}
	walk("", doc)
	slices.Sort(got)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("YAML keys (-want +got):\n%s", d)
	}
	file := filepath.Join(t.TempDir(), "all.yaml")
	os.WriteFile(file, b, 0o644)
	back := DefaultConfig()
	if err := back.LoadFile(file); err != nil {
		t.Errorf("the defaults written out do not load: %v", err)
	}

	// Every key's environment variable is read.
	var asked []string
	if err := c.LoadEnv(func(name string) string { asked = append(asked, name); return "" }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(asked)
	slices.Sort(wantEnv)
	if d := cmp.Diff(wantEnv, asked); d != "" {
		t.Errorf("environment variables (-want +got):\n%s", d)
	}
}

// TestEveryKeyFromEnv: every key of the configuration file can be set from
// the environment too (derive.background_share, a fraction, could not).
func TestEveryKeyFromEnv(t *testing.T) {
	sample := func(t reflect.Type) string {
		switch t {
		case reflect.TypeFor[time.Duration]():
			return "1500ms"
		case reflect.TypeFor[bytesize.Size]():
			return "2KiB"
		}
		switch t.Kind() {
		case reflect.Bool:
			return "true"
		case reflect.Float32, reflect.Float64:
			return "0.25"
		case reflect.Slice:
			return "a, b"
		case reflect.String:
			return "x"
		}
		return "7"
	}
	var walk func(v reflect.Value, name string)
	n := 0
	walk = func(v reflect.Value, name string) {
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if opts == "inline" && f.Type.Kind() == reflect.Struct {
				walk(v.Field(i), name)
				continue
			}
			if tag == "" || tag == "-" {
				continue
			}
			key := name + "_" + strings.ToUpper(tag)
			if f.Type.Kind() == reflect.Struct {
				walk(v.Field(i), key)
				continue
			}
			n++
			in := sample(f.Type)
			c := DefaultConfig()
			if err := c.LoadEnv(func(k string) string {
				if k == key {
					return in
				}
				return ""
			}); err != nil {
				t.Errorf("%s=%s: %v", key, in, err)
			}
		}
	}
	walk(reflect.ValueOf(DefaultConfig()), "LOGLINE")
	if n < 50 {
		t.Fatalf("walked %d keys: the walk missed the configuration's sections", n)
	}
	c := DefaultConfig()
	if err := c.LoadEnv(func(k string) string {
		if k == "LOGLINE_DERIVE_BACKGROUND_SHARE" {
			return "0.05"
		}
		return ""
	}); err != nil || c.Derive.BackgroundShare != 0.05 {
		t.Errorf("LOGLINE_DERIVE_BACKGROUND_SHARE=0.05: %v, %v", c.Derive.BackgroundShare, err)
	}
}

// TestNATSShown: a password in cluster.nats never reaches a log line or an
// error.
func TestNATSShown(t *testing.T) {
	var c Config
	c.Cluster.NATS = "nats://ops:s3cret@n1:4222,nats://n2:4222, nats://tok3n@n3:4222"
	got := c.natsShown()
	if strings.Contains(got, "s3cret") || strings.Contains(got, "tok3n") || !strings.Contains(got, "nats://ops:xxxxx@n1:4222") || !strings.Contains(got, "nats://n2:4222") {
		t.Fatalf("natsShown: %s", got)
	}
}
