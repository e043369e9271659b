package cli

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/loglineos/loglineos/client/webhook"
)

// sinkReport is what bench sink prints.
type sinkReport struct {
	Listen     string  `json:"listen"`
	Deliveries int64   `json:"deliveries"`
	BadSigs    int64   `json:"bad_signatures"`
	Seconds    float64 `json:"seconds"` // from the first delivery to the last
	PerSecond  float64 `json:"deliveries_per_second"`
}

func newBenchSinkCmd(stdio Stdio) *cobra.Command {
	var (
		listen, secret, addrFile string
		count                    int64
		timeout                  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "sink --listen ADDR",
		Short: "Receive webhooks, verify them and count them (an endpoint for trying routers)",
		Long: `bench sink is a webhook endpoint: it answers 204 to every POST, verifies its
Standard Webhooks signature with --secret when one is given (a request that
does not verify is answered 401 and counted apart), and when --count
deliveries have arrived, or --timeout passes, or it is interrupted, prints
how many arrived and at what rate (from the first to the last), as JSON.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var v *webhook.Verifier
			if secret != "" {
				k, err := webhook.ParseSecret(secret)
				if err != nil {
					return usageErr("--secret: %v", err)
				}
				v = &webhook.Verifier{Secrets: []webhook.Secret{k}}
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return badErr("bench sink: %v", err)
			}
			if addrFile != "" {
				if err := os.WriteFile(addrFile, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
					return badErr("bench sink: %v", err)
				}
			}
			var (
				mu          sync.Mutex
				rep         = sinkReport{Listen: ln.Addr().String()}
				first, last time.Time
				done        = make(chan struct{})
				once        sync.Once
			)
			srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
				if err != nil {
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				now := time.Now()
				if v != nil {
					if _, err := v.Verify(r.Header, body, now); err != nil {
						mu.Lock()
						rep.BadSigs++
						mu.Unlock()
						w.WriteHeader(http.StatusUnauthorized)
						return
					}
				}
				mu.Lock()
				if first.IsZero() {
					first = now
				}
				last = now
				rep.Deliveries++
				if count > 0 && rep.Deliveries >= count {
					once.Do(func() { close(done) })
				}
				mu.Unlock()
				w.WriteHeader(http.StatusNoContent)
			})}
			go srv.Serve(ln)
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			select {
			case <-done:
			case <-ctx.Done():
			}
			sctx, scancel := context.WithTimeout(context.Background(), time.Second)
			defer scancel()
			srv.Shutdown(sctx)
			mu.Lock()
			defer mu.Unlock()
			if rep.Deliveries > 1 {
				rep.Seconds = last.Sub(first).Seconds()
				if rep.Seconds > 0 {
					rep.PerSecond = float64(rep.Deliveries) / rep.Seconds
				}
			}
			if err := printJSON(stdio.Out, rep); err != nil {
				return err
			}
			if count > 0 && rep.Deliveries < count && !errors.Is(cmd.Context().Err(), context.Canceled) {
				return badErr("bench sink: %d of %d deliveries arrived in %s", rep.Deliveries, count, timeout)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:0", "listen on `ADDR`")
	f.StringVar(&addrFile, "addr-file", "", "write the address listened on to `FILE`")
	f.StringVar(&secret, "secret", "", "verify signatures with the endpoint's `whsec_` secret")
	f.Int64Var(&count, "count", 0, "stop after `N` deliveries (0: at --timeout or an interrupt)")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "stop after this long")
	return cmd
}
