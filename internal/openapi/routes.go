package openapi

import (
	"github.com/loglineos/loglineos/internal/gateway/reply"
)

// route is one operation of the API, as the server mounts it
// (internal/gateway routes(), internal/server mount()).
type route struct {
	method, path string
	id, tag      string
	summary      string
	description  string
	auth         bool   // needs an LLST
	capability   string // the capability it needs on the tenant
	bounded      bool   // counts against the overload limits (503 overloaded)
	identity     bool   // served only with identity, not with --dev
	security     arr    // overrides the default (an LLST when auth)
	params       arr
	body         obj
	responses    obj               // the successful responses, by status
	problems     []string          // the gateway problem types it may answer beyond the common ones
	variants     []string          // more examples of its problems (problemVariants)
	extra        map[string]string // status -> a sentence added to that error response
}

func pathParam(name, desc string, example string) obj {
	return obj{"name": name, "in": "path", "required": true, "description": desc, "schema": obj{"type": "string", "minLength": 1}, "example": example}
}

func queryParam(name, desc string, schema obj) obj {
	return obj{"name": name, "in": "query", "description": desc, "schema": schema}
}

func cursorParam(desc string) obj {
	return queryParam("cursor", desc, obj{"type": "integer", "minimum": 0, "default": 0})
}

func jsonContent(schema obj, examples obj) obj {
	m := obj{"schema": schema}
	if examples != nil {
		m["examples"] = examples
	}
	return obj{"application/json": m}
}

func exampleRef(name string) obj { return obj{"$ref": "#/components/examples/" + name} }

func headerRef(name string) obj { return obj{"$ref": "#/components/headers/" + name} }

// streamLifetime and wsLifetime say how a stream ends with its credential.
const (
	streamLifetime = "A stream lives no longer than its token: at the token's expiry, or within a second of the revocation of its service account or person, " +
		"the stream ends with a final line that is a problem (token-expired or token-revoked) whose cursor member says where to resume with a new token."
	wsLifetime = "A WebSocket lives no longer than its token: at the token's expiry, or within a second of the revocation of its service account or person, " +
		"it is closed with code 4401 and a reason that says to reconnect with a new token and the cursor to resume from (\"token revoked: reconnect with a new token and cursor=42\")."
)

// streamProblems are the problems of a stream route beside its own: the
// stream bounds and the final lines of a stream whose token ended.
func streamProblems(own ...string) []string {
	return append(own, "overloaded", "too-many-in-flight", "token-expired", "token-revoked")
}

// streamExtra explains the stream problems by status.
var streamExtra = map[string]string{
	"401": "token-expired and token-revoked are not answers to the request: they are the final line of an open NDJSON stream (a WebSocket closes with 4401 instead).",
	"429": "too-many-in-flight when the tenant holds overload.max_tenant_streams streams, or the principal overload.max_client_streams.",
}

// routes returns the API's operations, in the order of the server's
// routes; problemNames are the problem types, for /problems/{name}.
func routes(problemNames []string) []route {
	tenant := pathParam("tenant", "The tenant.", "t_bakery")
	streamParams := arr{
		cursorParam("The sequence number to start from; to resume, the last seq received plus one. Past the end of the ledger: 400 bad-cursor."),
		queryParam("tenant", "Only this tenant's spans. Without it the caller needs the cross_tenant capability (an operator) and gets every record, the server's own (tick, config) included.", obj{"type": "string", "minLength": 1, "examples": arr{"t_bakery"}}),
	}
	derivedTenant := queryParam("tenant", "The tenant: derived streams are per tenant.", obj{"type": "string", "minLength": 1, "examples": arr{"t_bakery"}})
	derivedTenant["required"] = true
	return []route{
		{
			method: "POST", path: "/ingest", id: "ingest", tag: "ingest",
			summary: "Append spans to the ledger",
			description: "Takes one span or an array of spans (application/json) or one span per line (application/x-ndjson; application/ndjson and application/jsonl are taken too). " +
				"Each span (a line: an NDJSON line or an array element) is handled on its own: decoded strictly, checked against the bundle's span contract, the clock skew and the caller's tenant; " +
				"a bad line does not sink its neighbours, and a truncated last line is rejected as such. " +
				"The answer lists every line in request order, accepted with its signed receipt, duplicate with the original receipt (the span's id is its idempotency key: nothing is appended twice), or rejected with a problem naming the field and the rule; " +
				"it is sent only once every accepted span is durable (fsynced).\n\n" +
				"HTTP 200 when at least one line was accepted or was a duplicate. When every line is rejected the answer is a problem: with one line, that line's own problem; with several, `rejected`, whose status is the lines' common status (else 422) and whose results member carries the same per-line list.",
			auth: true, capability: "ingest", bounded: true,
			body: obj{
				"required":    true,
				"description": "Spans (the span schema of the bundle's .lll sources).",
				"content": obj{
					"application/json": obj{
						"schema": obj{"oneOf": arr{ref("span"), obj{"type": "array", "items": ref("span"), "minItems": 1}}},
						"examples": obj{
							"span":  exampleRef("span"),
							"array": exampleRef("span-array"),
						},
					},
					"application/x-ndjson": obj{
						"schema": obj{"type": "string", "description": "One span per line (NDJSON), each a span object; blank lines are skipped but counted."},
						"examples": obj{
							"ndjson": exampleRef("ndjson-body"),
						},
					},
				},
			},
			responses: obj{"200": obj{
				"description": "Every line's result, in request order.",
				"content": jsonContent(ref("IngestResponse"), obj{
					"mixed":    exampleRef("ingest-answer"),
					"accepted": exampleRef("ingest-accepted"),
				}),
			}},
			problems: []string{"invalid-json", "truncated-line", "empty-body", "tenant-mismatch", "body-too-large", "too-many-lines", "line-too-large",
				"unsupported-media-type", "unsupported-encoding", "request-timeout", "id-conflict", "invalid-span", "limit-exceeded", "future-when", "rejected", "derivation-behind", "webhook-queue-full", "misdirected", "unavailable", "no-answer", "index-damaged"},
			extra: map[string]string{"413": "For a line too large, only when it is the request's only line; otherwise the line is rejected on its own."},
		},
		{
			method: "GET", path: "/ledger/stream", id: "streamLedger", tag: "ledger",
			summary: "Read the ledger from a cursor (NDJSON)",
			description: "The stored records from cursor on, one per line, exactly as the segments hold them (see Record). " +
				"Records are flushed every few hundred objects or tens of milliseconds. Without follow the stream ends at the durable end of the ledger; " +
				"with follow=true it stays open and sends records as they become durable. Readers pull from the segments at their own pace: a slow reader never slows the ledger.\n\n" +
				streamLifetime,
			auth: true, capability: "stream.read",
			params: append(append(arr{}, streamParams...),
				queryParam("follow", "Keep the stream open and send new records as they become durable.", obj{"type": "boolean", "default": false})),
			responses: obj{"200": obj{
				"description": "Records, one JSON object (a Record, with crc) per line.",
				"content": obj{"application/x-ndjson": obj{
					"schema":   obj{"type": "string", "description": "One Record per line (NDJSON)."},
					"examples": obj{"records": exampleRef("stream-ndjson"), "every-kind": exampleRef("stream-every-kind")},
				}},
			}},
			problems: streamProblems("bad-cursor", "bad-request"),
			extra:    streamExtra,
		},
		{
			method: "GET", path: "/ledger/ws", id: "followLedger", tag: "ledger",
			summary: "Follow the ledger over WebSocket",
			description: "A WebSocket (RFC 6455) that sends the records from cursor on, one per text message, as /ledger/stream does with follow=true, and keeps following. " +
				"A follower that falls too far behind, or does not take a message in time, is closed (1008) with a reason that says which cursor to reconnect with; at shutdown the server closes with 1001.\n\n" +
				wsLifetime,
			auth: true, capability: "stream.read",
			params: streamParams,
			responses: obj{"101": obj{
				"description": "Switching to the WebSocket protocol. Each text message is one Record (with crc), as a line of /ledger/stream.",
			}},
			problems: streamProblems("bad-cursor", "bad-request"),
			extra:    streamExtra,
		},
		{
			method: "GET", path: "/spans/{tenant}/{id}", id: "getSpan", tag: "lookups",
			summary: "Get a span by its id",
			auth:    true, capability: "stream.read", bounded: true,
			params: arr{tenant, pathParam("id", "The span's id.", "s_2")},
			responses: obj{"200": obj{
				"description": "The span's record (without crc).",
				"content":     jsonContent(ref("Record"), obj{"record": exampleRef("record")}),
			}},
			problems: []string{"not-found", "index-damaged"},
		},
		{
			method: "GET", path: "/things/{tenant}/{this}", id: "getThing", tag: "lookups",
			summary: "The life of one thing: its spans in ledger order",
			auth:    true, capability: "stream.read", bounded: true,
			params: arr{tenant, pathParam("this", "The thing (a span's this).", "order:12345"),
				cursorParam("The sequence number to start from: 0, or the next_cursor of the previous page."),
				queryParam("limit", "The page size.", obj{"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000})},
			responses: obj{"200": obj{
				"description": "A page of the thing's records (without crc).",
				"content":     jsonContent(ref("ThingPage"), obj{"page": exampleRef("thing-page")}),
			}},
			problems: []string{"bad-cursor", "bad-request", "index-damaged"},
		},
		{
			method: "GET", path: "/receipts/{tenant}/{id}", id: "getReceipt", tag: "lookups",
			summary:     "Get the signed receipt of a span",
			description: "The receipt checks offline with the span as sent and the ledger's public key (GET /ledger/key): logline ledger verify-receipt.",
			auth:        true, capability: "receipts.read", bounded: true,
			params: arr{tenant, pathParam("id", "The span's id.", "s_2")},
			responses: obj{"200": obj{
				"description": "The receipt.",
				"content":     jsonContent(ref("Receipt"), obj{"receipt": exampleRef("receipt")}),
			}},
			problems: []string{"not-found", "index-damaged"},
		},
		{
			method: "GET", path: "/exports/{tenant}", id: "exportTenant", tag: "proofs",
			summary: "A signed export of one tenant's spans (NDJSON)",
			description: "The tenant's spans with from <= seq < to, each with its RFC 6962 inclusion proof in the ledger's latest signed checkpoint, " +
				"between a header carrying that checkpoint and a trailer carrying a manifest signed with the ledger's key (docs/exports.md). " +
				"It holds nothing of other tenants but hashes inside the proofs, and verifies offline with the verifier key (GET /ledger/key): logline ledger verify-export. " +
				"It is streamed as it is written; an export cut short lacks its manifest and verifies as such. Exports chain: start the next one at the previous one's to.\n\n" +
				"An export lives no longer than its token: it is cut short at the token's expiry or revocation.",
			auth: true, capability: "export",
			params: arr{tenant,
				queryParam("from", "The first sequence number: 0, or the previous export's to.", obj{"type": "integer", "minimum": 0, "default": 0}),
				queryParam("to", "The sequence number to stop before; at most, and by default, the latest signed checkpoint's size. Past it: 400 bad-range.", obj{"type": "integer", "minimum": 0})},
			responses: obj{"200": obj{
				"description": "The export: a header line, one line per span, the manifest line.",
				"content": obj{"application/x-ndjson": obj{
					"schema": obj{"type": "string", "description": "One ExportLine per line (NDJSON): the header, one span record with its proof per line, the trailer."},
					"example": "{\"logline_export\":1,\"tenant\":\"t_bakery\",\"from\":0,\"to\":3,\"checkpoint\":\"logline.local/ledger\\n3\\nuE5F…=\\n\\n— logline.local/ledger Az3g…\\n\"}\n" +
						"{\"seq\":0,\"ts\":\"2025-10-05T22:18:07.214000Z\",\"leaf\":\"3q2+7w…=\",\"span\":{…},\"proof\":[\"H1…=\",\"H2…=\"]}\n" +
						"{\"manifest\":\"logline-export/1\\ntenant t_bakery\\nrange 0 3\\nrecords 1\\ncheckpoint 3 uE5F…=\\nsha256 9f86…\\n\\n— logline.local/ledger Bz7q…\\n\"}\n",
				}},
			}},
			problems: streamProblems("bad-range", "bad-request", "not-found", "index-damaged"),
			extra:    streamExtra,
		},
		{
			method: "GET", path: "/ledger/checkpoint", id: "getCheckpoint", tag: "proofs",
			summary:     "The latest signed checkpoint",
			description: "A C2SP checkpoint (origin, tree size, base64 root) in a signed note, signed by the ledger's key; it verifies with golang.org/x/mod/sumdb/note and GET /ledger/key.",
			bounded:     true,
			responses: obj{"200": obj{
				"description": "The signed note.",
				"content": obj{"text/plain; charset=utf-8": obj{
					"schema":   obj{"type": "string"},
					"examples": obj{"checkpoint": exampleRef("checkpoint")},
				}},
			}},
			problems: []string{"not-found"},
		},
		{
			method: "GET", path: "/ledger/proof", id: "getProof", tag: "proofs",
			summary: "An inclusion or consistency proof",
			description: "With seq: the RFC 6962 inclusion proof of record seq in the tree of size records. With from: the consistency proof between the trees of from and size records. " +
				"size defaults to the latest checkpoint's. logline ledger verify-proof checks an inclusion proof against a signed checkpoint.",
			bounded: true,
			params: arr{
				queryParam("seq", "The record whose inclusion to prove.", obj{"type": "integer", "minimum": 0}),
				queryParam("size", "The tree size (default: the latest checkpoint's).", obj{"type": "integer", "minimum": 1}),
				queryParam("from", "The older tree size of a consistency proof.", obj{"type": "integer", "minimum": 0}),
			},
			responses: obj{"200": obj{
				"description": "The proof and the root of the tree it proves against.",
				"content": jsonContent(obj{"oneOf": arr{ref("Proof"), ref("ConsistencyProof")}}, obj{
					"inclusion":   exampleRef("inclusion-proof"),
					"consistency": exampleRef("consistency-proof"),
				}),
			}},
			problems: []string{"bad-request", "not-found", "index-damaged"},
		},
		{
			method: "GET", path: "/ledger/key", id: "getLedgerKey", tag: "proofs",
			summary:     "The ledger's public key",
			description: "The key that verifies checkpoints and receipts, in signed-note verifier form (origin+keyhash+base64 key), as logline ledger key prints it.",
			bounded:     true,
			responses: obj{"200": obj{
				"description": "The verifier key and a newline.",
				"content": obj{"text/plain; charset=utf-8": obj{
					"schema":   obj{"type": "string"},
					"examples": obj{"key": exampleRef("verifier-key")},
				}},
			}},
		},
		{
			method: "GET", path: "/derived/stream", id: "streamDerived", tag: "derived",
			summary: "A tenant's derived events (NDJSON)",
			description: "The events the neutral cycle derived from the tenant's records (trajectory edges and closes, quality scores, diamond candidates), one canonical JSON object per line, from event number cursor on. " +
				"Each tenant's events are numbered from 0; to resume, add the number of events received to the cursor. With follow=true the stream stays open.",
			auth: true, capability: "stream.read",
			params: arr{
				derivedTenant,
				cursorParam("The event number to start from. Past the end of the tenant's stream: 400 bad-cursor."),
				queryParam("follow", "Keep the stream open and send new events as they are derived.", obj{"type": "boolean", "default": false}),
			},
			responses: obj{"200": obj{
				"description": "Derived events, one per line.",
				"content": obj{"application/x-ndjson": obj{
					"schema":   obj{"type": "string", "description": "One DerivedEvent per line (NDJSON)."},
					"examples": obj{"events": exampleRef("derived-ndjson")},
				}},
			}},
			problems: streamProblems("bad-request", "bad-cursor", "unavailable"),
			extra:    map[string]string{"503": "unavailable also when derivation does not run on this server; overloaded past overload.max_streams.", "401": streamExtra["401"], "429": streamExtra["429"]},
		},
		{
			method: "GET", path: "/derived/ws", id: "followDerived", tag: "derived",
			summary: "Follow a tenant's derived events over WebSocket",
			description: "A WebSocket that sends the tenant's derived events from cursor on, one per text message, and keeps following. A follower that does not take a message in time is closed (1008) with the cursor to reconnect with.\n\n" +
				wsLifetime,
			auth: true, capability: "stream.read",
			params: arr{
				derivedTenant,
				cursorParam("The event number to start from."),
			},
			responses: obj{"101": obj{
				"description": "Switching to the WebSocket protocol. Each text message is one DerivedEvent.",
			}},
			problems: streamProblems("bad-request", "bad-cursor", "unavailable"),
			extra:    streamExtra,
		},
		{
			method: "GET", path: "/trajectories/{tenant}/{id}", id: "getTrajectory", tag: "derived",
			summary: "One trajectory: its spans, edges, close, quality and candidate flag",
			auth:    true, capability: "stream.read", bounded: true,
			params: arr{tenant, pathParam("id", "The trajectory's id (trajectory_id of its events).", "t_glkb9gvs0n6e2me0quvomh3r")},
			responses: obj{"200": obj{
				"description": "The trajectory.",
				"content":     jsonContent(ref("Trajectory"), obj{"trajectory": exampleRef("trajectory")}),
			}},
			problems: []string{"not-found", "unavailable"},
		},
		{
			method: "POST", path: "/quality/dryrun", id: "qualityDryRun", tag: "derived",
			summary: "Run the cycle over spans without storing anything",
			description: "Runs the neutral cycle over the body's spans through the same engine as live derivation, numbered as an empty ledger would number them, and writes nothing. " +
				"The body is NDJSON spans, run under the tenant's policy in force (its tenant file over the bundle's policies; the bundle's alone when the tenant has none), or JSON with policies and features to lay over it. " +
				"policy in the answer names the policy used and its hash. Lines the contract rejects are left out and listed in rejected.",
			auth: true, capability: "quality.dryrun", bounded: true,
			params: arr{
				queryParam("tenant", "The tenant whose policy to run under (default: the caller's); the caller needs quality.dryrun in it.", obj{"type": "string"}),
				queryParam("close_at_end", "Close every trajectory at the end (as a clock tick past every window would), so that all are scored.", obj{"type": "boolean", "default": false}),
				queryParam("events", "Add the derived events to the answer.", obj{"type": "boolean", "default": false}),
			},
			body: obj{
				"required": true,
				"content": obj{
					"application/x-ndjson": obj{
						"schema":   obj{"type": "string", "description": "One span per line (NDJSON)."},
						"examples": obj{"ndjson": exampleRef("ndjson-body")},
					},
					"application/json": obj{
						"schema":   ref("DryRunRequest"),
						"examples": obj{"policies": exampleRef("dryrun-request")},
					},
				},
			},
			responses: obj{"200": obj{
				"description": "The summary.",
				"content":     jsonContent(ref("DryRunSummary"), obj{"summary": exampleRef("dryrun-answer")}),
			}},
			problems: []string{"bad-request", "invalid-json", "empty-body", "body-too-large", "too-many-lines", "unsupported-media-type", "unsupported-encoding", "request-timeout", "unavailable"},
			extra: map[string]string{"400": "bad-request when the policies or features are not valid, or name a policy the cycle does not read (the detail lists the known ones).",
				"429": "A dry run counts its spans against the tenant's quota, and each tenant runs overload.max_tenant_dry_runs at once (too-many-in-flight).",
				"503": "The server runs overload.max_dry_runs at once (overloaded)."},
		},
		{
			method: "GET", path: "/overview/{tenant}", id: "tenantOverview", tag: "console",
			summary: "A tenant at a glance: counters, derivation, the meter's window, latest candidates, quota",
			description: "What the web console (/console/) shows for a tenant, in one read: its spans (in the ledger as derivation has seen them; accepted and rejected by POST /ingest since the server started), " +
				"where derivation stands (cursor, backlog and backpressure are the server's), the quality meter's window counted by score (0..100) with the threshold at the percentile target, " +
				"its latest diamond_candidate events (newest first, from its last 5000 derived events) and its ingest quota (null under --dev). ledger_next is where a stream of what arrives from now on starts.",
			auth: true, capability: "stream.read", bounded: true,
			params: arr{tenant},
			responses: obj{"200": obj{
				"description": "The overview.",
				"content": jsonContent(obj{"type": "object", "required": arr{"tenant", "ledger_next", "ingest", "derivation", "meter", "candidates", "quota"}, "properties": obj{
					"tenant":      obj{"type": "string"},
					"ledger_next": obj{"type": "integer", "minimum": 0},
					"ingest":      ref("IngestCounts"),
					"derivation":  ref("DerivationState"),
					"meter": obj{"type": "object", "required": arr{"scores", "n", "threshold", "percentile_target", "min_score", "warmup", "diamond_enabled"}, "properties": obj{
						"scores":            obj{"type": "array", "minItems": 101, "maxItems": 101, "items": obj{"type": "integer", "minimum": 0}, "description": "scores[s] is how many scores of s the window holds."},
						"n":                 obj{"type": "integer", "minimum": 0},
						"threshold":         obj{"type": []any{"integer", "null"}, "minimum": 0, "maximum": 100},
						"percentile_target": obj{"type": "string"},
						"min_score":         obj{"type": "integer"},
						"warmup":            obj{"type": "integer"},
						"diamond_enabled":   obj{"type": "boolean"},
					}},
					"candidates": obj{"type": "array", "items": obj{"type": "object"}},
					"quota": obj{"oneOf": arr{obj{"type": "null"}, obj{"type": "object", "required": arr{"ingest_per_second", "burst"}, "properties": obj{
						"ingest_per_second": obj{"type": "number"}, "burst": obj{"type": "integer"}}}}},
				}}, nil),
			}},
			problems: []string{"unavailable"},
		},
		{
			method: "GET", path: "/overview", id: "serverOverview", tag: "console",
			summary:     "The server at a glance: every tenant's line, derivation and the ledger",
			description: "What the web console's operator view shows: the ledger's next sequence number and latest checkpoint size, derivation's cursor, backlog and backpressure, and a line per tenant derivation knows. Names every tenant, so the caller needs metrics.read (an operator).",
			auth:        true, capability: "metrics.read", bounded: true,
			responses: obj{"200": obj{
				"description": "The overview.",
				"content": jsonContent(obj{"type": "object", "required": arr{"ledger_next", "checkpoint_size", "derivation", "tenants", "dev"}, "properties": obj{
					"ledger_next":     obj{"type": "integer", "minimum": 0},
					"checkpoint_size": obj{"type": "integer", "minimum": 0},
					"derivation":      ref("DerivationState"),
					"dev":             obj{"type": "boolean"},
					"operator_tenant": obj{"type": "string"},
					"tenants": obj{"type": "object", "additionalProperties": obj{"allOf": arr{ref("IngestCounts"), obj{"type": "object", "properties": obj{
						"derived_events": obj{"type": "integer"}, "open_trajectories": obj{"type": "integer"}, "candidates": obj{"type": "integer"}}}}}},
				}}, nil),
			}},
		},
		{
			method: "GET", path: "/healthz", id: "healthz", tag: "operations",
			summary:   "Liveness",
			responses: obj{"200": obj{"description": "The process is serving.", "content": jsonContent(ref("Health"), obj{"ok": obj{"value": obj{"status": "ok"}}})}},
		},
		{
			method: "GET", path: "/readyz", id: "readyz", tag: "operations",
			summary:     "Readiness",
			description: "Ready once the ledger is recovered, until shutdown begins or the ledger turns read-only after a storage error.",
			responses:   obj{"200": obj{"description": "Ready.", "content": jsonContent(ref("Ready"), obj{"ready": obj{"value": obj{"status": "ready", "next_seq": 43}}})}},
			problems:    []string{"unavailable"},
		},
		{
			method: "GET", path: "/metrics", id: "metrics", tag: "operations",
			summary: "Prometheus metrics",
			description: "Every metric family in the Prometheus text exposition format (OpenMetrics when the scraper asks for it). The families name every tenant, so the caller needs metrics.read: " +
				"a service account of the operator tenant with role monitor (or admin), which a scraper exchanges for tokens at POST /auth/token (client_credentials).",
			auth: true, capability: "metrics.read", bounded: true,
			responses: obj{"200": obj{
				"description": "The metrics.",
				"content": obj{"text/plain": obj{
					"schema":  obj{"type": "string"},
					"example": "# HELP logline_ingest_spans_total Spans received by POST /ingest, by result.\n# TYPE logline_ingest_spans_total counter\nlogline_ingest_spans_total{result=\"accepted\"} 42\n",
				}},
			}},
		},
		{
			method: "GET", path: "/billing", id: "billing", tag: "operations",
			summary: "Every tenant's billing counters",
			description: "The four counters a tenant is billed by, in the units their names say: ingest_spans_count (its spans in the ledger, as derivation has seen them), derived_spans_count (events in its derived stream), " +
				"exports_gb (bytes of its exports served, over 10^9) and ws_minutes (its WebSocket streams, counted as each ends). All survive restarts: the first two come from the ledger, the other two from <data>/billing.json. " +
				"Unlike /metrics, every tenant is listed (no cap). Needs metrics.read.",
			auth: true, capability: "metrics.read", bounded: true,
			params: arr{queryParam("tenant", "Only this tenant (its counters are zero if it has used nothing).", obj{"type": "string"})},
			responses: obj{"200": obj{
				"description": "The counters by tenant.",
				"content": jsonContent(obj{"type": "object", "required": arr{"tenants"}, "properties": obj{
					"tenants": obj{"type": "object", "additionalProperties": obj{
						"type": "object", "required": arr{"ingest_spans_count", "derived_spans_count", "exports_gb", "ws_minutes"},
						"properties": obj{
							"ingest_spans_count":  obj{"type": "integer", "minimum": 0},
							"derived_spans_count": obj{"type": "integer", "minimum": 0},
							"exports_gb":          obj{"type": "number", "minimum": 0},
							"ws_minutes":          obj{"type": "number", "minimum": 0},
						}}}}},
					obj{"bill": obj{"value": obj{"tenants": obj{"t_bakery": obj{"ingest_spans_count": 1204, "derived_spans_count": 2381, "exports_gb": 0.0042, "ws_minutes": 2}}}}}),
			}},
		},
		{
			method: "GET", path: "/metrics/public", id: "publicMetrics", tag: "operations",
			summary: "Public counters",
			bounded: true,
			responses: obj{"200": obj{
				"description": "The counters.",
				"content": jsonContent(ref("PublicMetrics"), obj{"counters": obj{"value": obj{
					"gateway.requests_total": 120, "gateway.requests_2xx": 112, "gateway.requests_4xx": 8,
					"gateway.latency_ms":    obj{"p50": 1.2, "p95": 4.8, "p99": 9.5},
					"ingest.spans_accepted": 43, "ingest.spans_duplicate": 1, "ingest.spans_rejected": 2,
					"ledger.receipts_total": 43,
				}}}),
			}},
		},
		{
			method: "GET", path: "/problems/{name}", id: "getProblemType", tag: "meta",
			summary:     "What a problem type means",
			description: "The page a problem's type points to: HTML, or JSON with Accept: application/json.",
			params: arr{obj{"name": "name", "in": "path", "required": true, "description": "The problem type's name.",
				"schema": obj{"type": "string", "enum": toArr(problemNames)}, "example": "invalid-span"}},
			responses: obj{"200": obj{
				"description": "The problem type's description.",
				"content": obj{
					"text/html; charset=utf-8": obj{"schema": obj{"type": "string"}},
					"application/json": obj{"schema": ref("ProblemType"), "examples": obj{"invalid-span": obj{"value": obj{
						"type": "/problems/invalid-span", "title": "span rejected by contract", "status": 422,
						"description": problemDoc("invalid-span"),
					}}}},
				},
			}},
			problems: []string{"not-found"},
		},
		{
			method: "GET", path: "/openapi.yaml", id: "openapi", tag: "meta",
			summary:     "This document",
			description: "The OpenAPI 3.1 document of the API, generated from the bundle's .lll schemas (logline openapi writes the same).",
			bounded:     true,
			responses: obj{"200": obj{
				"description": "The document, in YAML.",
				"content":     obj{"application/yaml": obj{"schema": obj{"type": "string"}}},
			}},
		},
		{
			method: "GET", path: "/auth/login", id: "login", tag: "identity", identity: true,
			summary:     "Start a login (OpenID Connect, authorization code with PKCE)",
			description: "Redirects the browser to the OpenID provider. Answered by GET /auth/callback. A CLI passes its loopback redirect_uri and a PKCE challenge, and later exchanges the one-time code at POST /auth/token.",
			bounded:     true,
			params: arr{
				queryParam("tenant", "The tenant to log in to (needed when the user is a member of several).", obj{"type": "string"}),
				queryParam("redirect_uri", "A CLI's loopback URL: http://127.0.0.1:PORT/path or http://[::1]:PORT/path.", obj{"type": "string", "format": "uri"}),
				queryParam("state", "Echoed to redirect_uri, for the CLI's own CSRF check.", obj{"type": "string"}),
				queryParam("code_challenge", "The CLI's PKCE S256 challenge; required with redirect_uri.", obj{"type": "string", "minLength": 43, "maxLength": 43}),
				queryParam("code_challenge_method", "S256, the only method accepted.", obj{"type": "string", "enum": arr{"S256"}}),
			},
			responses: obj{"302": obj{
				"description": "To the provider's authorization endpoint; sets the login cookie that binds the state to this browser.",
				"headers":     obj{"Location": obj{"schema": obj{"type": "string", "format": "uri"}}},
			}},
			problems: []string{"bad-request", "unavailable"},
			variants: []string{"bad-redirect", "login-disabled"},
		},
		{
			method: "GET", path: "/auth/callback", id: "loginCallback", tag: "identity", identity: true,
			summary: "Where the OpenID provider sends the browser back",
			bounded: true,
			params: arr{
				queryParam("state", "The login's state.", obj{"type": "string"}),
				queryParam("code", "The provider's authorization code.", obj{"type": "string"}),
				queryParam("error", "The provider's error, if it refused.", obj{"type": "string"}),
			},
			responses: obj{
				"200": obj{"description": "The LLST, for a browser login.", "content": jsonContent(ref("Token"), obj{"token": exampleRef("token")})},
				"302": obj{"description": "To the CLI's loopback redirect_uri with a one-time code (and its state).", "headers": obj{"Location": obj{"schema": obj{"type": "string", "format": "uri"}}}},
			},
			problems: []string{"bad-request", "unauthenticated", "forbidden", "unavailable"},
			variants: []string{"state-mismatch", "not-member", "login-disabled"},
		},
		{
			method: "POST", path: "/auth/token", id: "token", tag: "identity", identity: true,
			summary:     "Get an LLST",
			description: "An OAuth 2 token endpoint with two grants: client_credentials (a service account; its credentials in the body or with HTTP Basic) and authorization_code (a CLI after login, with its PKCE code_verifier).",
			bounded:     true,
			security:    arr{obj{}, obj{"clientBasic": arr{}}},
			body: obj{
				"required": true,
				"content": obj{
					"application/x-www-form-urlencoded": obj{"schema": ref("TokenRequest")},
					"application/json": obj{"schema": ref("TokenRequest"), "examples": obj{"client_credentials": obj{"value": obj{
						"grant_type": "client_credentials", "client_id": "sa_pos7", "client_secret": "…",
					}}}},
				},
			},
			responses: obj{"200": obj{
				"description": "The LLST (Cache-Control: no-store).",
				"content":     jsonContent(ref("Token"), obj{"token": exampleRef("token")}),
			}},
			problems: []string{"bad-request", "unauthenticated", "forbidden"},
			variants: []string{"unsupported-grant", "invalid-client"},
		},
		{
			method: "POST", path: "/admin/tenants/{tenant}/service-accounts", id: "createServiceAccount", tag: "admin", identity: true,
			summary:     "Create a service account",
			description: "Creates an app's credential in the tenant, with a role. The answer carries the secret, this once. The change is a ledger record (kind audit) with its receipt.",
			auth:        true, capability: "accounts.admin", bounded: true,
			params: arr{tenant},
			body:   obj{"required": true, "content": jsonContent(ref("NewServiceAccount"), obj{"app": obj{"value": obj{"role": "app", "name": "till 7"}}})},
			responses: obj{"201": obj{
				"description": "The account, its client_id and its client_secret.",
				"content":     jsonContent(ref("CreatedServiceAccount"), obj{"created": exampleRef("service-account-created")}),
			}},
			problems: []string{"invalid-json", "bad-request"},
			variants: []string{"unknown-role"},
		},
		{
			method: "GET", path: "/admin/tenants/{tenant}/service-accounts", id: "listServiceAccounts", tag: "admin", identity: true,
			summary: "List the tenant's service accounts (never their secrets)",
			auth:    true, capability: "accounts.admin", bounded: true,
			params: arr{tenant},
			responses: obj{"200": obj{
				"description": "The accounts, revoked ones included.",
				"content":     jsonContent(ref("ServiceAccounts"), obj{"accounts": exampleRef("service-accounts")}),
			}},
		},
		{
			method: "DELETE", path: "/admin/tenants/{tenant}/service-accounts/{id}", id: "revokeServiceAccount", tag: "admin", identity: true,
			summary:     "Revoke a service account",
			description: "Its tokens stop working at once. The change is a ledger record (kind audit) with its receipt.",
			auth:        true, capability: "accounts.admin", bounded: true,
			params:    arr{tenant, pathParam("id", "The account's id (its client_id).", "sa_01K6TQ4Z8N3D5W7XB2C9E1F0GK")},
			responses: obj{"204": obj{"description": "Revoked."}},
			problems:  []string{"not-found"},
			variants:  []string{"no-account"},
		},
		{
			method: "POST", path: "/admin/keys/rotate", id: "rotateKeys", tag: "admin", identity: true,
			summary: "Rotate the LLST signing key",
			description: "The next key becomes active and a new next key is published; the old one verifies until its tokens have expired. " +
				"With reason=compromised (a leak), the active and the next key are both replaced by new ones and every key that may have leaked stops verifying at once: every token issued before is refused. " +
				"Needs keys.rotate, which only the operator tenant's administrators hold. The rotation is a ledger record (kind audit) with its receipt.",
			auth: true, capability: "keys.rotate", bounded: true,
			params: arr{queryParam("reason", "manual (default): the old key keeps verifying for the overlap; compromised: no overlap, for a leak.", obj{"type": "string", "enum": arr{"manual", "compromised"}, "default": "manual"})},
			responses: obj{"200": obj{
				"description": "The new active key's id and the key ring.",
				"content":     jsonContent(ref("SigningKeys"), obj{"rotated": exampleRef("keys-rotated")}),
			}},
		},
		{
			method: "GET", path: "/admin/keys", id: "listKeys", tag: "admin", identity: true,
			summary: "The LLST signing key ring",
			auth:    true, capability: "keys.rotate", bounded: true,
			responses: obj{"200": obj{
				"description": "The keys and their states.",
				"content":     jsonContent(ref("SigningKeys"), obj{"keys": exampleRef("keys")}),
			}},
		},
		{
			method: "POST", path: "/webhooks/in/{tenant}/{source}", id: "webhookIn", tag: "runtime",
			summary: "Receive a webhook (Standard Webhooks) and turn it into spans",
			description: "A third party's webhook, signed as the Standard Webhooks specification says (webhook-id, webhook-timestamp, webhook-signature: \"v1,\" HMAC-SHA256 with the source's whsec_ secret, or \"v1a,\" Ed25519). " +
				"The signature authenticates the request: no token. The source and its secret or public key are runtime.sources.<source> in the tenant's file. " +
				"A timestamp more than five minutes from the server's clock, or a webhook-id already received, is refused and nothing is stored. " +
				"The body (a JSON value) is handed to the bundle's routers whose input is \"webhook\" (fields source, id, received_at, tenant, payload); their ledger.append actions are performed before the answer, which lists the spans appended with their receipts.",
			bounded: true,
			params:  arr{pathParam("tenant", "The tenant the webhook is for.", "t_bakery"), pathParam("source", "The sender, as named in runtime.sources.", "stripe")},
			body:    obj{"required": true, "content": obj{"application/json": obj{"schema": obj{"description": "Any JSON value: the sender's event."}}}},
			responses: obj{"200": obj{
				"description": "The spans the routers appended (status accepted, duplicate or rejected, with receipts).",
				"content":     jsonContent(obj{"type": "object", "properties": obj{"tenant": obj{"type": "string"}, "source": obj{"type": "string"}, "spans": obj{"type": "array", "items": obj{"type": "object"}}}}, nil),
			}},
			problems: []string{"bad-signature", "stale-webhook", "webhook-replay", "not-found", "invalid-json", "body-too-large"},
			extra:    map[string]string{"404": "not-found when the tenant has no such source."},
		},
		{
			method: "GET", path: "/webhooks/key", id: "webhookKey", tag: "runtime",
			summary:     "The key that verifies this server's webhook deliveries (v1a)",
			description: "Every delivery carries two signatures: \"v1,\" with the endpoint's whsec_ secret, and \"v1a,\" (Ed25519) with this server's key, whose public half this returns as whpk_<base64>. A receiver that holds no secret can verify with it.",
			bounded:     true,
			responses: obj{"200": obj{
				"description": "The public key.",
				"content":     jsonContent(obj{"type": "object", "properties": obj{"public_key": obj{"type": "string", "pattern": "^whpk_"}}}, obj{"key": obj{"value": obj{"public_key": "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}}}),
			}},
		},
		{
			method: "GET", path: "/webhooks/{tenant}/deliveries", id: "webhookDeliveries", tag: "runtime",
			summary:     "The delivery log of a tenant's webhooks and router appends",
			description: "Every action the tenant's routers queued that is still pending, and the last finished ones, newest first: webhook-id, router, call, URL, the record (seq) that caused it, state (pending, delivered, dead), attempts, the last status or error, and when the next attempt is due.",
			auth:        true, capability: "stream.read", bounded: true,
			params: arr{pathParam("tenant", "The tenant.", "t_bakery")},
			responses: obj{"200": obj{
				"description": "The log.",
				"content":     jsonContent(obj{"type": "object", "properties": obj{"tenant": obj{"type": "string"}, "deliveries": obj{"type": "array", "items": obj{"type": "object"}}}}, nil),
			}},
		},
		{
			method: "POST", path: "/webhooks/{tenant}/deliveries/{id}/redeliver", id: "webhookRedeliver", tag: "runtime",
			summary:     "Deliver a finished delivery again",
			description: "Queues the delivery again with the same webhook-id (a receiver that remembers ids sees a duplicate), a new timestamp and signature; it survives a restart.",
			auth:        true, capability: "policy.write", bounded: true,
			params: arr{pathParam("tenant", "The tenant.", "t_bakery"), pathParam("id", "The webhook-id.", "msg_ddlodswcvcw26jkxptfbjw3xkn")},
			responses: obj{"202": obj{
				"description": "Queued.",
				"content":     jsonContent(obj{"type": "object", "properties": obj{"id": obj{"type": "string"}, "state": obj{"type": "string"}}}, nil),
			}},
			problems: []string{"not-found"},
		},
		{
			method: "GET", path: "/channels/{tenant}/{channel}", id: "channel", tag: "runtime",
			summary:     "Follow what routers send to a channel (ws.send), NDJSON or WebSocket",
			description: "The payloads the tenant's routers send to the channel with ws.send from now on, one JSON value a line (or one a WebSocket text message when the request upgrades). Live only: nothing is kept for a subscriber that was not there, and one that falls behind by more than 1024 payloads is dropped.",
			auth:        true, capability: "stream.read",
			params: arr{pathParam("tenant", "The tenant.", "t_bakery"), pathParam("channel", "The channel, as the router names it.", "big-sales")},
			responses: obj{"200": obj{
				"description": "Payloads, one per line.",
				"content":     obj{"application/x-ndjson": obj{"schema": obj{"type": "string", "description": "One JSON value per line."}}},
			}},
		},
		{
			method: "GET", path: "/.well-known/jwks.json", id: "jwks", tag: "identity", identity: true,
			summary: "The keys that verify LLSTs",
			bounded: true,
			responses: obj{"200": obj{
				"description": "The JWK Set (cached for a few minutes; the next key is published before it signs).",
				"content": jsonContent(ref("JWKS"), obj{"jwks": obj{"value": obj{"keys": arr{obj{
					"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "2025-10A", "alg": "EdDSA", "use": "sig",
				}}}}}),
			}},
		},
	}
}

func toArr(s []string) arr {
	out := make(arr, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func problemDoc(name string) string {
	for _, t := range reply.ProblemTypes() {
		if t.Name == name {
			return t.Doc
		}
	}
	return ""
}
