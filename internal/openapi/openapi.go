package openapi

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/gateway"
	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/lll/abi"
)

// Version is the OpenAPI version of the document.
const Version = "3.1.0"

// APIVersion is the document's info.version: the version of the HTTP API.
const APIVersion = "1"

// Options tune the document. The zero Options describe a production server
// (bearer tokens, identity endpoints) reached at the document's own origin.
type Options struct {
	// ServerURL, when set, is the document's one server
	// (https://logline.example.com). Empty: no servers member, so paths are
	// relative to where the document was fetched.
	ServerURL string
	// Dev describes a server run with --dev: no credential is needed (every
	// request acts as an administrator of the tenant it names) and the
	// identity and admin endpoints are not served.
	Dev bool
}

// Doc is an OpenAPI document as plain JSON values: map[string]any, []any,
// string, json.Number, bool and nil.
type Doc map[string]any

// Document builds the OpenAPI 3.1 document of the HTTP API with the schemas
// of bundle b. b must declare a schema named span (the standard bundle
// does); its schema names must not collide with the API's own.
func Document(b *bundle.Bundle, opts Options) (Doc, error) {
	schemas := apiSchemas()
	fromBundle := b.JSONSchemas("#/components/schemas/")
	if _, ok := fromBundle["span"]; !ok {
		return nil, fmt.Errorf("openapi: the bundle declares no schema span, the body of POST /ingest")
	}
	for name, s := range fromBundle {
		if _, ok := schemas[name]; ok {
			return nil, fmt.Errorf("openapi: the bundle's schema %s has the name of one of the API's own schemas", name)
		}
		desc := fmt.Sprintf("Declared by the bundle (schema %s in its .lll sources).", name)
		if name == "span" {
			desc = "A span: who did what to which thing, when, confirmed by whom (docs/apps.md). Declared by the bundle (schema span in its .lll sources); the bundle's span contract (its ingest validators) is what POST /ingest enforces."
		} else if slices.Contains(abi.EventNames(), name) {
			desc = fmt.Sprintf("The derived event %s. Declared by the bundle (schema %s in its .lll sources).", name, name)
		}
		if _, ok := s["description"]; !ok {
			s["description"] = desc
		}
		schemas[name] = s
	}

	ex, err := examples(b)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, t := range reply.ProblemTypes() {
		names = append(names, t.Name)
	}
	paths := obj{}
	for _, rt := range routes(names) {
		if opts.Dev && rt.identity {
			continue
		}
		item, _ := paths[rt.path].(obj)
		if item == nil {
			item = obj{}
			paths[rt.path] = item
		}
		op, err := operation(rt, opts)
		if err != nil {
			return nil, err
		}
		item[strings.ToLower(rt.method)] = op
	}

	doc := obj{
		"openapi":           Version,
		"jsonSchemaDialect": bundle.JSONSchemaDialect,
		"info": obj{
			"title":       "LogLineOS HTTP API",
			"version":     APIVersion,
			"summary":     "Spans in, signed receipts out: ingest, ledger streams, lookups and proofs.",
			"description": infoDescription(opts),
			"x-logline-bundle": obj{
				"hash":    b.Hash(),
				"schemas": toArr(slices.Sorted(maps.Keys(fromBundle))),
			},
		},
		"tags": arr{
			obj{"name": "ingest", "description": "Posting spans."},
			obj{"name": "ledger", "description": "Reading the ledger by cursor."},
			obj{"name": "lookups", "description": "Spans, things and receipts by name."},
			obj{"name": "proofs", "description": "Checkpoints, proofs and the key that verifies them."},
			obj{"name": "derived", "description": "The neutral cycle: derived events, trajectories, dry runs."},
			obj{"name": "runtime", "description": "What the bundle's routers do: webhooks in and out, their delivery log, channels."},
			obj{"name": "operations", "description": "Health and metrics."},
			obj{"name": "console", "description": "The overviews the web console (/console/, pages for people, not API) reads."},
			obj{"name": "identity", "description": "Login and tokens (not served with --dev)."},
			obj{"name": "admin", "description": "Service accounts and signing keys (not served with --dev)."},
			obj{"name": "meta", "description": "This document and the problem types."},
		},
		"paths": paths,
		"components": obj{
			"schemas":  schemas,
			"examples": ex,
			"headers": obj{
				"X-Request-Id": obj{"description": "The request's id, also in the log line and in problems (request_id).",
					"schema": obj{"type": "string", "pattern": "^req_[0-9A-HJKMNP-TV-Z]{26}$"}},
				"Retry-After": obj{"description": "Seconds to wait before retrying.", "schema": obj{"type": "integer", "minimum": 1}},
				"Allow":       obj{"description": "The methods the path takes.", "schema": obj{"type": "string"}},
				"X-LogLine-Deprecation": obj{"description": "On a response to a deprecated use of the API (a path without /v1): the last day it works, the path to use instead and what is deprecated, as in `2027-12-31; link=\"/v1/ingest\"; info=\"unversioned paths: use /v1\"`.",
					"schema": obj{"type": "string"}},
			},
			"securitySchemes": securitySchemes(opts),
		},
	}
	if opts.Dev {
		delete(doc["components"].(obj)["securitySchemes"].(obj), "clientBasic")
	}
	// Every path is served under the version prefix; the unprefixed ones
	// are deprecated aliases (X-LogLine-Deprecation).
	doc["servers"] = arr{obj{"url": strings.TrimRight(opts.ServerURL, "/") + gateway.APIVersion, "description": "API version " + APIVersion}}
	n, err := normalize(doc)
	if err != nil {
		return nil, err
	}
	return Doc(n.(map[string]any)), nil
}

func securitySchemes(opts Options) obj {
	desc := "An LLST: a short-lived JWT signed EdDSA, from POST /auth/token (a service account) or a login (GET /auth/login). " +
		"Its tenant and roles decide what the request may do. A server run with --dev needs none: every request acts as an administrator of the tenant it names."
	if opts.Dev {
		desc = "Not needed: this server runs with --dev, where every request acts as an administrator of the tenant it names. In production, an LLST (a short-lived JWT signed EdDSA)."
	}
	return obj{
		"llst":        obj{"type": "http", "scheme": "bearer", "bearerFormat": "JWT (LLST, EdDSA)", "description": desc},
		"clientBasic": obj{"type": "http", "scheme": "basic", "description": "A service account's client_id and client_secret (form-urlencoded inside Basic, RFC 6749 §2.3.1), for POST /auth/token."},
	}
}

func infoDescription(opts Options) string {
	auth := "**Authentication.** Routes that read or write a tenant's data need `Authorization: Bearer <LLST>` (security scheme llst); the token's tenant and roles decide what it may do. " +
		"A server run with `logline serve --dev` needs no token: every request acts as an administrator of the tenant it names (laptop only, never production)."
	if opts.Dev {
		auth = "**Authentication.** None: this document describes a server run with `--dev`, where every request acts as an administrator of the tenant it names (laptop only, never production). " +
			"In production the routes that read or write a tenant's data need `Authorization: Bearer <LLST>`, and the identity and admin endpoints (/auth/..., /.well-known/jwks.json, /admin/...) are served."
	}
	return strings.Join([]string{
		"LogLineOS takes **spans** (who did what to which thing, when, confirmed by whom), validates them against the span contract of its bundle (written in .lll), " +
			"appends them durably to an append-only, tamper-evident ledger with signed receipts, and derives trajectories and quality scores.",
		"The schemas span, trajectory_edge, trajectory_closed, trajectory_quality and diamond_candidate are generated from the bundle's .lll `schema` declarations (JSON Schema 2020-12); x-logline-bundle names the bundle.",
		auth,
		"**Versions.** Every path is served under `/v1` (the server URL above): `POST /v1/ingest`. The same paths without the prefix are deprecated aliases of version 1: " +
			"a response to one carries `X-LogLine-Deprecation: <last day>; link=\"<the /v1 path>\"; info=\"...\"`, with `Deprecation`, `Sunset` and `Link rel=successor-version`. " +
			"Changes are listed in CHANGELOG.md; a deprecated path or parameter keeps working until its last day.",
		"**Errors** are `application/problem+json` (RFC 9457, schema Problem), never a stack trace. A problem's type is a relative URI: `GET /problems/{name}` describes it. " +
			"Every response carries X-Request-Id; 429 and 503 carry Retry-After. Unknown paths answer 404 not-found, known paths with another method 405 method-not-allowed (with Allow).",
		"**Idempotency.** A span's id is its idempotency key within its tenant: posting it again appends nothing and answers the original receipt.",
		"**Browsers.** CORS is allowed only from the configured origins.",
	}, "\n\n")
}

// operation builds one operation object.
func operation(rt route, opts Options) (obj, error) {
	op := obj{
		"operationId": rt.id,
		"tags":        arr{rt.tag},
		"summary":     rt.summary,
	}
	if rt.description != "" {
		op["description"] = rt.description
	}
	if rt.capability != "" {
		op["x-logline-capability"] = rt.capability
	}
	switch {
	case rt.security != nil:
		op["security"] = rt.security
	case rt.auth && !opts.Dev:
		op["security"] = arr{obj{"llst": arr{}}}
	}
	if rt.params != nil {
		op["parameters"] = rt.params
	}
	if rt.body != nil {
		op["requestBody"] = rt.body
	}
	responses := obj{}
	for status, r := range rt.responses {
		r := r.(obj)
		h := obj{"X-Request-Id": headerRef("X-Request-Id")}
		if old, ok := r["headers"].(obj); ok {
			for k, v := range old {
				h[k] = v
			}
		}
		r["headers"] = h
		responses[status] = r
	}

	// The gateway's problems, grouped by status.
	names := slices.Clone(rt.problems)
	if rt.auth && !opts.Dev {
		names = append(names, "unauthenticated", "forbidden", "quota-exceeded")
	}
	if rt.bounded {
		names = append(names, "overloaded", "too-many-in-flight")
	}
	names = append(names, "header-too-large", "internal")
	byStatus := map[int][]reply.ProblemType{}
	for _, t := range reply.ProblemTypes() {
		if slices.Contains(names, t.Name) {
			byStatus[t.Status] = append(byStatus[t.Status], t)
		}
	}
	variants := map[int][]problemVariant{}
	for _, v := range problemVariants() {
		if slices.Contains(rt.variants, v.name) {
			st := problemStatus(v.typ)
			variants[st] = append(variants[st], v)
			if _, ok := byStatus[st]; !ok {
				return nil, fmt.Errorf("openapi: %s %s: example %s of a problem type the route does not answer", rt.method, rt.path, v.name)
			}
		}
	}
	statuses := slices.Sorted(maps.Keys(byStatus))
	slices.Sort(statuses)
	for _, status := range statuses {
		var lines []string
		examples := obj{}
		for _, t := range byStatus[status] {
			lines = append(lines, fmt.Sprintf("- `%s`: %s", t.Name, t.Doc))
			examples[t.Name] = exampleRef("problem-" + t.Name)
		}
		for _, v := range variants[status] {
			examples[v.name] = exampleRef("problem-" + v.name)
		}
		key := strconv.Itoa(status)
		if s, ok := rt.extra[key]; ok {
			lines = append(lines, "\n"+s)
		}
		headers := obj{"X-Request-Id": headerRef("X-Request-Id")}
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			headers["Retry-After"] = headerRef("Retry-After")
		}
		responses[key] = obj{
			"description": http.StatusText(status) + ":\n\n" + strings.Join(lines, "\n"),
			"headers":     headers,
			"content": obj{"application/problem+json": obj{
				"schema":   ref("Problem"),
				"examples": examples,
			}},
		}
	}
	responses["default"] = obj{
		"description": "Any other problem, such as 404 not-found for a path that does not exist or 405 method-not-allowed (with Allow) for a method the path does not take.",
		"headers":     obj{"X-Request-Id": headerRef("X-Request-Id"), "Allow": headerRef("Allow")},
		"content": obj{"application/problem+json": obj{
			"schema": ref("Problem"),
			"examples": obj{
				"not-found":          exampleRef("problem-not-found"),
				"method-not-allowed": exampleRef("problem-method-not-allowed"),
			},
		}},
	}
	op["responses"] = responses
	return op, nil
}

func problemStatus(name string) int {
	for _, t := range reply.ProblemTypes() {
		if t.Name == name {
			return t.Status
		}
	}
	return 0
}

// examples returns components.examples: the story's bodies (examples.go)
// and an example of every problem.
func examples(b *bundle.Bundle) (obj, error) {
	l, err := newExampleLedger()
	if err != nil {
		return nil, err
	}
	invalid, err := contractProblem(b, exampleSpanBad)
	if err != nil {
		return nil, err
	}
	lineBad := obj{"line": 3, "id": "s_bad", "status": "rejected", "problem": invalid}
	answer := obj{
		"accepted": 1, "duplicates": 1, "rejected": 1,
		"results": arr{
			obj{"line": 1, "id": "s_2", "status": "accepted", "seq": 41, "receipt": l.receipt(41)},
			obj{"line": 2, "id": "s_1", "status": "duplicate", "seq": 12, "receipt": l.receipt(12)},
			lineBad,
		},
	}
	badJSON := problem("invalid-json", "invalid character 'o' in literal null (expecting 'u') at byte 2")
	allRejected := arr{
		obj{"line": 1, "id": "s_bad", "status": "rejected", "problem": invalid},
		obj{"line": 2, "status": "rejected", "problem": badJSON},
	}
	out, err := problemExamples(invalid, allRejected)
	if err != nil {
		return nil, err
	}
	d, err := newDerivation()
	if err != nil {
		return nil, err
	}
	var derived strings.Builder
	for _, ev := range d.events {
		derived.Write(ev)
		derived.WriteByte('\n')
	}
	_, traj := d.trajectory(l)
	dry := obj{"summary": "A dry run of the NDJSON example, close_at_end=true",
		"value": jsonValue(struct {
			gateway.SummaryJSON
			Policy   gateway.DryRunPolicy `json:"policy"`
			Rejected arr                  `json:"rejected"`
		}{gateway.SummaryToJSON(d.dryRun, false), gateway.DryRunPolicy{Tenant: exampleTenant, Source: "tenant file",
			Hash: "sha256:9f1c2d0e4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"}, arr{lineBad}})}
	out["derived-ndjson"] = obj{"summary": "The events of order:12345's trajectory (cursor=0&tenant=t_bakery)", "value": derived.String()}
	out["trajectory"] = obj{"summary": "The trajectory of order:12345, closed by timeout and scored", "value": traj}
	out["dryrun-answer"] = dry
	out["dryrun-request"] = obj{"summary": "Try a shorter close_timeout",
		"value": obj{"policies": obj{"trajectory_linker": obj{"close_timeout": "2h"}}, "spans": arr{rawValue(exampleSpan1), rawValue(exampleSpan2)}}}
	account := obj{"id": "sa_01K6TQ4Z8N3D5W7XB2C9E1F0GK", "tenant": exampleTenant, "role": "app", "name": "till 7",
		"created": "2025-10-05T21:58:00Z", "created_by": "sa:sa_01K6TPZ3M0Q4R5S6T7V8W9X0YA"}
	keys := arr{
		obj{"kid": "2025-10B", "state": "next", "created": "2025-10-05T22:00:00Z", "published": true},
		obj{"kid": "2025-10A", "state": "active", "created": "2025-10-04T22:00:00Z", "activated": "2025-10-05T22:00:00Z", "published": true},
	}
	out["service-account-created"] = obj{"summary": "A new app account; the secret is shown this once",
		"value": obj{"account": account, "client_id": account["id"], "client_secret": "lls_8c1f0e3b5d7a49e2b6c4d8f0a2e4c6b8",
			"note": "the secret is shown this once; exchange it at POST /auth/token (grant_type=client_credentials)"}}
	out["service-accounts"] = obj{"summary": "One account", "value": obj{"tenant": exampleTenant, "service_accounts": arr{account}}}
	out["keys"] = obj{"summary": "An active key and the next one", "value": obj{"keys": keys}}
	out["keys-rotated"] = obj{"summary": "2025-10B is now active", "value": obj{"kid": "2025-10B", "keys": arr{
		obj{"kid": "2025-10C", "state": "next", "created": "2025-10-06T09:00:00Z", "published": true},
		obj{"kid": "2025-10B", "state": "active", "created": "2025-10-05T22:00:00Z", "activated": "2025-10-06T09:00:00Z", "published": true},
		obj{"kid": "2025-10A", "state": "verify_only", "created": "2025-10-04T22:00:00Z", "activated": "2025-10-05T22:00:00Z", "verify_until": "2025-10-06T09:16:00Z", "published": true},
	}}}
	for k, v := range variantExamples() {
		out[k] = v
	}
	lines := func(seqs ...uint64) string {
		var b strings.Builder
		for _, seq := range seqs {
			b.Write(l.records[seq])
			b.WriteByte('\n')
		}
		return b.String()
	}
	story := obj{
		"span": obj{"summary": "A span", "value": rawValue(exampleSpan1)},
		"span-array": obj{"summary": "Two spans in one array",
			"value": arr{rawValue(exampleSpan2), rawValue(exampleSpan3)}},
		"ndjson-body": obj{"summary": "Three spans as NDJSON: a new one, one already stored, one with a bad when",
			"value": exampleNDJSON()},
		"ingest-answer": obj{"summary": "An accepted, a duplicate and a rejected line (the answer to the NDJSON example)",
			"description": "s_2 is stored as record 41; s_1 was stored before as record 12, so its original receipt comes back and nothing is appended; s_bad breaks the contract and is not stored. The receipts verify with the example key of GET /ledger/key.",
			"value":       answer},
		"ingest-accepted": obj{"summary": "One span accepted",
			"value": obj{"accepted": 1, "duplicates": 0, "rejected": 0, "results": arr{
				obj{"line": 1, "id": "s_2", "status": "accepted", "seq": 41, "receipt": l.receipt(41)}}}},
		"record": obj{"summary": "Record 41: span s_2", "value": l.record(41, false)},
		"stream-ndjson": obj{"summary": "Records 41 and 42 (cursor=41&tenant=t_bakery)",
			"value": lines(41, 42)},
		"stream-every-kind": obj{"summary": "Records 8 to 12, one of each kind: kv, audit, config, tick, span (cursor=8, an operator's stream of every tenant)",
			"description": "Record 8: a router of t_cafe set a key when it routed record 7; 9: the service account till 7 was created; 10: t_bakery's tenant file put close_timeout 2h in force; 11: a clock tick; 12: span s_1. " +
				"A tenant's stream (tenant=) sends its spans only.",
			"value": lines(8, 9, 10, 11, 12)},
		"thing-page": obj{"summary": "The spans of order:12345",
			"value": obj{"tenant": exampleTenant, "this": "order:12345",
				"spans": arr{l.record(12, false), l.record(41, false), l.record(42, false)}}},
		"receipt": obj{"summary": "The receipt of s_2 (record 41, in the commit of records 40 to 42)",
			"value": l.receipt(41)},
		"checkpoint": obj{"summary": "A signed checkpoint of 43 records", "value": string(l.checkpoint)},
		"verifier-key": obj{"summary": "The example ledger's key (it verifies the examples' receipts, checkpoint and proofs)",
			"value": l.vkey + "\n"},
		"inclusion-proof": obj{"summary": "Record 41 in the tree of 43 records (seq=41&size=43)",
			"value": obj{"leaf_index": 41, "tree_size": l.size, "leaf_hash": l.receipts[41].Leaf, "path": l.inclusion, "root": l.root}},
		"consistency-proof": obj{"summary": "The tree of 40 records is a prefix of the tree of 43 (from=40&size=43)",
			"value": obj{"from": l.consFrom, "tree_size": l.size, "from_root": l.consRoot, "root": l.root, "path": l.consistent}},
		"token": obj{"summary": "An LLST",
			"value": obj{"access_token": "eyJhbGciOiJFZERTQSIsImtpZCI6IjIwMjUtMTBBIiwidHlwIjoibGxzdCtqd3QifQ.eyJzdWIiOiJsbGlkX3NhX3BvczcifQ.c2lnbmF0dXJl",
				"token_type": "Bearer", "expires_in": 900, "expires_at": "2025-10-05T22:33:07Z", "sub": "llid_sa_pos7",
				"tenant": exampleTenant, "roles": arr{"app"}, "jti": "t_01K6TQ4Z8N3D5W7XB2C9E1F0GJ"}},
	}
	for k, v := range story {
		out[k] = v
	}
	return out, nil
}

// YAML returns the document in YAML. The same document gives the same bytes.
func (d Doc) YAML() ([]byte, error) { return encodeYAML(d) }

// JSON returns the document in JSON, indented, keys in the YAML's order.
func (d Doc) JSON() ([]byte, error) { return encodeJSON(d) }

// Handler returns the handler of GET /openapi.yaml: the document of b, built
// once, in YAML.
func Handler(b *bundle.Bundle, opts Options) (http.Handler, error) {
	doc, err := Document(b, opts)
	if err != nil {
		return nil, err
	}
	body, err := doc.YAML()
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	}), nil
}
