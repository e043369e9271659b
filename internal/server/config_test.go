package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
