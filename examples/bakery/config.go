package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/loglineos/loglineos/client/webhook"
)

// config is the till's configuration: flags, each defaulting to an
// environment variable. Secrets are best given in the environment, where
// other users of the machine cannot read them in the process list.
type config struct {
	server       string // BAKERY_SERVER
	tenant       string // BAKERY_TENANT
	till         string // BAKERY_TILL: who the sales are by
	clientID     string // BAKERY_CLIENT_ID
	clientSecret string // BAKERY_CLIENT_SECRET
	ledgerKey    string // BAKERY_LEDGER_KEY: "" asks the server
	listen       string // BAKERY_LISTEN
	orders       int    // BAKERY_ORDERS
	webhook      webhook.Secret
}

// parseConfig reads the flags in args, their defaults from getenv.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	var c config
	var secret string
	fs := flag.NewFlagSet("bakery", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.server, "server", env("BAKERY_SERVER", "http://127.0.0.1:8080"), "LogLineOS server URL (env BAKERY_SERVER)")
	fs.StringVar(&c.tenant, "tenant", env("BAKERY_TENANT", "bakery"), "tenant of the sales (env BAKERY_TENANT)")
	fs.StringVar(&c.till, "till", env("BAKERY_TILL", "till-1"), "name of this till, the spans' who (env BAKERY_TILL)")
	fs.StringVar(&c.clientID, "client-id", getenv("BAKERY_CLIENT_ID"), "service account id (env BAKERY_CLIENT_ID)")
	fs.StringVar(&c.clientSecret, "client-secret", getenv("BAKERY_CLIENT_SECRET"), "service account secret (env BAKERY_CLIENT_SECRET)")
	fs.StringVar(&c.ledgerKey, "ledger-key", getenv("BAKERY_LEDGER_KEY"), "the ledger's verifier key, from its operator (`logline ledger key`); empty asks the server (env BAKERY_LEDGER_KEY)")
	fs.StringVar(&c.listen, "listen", env("BAKERY_LISTEN", "127.0.0.1:8090"), "address of the webhook endpoint, POST /candidates (env BAKERY_LISTEN)")
	fs.StringVar(&secret, "webhook-secret", getenv("BAKERY_WEBHOOK_SECRET"), "whsec_ secret the server signs the webhooks with (env BAKERY_WEBHOOK_SECRET)")
	orders := env("BAKERY_ORDERS", "3")
	fs.Func("orders", "orders to sell at start (env BAKERY_ORDERS, default 3)", func(s string) error { orders = s; return nil })
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	n, err := strconv.Atoi(orders)
	if err != nil || n < 0 {
		return c, fmt.Errorf("orders %q: want a count, 0 or more", orders)
	}
	c.orders = n
	if c.clientID == "" || c.clientSecret == "" {
		return c, errors.New("a service account is required: -client-id and -client-secret (or BAKERY_CLIENT_ID and BAKERY_CLIENT_SECRET)")
	}
	if secret == "" {
		return c, errors.New("the webhook secret is required: -webhook-secret or BAKERY_WEBHOOK_SECRET (the secret of the endpoint in the tenant file)")
	}
	if c.webhook, err = webhook.ParseSecret(secret); err != nil {
		return c, fmt.Errorf("webhook secret: %w", err)
	}
	return c, nil
}
