package tenant

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/loglineos/loglineos/client/webhook"
	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/suggest"
)

// Runtime is the runtime section of a tenant file: what the tenant's
// routers may do.
//
//	runtime:
//	  caps: [http.request, ws.send, env.get, ledger.append]
//	  env:  {REGION: "eu-west"}
//	  webhooks:
//	    - url: https://till.example/hooks/logline
//	      secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
//	    - url: http://127.0.0.1:9000/hook
//	      secret: whsec_...
//	      allow_private: true
//	  sources:
//	    stripe: {secret: whsec_...}
//
// caps are the host calls the tenant allows (a bundle's routers get the
// intersection of the bundle's caps_allow, the server's runtime.caps and
// these; none when left out). env is the recorded environment env.get
// reads. webhooks are the only destinations http.request may reach (the
// allow-list), each with the secret its deliveries are signed with;
// private, loopback and link-local addresses are refused unless the
// endpoint says allow_private. sources are the senders of webhooks in
// (POST /webhooks/in/<tenant>/<source>) and the secrets or public keys
// their signatures are checked with. The section is not recorded in the
// ledger: it holds secrets.
type Runtime struct {
	Caps     []string          `yaml:"caps"`
	Env      map[string]string `yaml:"env"`
	Webhooks []Endpoint        `yaml:"webhooks"`
	Sources  map[string]Source `yaml:"sources"`
}

// Endpoint is a destination of webhooks out.
type Endpoint struct {
	URL          string `yaml:"url"`
	Secret       string `yaml:"secret"`
	AllowPrivate bool   `yaml:"allow_private"`

	// Key is Secret parsed.
	Key webhook.Secret `yaml:"-"`
}

// Source is a sender of webhooks in: a "v1," secret, a "v1a," public key,
// or both.
type Source struct {
	Secret    string `yaml:"secret"`
	PublicKey string `yaml:"public_key"`

	// Verifier checks the source's signatures.
	Verifier *webhook.Verifier `yaml:"-"`
}

// Allows reports whether the tenant allows capability c.
func (r *Runtime) Allows(c string) bool { return r != nil && slices.Contains(r.Caps, c) }

// Endpoint returns the configured endpoint whose URL is u, if any.
func (r *Runtime) Endpoint(u string) (*Endpoint, bool) {
	if r == nil {
		return nil, false
	}
	for i := range r.Webhooks {
		if r.Webhooks[i].URL == u {
			return &r.Webhooks[i], true
		}
	}
	return nil, false
}

// checkRuntime checks the runtime section and parses its keys.
func (p *parser) checkRuntime(rt *Runtime) {
	if rt == nil {
		return
	}
	known := abi.Caps()
	for _, c := range rt.Caps {
		if !slices.Contains(known, c) {
			p.add(p.line("runtime"), fmt.Errorf("runtime.caps: unknown capability %q%s (known: %s)", c, suggest.DidYouMean(c, known), strings.Join(known, ", ")))
		}
	}
	seen := map[string]bool{}
	for i := range rt.Webhooks {
		e := &rt.Webhooks[i]
		path := fmt.Sprintf("runtime.webhooks[%d]", i)
		u, err := url.Parse(e.URL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			p.add(p.line("runtime"), fmt.Errorf("%s.url: want an absolute http or https URL, got %q", path, e.URL))
		case u.User != nil:
			p.add(p.line("runtime"), fmt.Errorf("%s.url: a URL with credentials is not allowed (the signature authenticates)", path))
		case seen[e.URL]:
			p.add(p.line("runtime"), fmt.Errorf("%s.url: %s is listed twice", path, e.URL))
		}
		seen[e.URL] = true
		k, err := webhook.ParseSecret(e.Secret)
		if err != nil {
			p.add(p.line("runtime"), fmt.Errorf("%s.secret: %w", path, err))
		}
		e.Key = k
	}
	for name, s := range rt.Sources {
		path := "runtime.sources." + name
		v := &webhook.Verifier{}
		if s.Secret != "" {
			k, err := webhook.ParseSecret(s.Secret)
			if err != nil {
				p.add(p.line("runtime"), fmt.Errorf("%s.secret: %w", path, err))
			}
			v.Secrets = append(v.Secrets, k)
		}
		if s.PublicKey != "" {
			k, err := webhook.ParsePublicKey(s.PublicKey)
			if err != nil {
				p.add(p.line("runtime"), fmt.Errorf("%s.public_key: %w", path, err))
			}
			v.PublicKeys = append(v.PublicKeys, k)
		}
		if s.Secret == "" && s.PublicKey == "" {
			p.add(p.line("runtime"), errors.New(path+": give a secret or a public_key"))
		}
		s.Verifier = v
		rt.Sources[name] = s
	}
}

// checkRuntimeMembers checks the member names of the runtime section.
func (p *parser) checkRuntimeMembers(root *yaml.Node) {
	_, n := member(root, "runtime")
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	p.checkMembers("runtime", n, yamlNames(Runtime{}))
	if _, w := member(n, "webhooks"); w != nil && w.Kind == yaml.SequenceNode {
		for _, e := range w.Content {
			if e.Kind == yaml.MappingNode {
				p.checkMembers("runtime.webhooks", e, yamlNames(Endpoint{}))
			}
		}
	}
	if _, s := member(n, "sources"); s != nil && s.Kind == yaml.MappingNode {
		for i := 1; i < len(s.Content); i += 2 {
			if e := s.Content[i]; e.Kind == yaml.MappingNode {
				p.checkMembers("runtime.sources."+s.Content[i-1].Value, e, yamlNames(Source{}))
			}
		}
	}
}
