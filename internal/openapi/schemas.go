package openapi

// The API's own envelopes, written by hand beside the gateway code that
// sends them (internal/gateway: lineResult, ingestResponse, recordJSON,
// Problem; internal/ledger: Receipt, BatchRef, Proof; internal/identity:
// Token, the JWK Set). The span and the derived events come from the
// bundle (bundleSchemas).

func ref(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }

func apiSchemas() map[string]any {
	seq := func(desc string) obj { return obj{"type": "integer", "minimum": 0, "description": desc} }
	str := func(desc string) obj { return obj{"type": "string", "description": desc} }
	return obj{
		"Hash": obj{
			"type": "string", "contentEncoding": "base64", "pattern": "^[A-Za-z0-9+/]{43}=$",
			"description": "A SHA-256 hash (a leaf or a node of the RFC 6962 Merkle tree), standard base64 of 32 bytes.",
		},
		"Timestamp": obj{
			"type": "string", "format": "date-time", "pattern": `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$`,
			"description": "A ledger time: the server's append time, RFC 3339 in UTC with six fractional digits. All records of one group commit share it.",
		},
		"Problem": obj{
			"type":        "object",
			"description": "An RFC 9457 problem detail, the body of every error (application/problem+json). type is a relative URI: GET it for a short page on the problem type. Members other than those listed may appear (RFC 9457 extensions).",
			"required":    arr{"type", "title", "status"},
			"properties": obj{
				"type":       obj{"type": "string", "format": "uri-reference", "description": "The problem type, /problems/NAME: GET it for a page on the type."},
				"title":      str("The type's short, fixed title."),
				"status":     obj{"type": "integer", "minimum": 100, "maximum": 599, "description": "The HTTP status code."},
				"detail":     str("What went wrong with this request; safe to show, never a stack trace."),
				"instance":   obj{"type": "string", "format": "uri-reference", "description": "The request path."},
				"request_id": obj{"type": "string", "pattern": "^req_[0-9A-HJKMNP-TV-Z]{26}$", "description": "The X-Request-Id of the request; quote it when reporting a problem."},
				"field":      str("For a rejected span: the member at fault."),
				"rule":       str("For a rejected span: the rule, as written in the contract (validator: rule), or the limit (limits.json_depth). For a refusal of the credential or its rights (401, 403, 429, ...): the reason (expired, bad_signature, invalid_client, cross_tenant, quota, ...)."),
				"validator":  str("For a rejected span: the validator of the bundle that refused it."),
				"at":         str("For a rejected span: where the rule is written (file:line:col of the .lll source)."),
				"results":    obj{"type": "array", "items": ref("LineResult"), "description": "When every line of an ingest request was rejected: each line's result, as in IngestResponse."},
				"cursor":     obj{"type": "integer", "minimum": 0, "description": "On the final line of a stream (token-expired, token-revoked): the cursor to reconnect with."},
			},
		},
		"LineResult": obj{
			"type":        "object",
			"description": "What became of one line of an ingest request (one span: an NDJSON line or an array element).",
			"required":    arr{"line", "status"},
			"properties": obj{
				"line":    obj{"type": "integer", "minimum": 1, "description": "The line number in the body (NDJSON, blank lines counted) or the element number (array), from 1."},
				"id":      str("The span's id, when the line could be read."),
				"status":  obj{"type": "string", "enum": arr{"accepted", "duplicate", "rejected"}, "description": "accepted: stored now; duplicate: a span with this id and the same content was stored before, nothing was appended; rejected: not stored, see problem (id-conflict, 409: the id is stored with other content, seq names the stored record)."},
				"seq":     seq("The record's sequence number (for a duplicate or an id conflict, the stored record's)."),
				"receipt": obj{"$ref": "#/components/schemas/Receipt", "description": "The signed receipt (for a duplicate, the original one)."},
				"problem": obj{"$ref": "#/components/schemas/Problem", "description": "Why the line was rejected."},
			},
			"if":   obj{"properties": obj{"status": obj{"const": "rejected"}}},
			"then": obj{"required": arr{"problem"}},
			"else": obj{"required": arr{"id", "seq", "receipt"}},
		},
		"IngestResponse": obj{
			"type":        "object",
			"description": "The answer to POST /ingest when at least one line was accepted or was a duplicate: every line's result, in request order. It is sent only once every accepted span is durable.",
			"required":    arr{"accepted", "duplicates", "rejected", "results"},
			"properties": obj{
				"accepted":   obj{"type": "integer", "minimum": 0},
				"duplicates": obj{"type": "integer", "minimum": 0},
				"rejected":   obj{"type": "integer", "minimum": 0},
				"results":    obj{"type": "array", "items": ref("LineResult")},
			},
		},
		"BatchRef": obj{
			"type":        "object",
			"description": "A receipt's group commit: its first sequence number, its size, the RFC 6962 root of its leaves, and the audit path of this record's leaf in that batch tree.",
			"required":    arr{"first", "size", "root"},
			"properties": obj{
				"first": seq("The sequence number of the commit's first record."),
				"size":  obj{"type": "integer", "minimum": 1, "description": "The number of records in the commit."},
				"root":  ref("Hash"),
				"path":  obj{"type": "array", "items": ref("Hash"), "description": "The audit path of leaf seq-first in the batch tree (absent for a batch of one)."},
			},
		},
		"Receipt": obj{
			"type":        "object",
			"description": "The signed acknowledgement of one appended record. sig is the ledger key's ed25519 signature of the batch statement \"logline receipt v1\\n<origin>\\nledger.append <first> <size> <root> <ts>\\n\"; with the span as sent and the public key (GET /ledger/key) a receipt checks alone (logline ledger verify-receipt).",
			"required":    arr{"op", "seq", "leaf", "batch", "jti", "kid", "sig", "ts"},
			"properties": obj{
				"op":      obj{"type": "string", "enum": arr{"ledger.append"}},
				"span_id": str("The span's id."),
				"tenant":  str("The span's tenant."),
				"seq":     seq("The record's sequence number, its leaf index in the ledger's Merkle tree."),
				"leaf":    ref("Hash"),
				"batch":   ref("BatchRef"),
				"jti":     obj{"type": "string", "pattern": "^r_[0-9A-HJKMNP-TV-Z]{26}$", "description": "The receipt's id: r_ and a ULID whose time is ts and whose entropy is seq."},
				"kid":     obj{"type": "string", "pattern": "^[0-9a-f]{8}$", "description": "The id of the signing key (the signed-note key hash)."},
				"sig":     obj{"type": "string", "contentEncoding": "base64", "pattern": "^[A-Za-z0-9+/]{86}==$", "description": "ed25519 signature of the batch statement, standard base64."},
				"ts":      ref("Timestamp"),
			},
		},
		"Record": obj{
			"type": "object",
			"description": "A stored record: its place in the ledger and its body in canonical JSON (RFC 8785), under a member named by the record's kind. " +
				"The streams send the record line exactly as the segment holds it, with crc; lookups leave crc out and hold spans only. " +
				"Every record has exactly one kind: span (a client's span, the only kind a tenant's stream sends), or one the server appends itself: " +
				"tick (a clock tick that moves derivation time forward), config (a tenant's configuration put in force from that point of the ledger on) " +
				"audit (a security event: token keys created, rotated or retired, service accounts created or revoked) " +
				"and kv (a router's kv.set, which the key-value store of routers is the fold of). " +
				"The kind is the name of the member, not a value, so it cannot be an OpenAPI discriminator: oneOf says which member each kind requires.",
			"required":             arr{"seq", "ts", "leaf"},
			"additionalProperties": false,
			"properties": obj{
				"seq":    seq("The sequence number; to resume a stream, send the last seq received plus one as cursor."),
				"ts":     ref("Timestamp"),
				"leaf":   obj{"$ref": "#/components/schemas/Hash", "description": "The RFC 6962 leaf hash: SHA-256 of 0x00 and the line without its leaf and crc members."},
				"crc":    obj{"type": "string", "pattern": "^[0-9a-f]{8}$", "description": "CRC-32C of the line but these eight digits (streams only)."},
				"span":   ref("span"),
				"tick":   ref("Tick"),
				"config": ref("TenantConfig"),
				"audit":  ref("AuditEvent"),
				"kv":     ref("KVWrite"),
			},
			"oneOf": arr{
				obj{"title": "span record", "required": arr{"span"}},
				obj{"title": "tick record", "required": arr{"tick"}},
				obj{"title": "config record", "required": arr{"config"}},
				obj{"title": "audit record", "required": arr{"audit"}},
				obj{"title": "kv record", "required": arr{"kv"}},
			},
		},
		"ExportLine": obj{
			"type":        "object",
			"description": "One line of a signed tenant export (docs/exports.md): the header (the first line), a span record with its inclusion proof, or the trailer (the last line).",
			"oneOf": arr{
				obj{
					"title": "header", "type": "object", "additionalProperties": false,
					"required": arr{"logline_export", "tenant", "from", "to", "checkpoint"},
					"properties": obj{
						"logline_export": obj{"type": "integer", "enum": arr{1}, "description": "The format version."},
						"tenant":         obj{"type": "string", "minLength": 1},
						"from":           seq("The first sequence number of the range."),
						"to":             seq("The sequence number the range stops before."),
						"checkpoint":     obj{"type": "string", "description": "The ledger's signed checkpoint (a C2SP signed note), verbatim: the records' proofs lead to its root."},
					},
				},
				obj{
					"title": "span record", "type": "object", "additionalProperties": false,
					"required": arr{"seq", "ts", "leaf", "span", "proof"},
					"properties": obj{
						"seq":   seq("The sequence number: the leaf index."),
						"ts":    ref("Timestamp"),
						"leaf":  obj{"$ref": "#/components/schemas/Hash", "description": "The RFC 6962 leaf hash: SHA-256 of 0x00 and {\"seq\":S,\"ts\":\"T\",\"span\":BODY}."},
						"span":  ref("span"),
						"proof": obj{"type": "array", "items": ref("Hash"), "description": "The audit path of the leaf in the tree of the checkpoint's size, from the leaf upwards (RFC 6962)."},
					},
				},
				obj{
					"title": "trailer", "type": "object", "additionalProperties": false,
					"required": arr{"manifest"},
					"properties": obj{
						"manifest": obj{"type": "string", "description": "A signed note, signed with the ledger's key: logline-export/1, tenant, range, records, checkpoint size and root, and the SHA-256 of every byte before this line."},
					},
				},
			},
		},
		"Tick": obj{
			"type":                 "object",
			"description":          "The body of a tick record: the server's clock when it appended the tick. It moves every tenant's derivation clock forward to clock, so idle trajectories close by timeout, and a replay of the ledger closes them at the same record.",
			"required":             arr{"clock"},
			"additionalProperties": false,
			"properties": obj{
				"clock": obj{"type": "string", "format": "date-time", "description": "RFC 3339, UTC."},
			},
			"examples": arr{rawValue(exampleTick)},
		},
		"TenantConfig": obj{
			"type":                 "object",
			"description":          "The body of a config record: a tenant's derivation configuration (the features and policies of its cfg/tenants/<tenant>.yaml), in force from this record on; config null returns the tenant to the defaults.",
			"required":             arr{"config", "tenant"},
			"additionalProperties": false,
			"properties": obj{
				"tenant": obj{"type": "string", "minLength": 1},
				"config": obj{
					"type":        arr{"object", "null"},
					"description": "features (trajectory, diamond, cluster) and policies by name (trajectory_linker, quality_meter, derived_events_perf), as in the tenant file.",
					"properties": obj{
						"features": obj{"type": "object", "additionalProperties": obj{"type": "boolean"}},
						"policies": obj{"type": "object", "additionalProperties": obj{"type": "object"}},
					},
				},
			},
			"examples": arr{rawValue(exampleConfig), obj{"config": nil, "tenant": "t_cafe"}},
		},
		"AuditEvent": obj{
			"type": "object",
			"description": "The body of an audit record: a security event of the server's identity service, recorded in the ledger before it takes effect " +
				"(a change whose record cannot be appended is undone). fields depend on op: " +
				"keys.create: kid, next_kid, alg, at; keys.rotate: reason (manual, scheduled or compromised), kid (now active), previous_kid, next_kid, verify_until, at; keys.retire: kids, at; " +
				"account.create: id, tenant, role, name, by, at, secret_fingerprint (SHA-256 of \"logline account secret v1\\n\" and the stored SHA-256 of the secret); account.revoke: id, tenant, by, at; " +
				"redact.key.create: fingerprint (SHA-256 of \"logline redaction key v1\\n\" and the PII redaction key). " +
				"Key ids are the token signing keys' (GET /.well-known/jwks.json), not the ledger's; no secret or key is ever recorded, and the fingerprints let logline ledger verify check the files that hold them.",
			"required":             arr{"op", "fields", "ts"},
			"additionalProperties": false,
			"properties": obj{
				"op":     obj{"type": "string", "enum": auditOps()},
				"ts":     obj{"type": "string", "format": "date-time", "description": "When the server recorded the event."},
				"fields": obj{"type": "object", "description": "The event's details (see the description for each op)."},
			},
			"examples": arr{rawValue(exampleAudit)},
		},
		"KVWrite": obj{
			"type": "object",
			"description": "The body of a kv record: a router's kv.set, performed when the record cause was routed. " +
				"A tenant's key-value store is the fold of its kv records in ledger order (value null deletes the key); " +
				"the server rebuilds it from them when its cache is missing (logline ledger reindex).",
			"required":             arr{"bundle", "cause", "id", "key", "router", "tenant", "value"},
			"additionalProperties": false,
			"properties": obj{
				"bundle": obj{"type": "string", "description": "The hash of the bundle whose router wrote it."},
				"cause":  seq("The seq of the record whose routing wrote it."),
				"id":     obj{"type": "string", "pattern": "^msg_[a-z2-7]{26}$", "description": "The action's id, derived from the record and the route."},
				"key":    obj{"type": "string", "minLength": 1, "maxLength": 256},
				"router": obj{"type": "string"},
				"tenant": obj{"type": "string"},
				"value":  obj{"description": "The value set (any JSON value, at most 64 KiB of it); null deletes the key."},
			},
			"examples": arr{rawValue(exampleKV)},
		},
		"ThingPage": obj{
			"type":        "object",
			"description": "The spans of one thing (this), in ledger order, a page at a time.",
			"required":    arr{"tenant", "this", "spans"},
			"properties": obj{
				"tenant":      obj{"type": "string"},
				"this":        obj{"type": "string"},
				"spans":       obj{"type": "array", "items": ref("Record")},
				"next_cursor": seq("Present when there are more: pass it as cursor for the next page."),
			},
		},
		"Proof": obj{
			"type":        "object",
			"description": "An RFC 6962 inclusion proof of record leaf_index in the tree of tree_size records, and that tree's root (compare it with a signed checkpoint's).",
			"required":    arr{"leaf_index", "tree_size", "leaf_hash", "path", "root"},
			"properties": obj{
				"leaf_index": seq("The record's sequence number."),
				"tree_size":  obj{"type": "integer", "minimum": 1},
				"leaf_hash":  ref("Hash"),
				"path":       obj{"type": "array", "items": ref("Hash")},
				"root":       ref("Hash"),
			},
		},
		"ConsistencyProof": obj{
			"type":        "object",
			"description": "An RFC 6962 consistency proof between the tree of from records and the tree of tree_size records: the ledger only grew.",
			"required":    arr{"from", "tree_size", "from_root", "root", "path"},
			"properties": obj{
				"from":      seq("The older tree size."),
				"tree_size": seq("The newer tree size."),
				"from_root": ref("Hash"),
				"root":      ref("Hash"),
				"path":      obj{"type": "array", "items": ref("Hash")},
			},
		},
		"DerivedEvent": obj{
			"type": "object",
			"description": "A derived event as the derived streams send it, in canonical JSON: the members of its type's schema, declared by the bundle " +
				"(trajectory_edge, trajectory_closed, trajectory_quality, diamond_candidate), plus seq, the sequence number of the ledger record whose derivation produced it; " +
				"or shed_derived, the count of events of each type a guardrail shed in one minute (derived_events_perf.on_overload: shed_derived).",
			"required": arr{"type", "seq", "tenant", "ts"},
			"properties": obj{
				"type":          obj{"type": "string", "enum": arr{"trajectory_edge", "trajectory_closed", "trajectory_quality", "diamond_candidate", "shed_derived"}},
				"seq":           seq("The ledger record whose derivation produced the event (a span, or a clock tick for a close by timeout)."),
				"tenant":        obj{"type": "string"},
				"ts":            obj{"type": "string", "format": "date-time"},
				"trajectory_id": obj{"type": "string", "pattern": "^t_[0-9a-v]{24}$"},
				"minute":        obj{"type": "string", "format": "date-time", "description": "shed_derived: the minute the counts cover."},
				"shed":          obj{"type": "object", "additionalProperties": obj{"type": "integer", "minimum": 0}, "description": "shed_derived: events shed, by type."},
			},
		},
		"Trajectory": obj{
			"type":        "object",
			"description": "One trajectory assembled from its derived events: its edges and their spans in order, and once closed its close, quality score and candidate flag.",
			"required":    arr{"trajectory_id", "tenant", "status", "edges", "spans"},
			"properties": obj{
				"trajectory_id": obj{"type": "string"},
				"tenant":        obj{"type": "string"},
				"status":        obj{"type": "string", "enum": arr{"open", "closed"}},
				"this":          obj{"type": "string", "description": "The thing the trajectory follows."},
				"edges":         obj{"type": "array", "items": ref("DerivedEvent"), "description": "trajectory_edge events."},
				"spans":         obj{"type": "array", "items": ref("Record"), "description": "The edges' spans (the first 1000)."},
				"closed":        obj{"$ref": "#/components/schemas/DerivedEvent", "description": "The trajectory_closed event."},
				"quality":       obj{"$ref": "#/components/schemas/DerivedEvent", "description": "The trajectory_quality event."},
				"candidate":     obj{"$ref": "#/components/schemas/DerivedEvent", "description": "The diamond_candidate event, if the trajectory is one."},
			},
		},
		"DryRunRequest": obj{
			"type":                 "object",
			"description":          "A dry run with other policies or features than the standard ones.",
			"required":             arr{"spans"},
			"additionalProperties": false,
			"properties": obj{
				"policies": obj{"type": "object", "description": "Policy overrides by policy name (trajectory_linker, quality_meter, derived_events_perf), as in a tenant file."},
				"features": obj{"type": "object", "description": "Feature flags (trajectory, diamond, cluster)."},
				"spans":    obj{"type": "array", "items": ref("span"), "minItems": 1},
			},
		},
		"DryRunSummary": obj{
			"type":        "object",
			"description": "What the cycle derives from the spans, computed by the same engine as live derivation; nothing is written.",
			"required":    arr{"spans", "trajectories", "open", "closed", "excepted", "scored", "score", "candidates", "candidate_rate", "threshold", "shed", "event_count", "policy"},
			"properties": obj{
				"policy": obj{"type": "object", "description": "The policy the run used: the tenant's in force (its tenant file over the bundle's policies), or the bundle's when the tenant has no file, with the request's policies and features over it.",
					"required": arr{"tenant", "source", "overrides", "hash"}, "additionalProperties": false,
					"properties": obj{
						"tenant":    obj{"type": "string"},
						"source":    obj{"type": "string", "enum": arr{"tenant file", "bundle"}},
						"overrides": obj{"type": "boolean", "description": "Whether the request's policies or features were laid over it."},
						"hash":      obj{"type": "string", "pattern": "^sha256:[0-9a-f]{64}$", "description": "SHA-256 of the configuration's canonical JSON (the config member of a config record); logline quality simulate --tenant-config prints the same for the same tenant file."},
					}},
				"spans":        obj{"type": "integer", "minimum": 0},
				"trajectories": obj{"type": "integer", "minimum": 0, "description": "Trajectories opened."},
				"open":         obj{"type": "integer", "minimum": 0, "description": "Still open at the end."},
				"closed": obj{"type": "object", "required": arr{"timeout", "rule", "evicted"}, "properties": obj{
					"timeout": obj{"type": "integer", "minimum": 0}, "rule": obj{"type": "integer", "minimum": 0},
					"evicted": obj{"type": "integer", "minimum": 0, "description": "Closed to keep the tenant within trajectory_linker.max_open_trajectories."}}},
				"excepted": obj{"type": "integer", "minimum": 0, "description": "Spans never linked because of an exception."},
				"scored":   obj{"type": "integer", "minimum": 0},
				"score": obj{"type": "object", "required": arr{"p50", "p95", "p99", "histogram"}, "properties": obj{
					"p50":       obj{"type": "integer", "minimum": 0, "maximum": 100},
					"p95":       obj{"type": "integer", "minimum": 0, "maximum": 100},
					"p99":       obj{"type": "integer", "minimum": 0, "maximum": 100},
					"histogram": obj{"type": "array", "items": obj{"type": "integer", "minimum": 0}, "minItems": 101, "maxItems": 101, "description": "Scores, by score 0 to 100."},
				}},
				"candidates":     obj{"type": "integer", "minimum": 0},
				"candidate_rate": obj{"type": "number", "minimum": 0, "maximum": 1},
				"threshold":      obj{"type": "integer", "minimum": -1, "maximum": 100, "description": "The meter threshold of the last score decided; -1 if none."},
				"shed":           obj{"type": "integer", "minimum": 0},
				"event_count":    obj{"type": "integer", "minimum": 0},
				"events":         obj{"type": "array", "items": ref("DerivedEvent"), "description": "With events=true."},
				"rejected":       obj{"type": "array", "items": ref("LineResult"), "description": "The lines the contract rejected (left out of the run)."},
			},
		},
		"IngestCounts": obj{
			"type": "object", "required": arr{"spans", "accepted_since_start", "rejected_since_start"},
			"properties": obj{
				"spans":                obj{"type": "integer", "minimum": 0, "description": "Spans in the ledger, as derivation has seen them."},
				"accepted_since_start": obj{"type": "integer", "minimum": 0},
				"rejected_since_start": obj{"type": "integer", "minimum": 0},
			},
		},
		"DerivationState": obj{
			"type": "object", "required": arr{"cursor", "backlog", "max_backlog", "backpressure"},
			"properties": obj{
				"cursor":            obj{"type": "integer", "minimum": 0},
				"backlog":           obj{"type": "integer", "minimum": 0, "description": "Durable records not derived yet."},
				"max_backlog":       obj{"type": "integer", "minimum": 0},
				"backpressure":      obj{"enum": arr{"ok", "holding", "stopped"}, "description": "holding: ingest waits (then 429/503) while the backlog is past max_backlog; stopped: derivation is not running."},
				"error":             obj{"type": "string"},
				"derived_events":    obj{"type": "integer", "minimum": 0},
				"linked":            obj{"type": "integer", "minimum": 0},
				"open_trajectories": obj{"type": "integer", "minimum": 0},
				"scored":            obj{"type": "integer", "minimum": 0},
				"candidates":        obj{"type": "integer", "minimum": 0},
			},
		},
		"Health": obj{
			"type": "object", "required": arr{"status"},
			"properties": obj{"status": obj{"const": "ok"}},
		},
		"Ready": obj{
			"type": "object", "required": arr{"status", "next_seq"},
			"properties": obj{
				"status":   obj{"const": "ready"},
				"next_seq": seq("The sequence number the next record will get (the number of records)."),
			},
		},
		"ProblemType": obj{
			"type":        "object",
			"description": "The description of a problem type (GET /problems/{name} with Accept: application/json).",
			"required":    arr{"type", "title", "status", "description"},
			"properties": obj{
				"type":        obj{"type": "string", "format": "uri-reference"},
				"title":       obj{"type": "string"},
				"status":      obj{"type": "integer", "minimum": 100, "maximum": 599},
				"description": obj{"type": "string"},
			},
		},
		"PublicMetrics": obj{
			"type":        "object",
			"description": "The public counters under their dotted names (gateway.requests_total, ledger.receipts_total, ...); latencies are objects of p50, p95 and p99 in milliseconds.",
			"additionalProperties": obj{"oneOf": arr{
				obj{"type": "number"},
				obj{"type": "object", "additionalProperties": obj{"type": "number"}},
			}},
		},
		"TokenRequest": obj{
			"type":        "object",
			"description": "An OAuth 2 token request: client_credentials (a service account: client_id and client_secret, in the body or HTTP Basic) or authorization_code (a CLI after login: code, code_verifier, redirect_uri).",
			"required":    arr{"grant_type"},
			"properties": obj{
				"grant_type":    obj{"type": "string", "enum": arr{"client_credentials", "authorization_code"}},
				"client_id":     obj{"type": "string"},
				"client_secret": obj{"type": "string", "writeOnly": true},
				"code":          obj{"type": "string"},
				"code_verifier": obj{"type": "string"},
				"redirect_uri":  obj{"type": "string", "format": "uri"},
			},
			"additionalProperties": false,
		},
		"NewServiceAccount": obj{
			"type": "object", "required": arr{"role"}, "additionalProperties": false,
			"properties": obj{
				"role": obj{"type": "string", "description": "A role of the tenant (admin, writer, reader, auditor, app, monitor in the operator tenant, or one of the tenant's own)."},
				"name": obj{"type": "string", "description": "A name for people."},
			},
		},
		"ServiceAccount": obj{
			"type":        "object",
			"description": "A service account: an app's long-lived credential, scoped to a tenant and a role, exchanged for LLSTs at POST /auth/token. Its secret is never shown again after creation.",
			"required":    arr{"id", "tenant", "role", "created"},
			"properties": obj{
				"id":         obj{"type": "string", "description": "The client_id."},
				"tenant":     obj{"type": "string"},
				"role":       obj{"type": "string"},
				"name":       obj{"type": "string"},
				"created":    obj{"type": "string", "format": "date-time"},
				"created_by": obj{"type": "string"},
				"revoked":    obj{"type": "string", "format": "date-time"},
				"revoked_by": obj{"type": "string"},
			},
		},
		"CreatedServiceAccount": obj{
			"type": "object", "required": arr{"account", "client_id", "client_secret"},
			"properties": obj{
				"account":       ref("ServiceAccount"),
				"client_id":     obj{"type": "string"},
				"client_secret": obj{"type": "string", "description": "Shown this once."},
				"note":          obj{"type": "string"},
			},
		},
		"ServiceAccounts": obj{
			"type": "object", "required": arr{"tenant", "service_accounts"},
			"properties": obj{
				"tenant":           obj{"type": "string"},
				"service_accounts": obj{"type": "array", "items": ref("ServiceAccount")},
			},
		},
		"SigningKey": obj{
			"type":        "object",
			"description": "A key of the LLST signing key ring: next (published, not signing yet), active (signing), verify_only (replaced, still verifying until verify_until).",
			"required":    arr{"kid", "state", "created", "published"},
			"properties": obj{
				"kid":          obj{"type": "string"},
				"state":        obj{"type": "string", "enum": arr{"next", "active", "verify_only"}},
				"created":      obj{"type": "string", "format": "date-time"},
				"activated":    obj{"type": "string", "format": "date-time"},
				"verify_until": obj{"type": "string", "format": "date-time"},
				"published":    obj{"type": "boolean", "description": "Whether GET /.well-known/jwks.json lists it."},
			},
		},
		"SigningKeys": obj{
			"type": "object", "required": arr{"keys"},
			"properties": obj{
				"kid":  obj{"type": "string", "description": "After a rotation: the new active key."},
				"keys": obj{"type": "array", "items": ref("SigningKey")},
			},
		},
		"Token": obj{
			"type":        "object",
			"description": "An LLST (LogLineOS session token): a short-lived JWT signed EdDSA, to send as Authorization: Bearer.",
			"required":    arr{"access_token", "token_type", "expires_in", "expires_at", "sub", "tenant", "roles", "jti"},
			"properties": obj{
				"access_token": obj{"type": "string"},
				"token_type":   obj{"const": "Bearer"},
				"expires_in":   obj{"type": "integer", "minimum": 0, "description": "Seconds."},
				"expires_at":   obj{"type": "string", "format": "date-time"},
				"sub":          obj{"type": "string", "description": "The LLID of the user or service account."},
				"tenant":       obj{"type": "string"},
				"roles":        obj{"type": "array", "items": obj{"type": "string"}},
				"jti":          obj{"type": "string"},
			},
		},
		"JWKS": obj{
			"type":        "object",
			"description": "The JWK Set of the keys that verify LLSTs now, and the next key, published before it signs (RFC 7517, RFC 8037).",
			"required":    arr{"keys"},
			"properties": obj{
				"keys": obj{"type": "array", "items": obj{
					"type":     "object",
					"required": arr{"kty", "crv", "x", "kid", "alg", "use"},
					"properties": obj{
						"kty": obj{"const": "OKP"},
						"crv": obj{"const": "Ed25519"},
						"x":   obj{"type": "string", "contentEncoding": "base64url"},
						"kid": obj{"type": "string"},
						"alg": obj{"const": "EdDSA"},
						"use": obj{"const": "sig"},
					},
				}},
			},
		},
	}
}
