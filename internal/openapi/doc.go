// Package openapi builds the OpenAPI 3.1 document of LogLineOS's HTTP API
// (docs/apps.md): the document `logline openapi` writes and the server serves
// at GET /openapi.yaml.
//
// # What comes from where
//
// The shapes of the data come from the bundle: every `schema` of its .lll
// sources becomes a component schema, converted by
// (*bundle.Bundle).JSONSchemas("#/components/schemas/") to JSON Schema 2020-12,
// the dialect of OpenAPI 3.1. In the standard bundle these are span (the body
// of POST /ingest, the span of every record) and the four derived events
// (trajectory_edge, trajectory_closed, trajectory_quality, diamond_candidate).
// A bundle that declares its own span schema changes the document with it.
//
// The envelopes of the API itself are written here, next to the routes that
// send them (routes.go, schemas.go): Problem (RFC 9457, every error),
// IngestResponse and LineResult (the per-line answer of POST /ingest),
// Receipt and BatchRef, Record (with a body schema for each kind of record
// the ledger stores: span, and Tick, TenantConfig and AuditEvent, which the
// server appends itself) and ThingPage, Proof and ConsistencyProof,
// DerivedEvent and Trajectory, the dry run's, and the small bodies of
// health, metrics, identity and admin. DerivedEvent is written by hand
// because the derived streams add seq (the record that caused the event) to
// the members of the bundle's event schemas, which are closed
// (additionalProperties: false) and do not declare it.
//
// The problem types are this package's copy of the gateway's table. The
// tests keep the copy in step with the gateway's source and its
// /problems/NAME pages, check that every route the code mounts is documented
// and every documented route is served by a real server (production and
// --dev), send requests to a real gateway to check each answer's status,
// media type and body against the document, and read a real server's stream
// of every tenant until it has held a record of every kind, each line checked
// against Record.
//
// Every operation lists its error responses as application/problem+json,
// with an example of each problem type it may answer, and a default response
// for the others (404 and 405 for paths and methods that do not exist).
// The examples of bodies (a span, an NDJSON body, an ingest answer with an
// accepted, a duplicate and a rejected line, a receipt, a signed checkpoint)
// are checked against their schemas by the tests; the rejected line's
// problem is the bundle's own verdict on a bad span, so it names the rule and
// the place in the .lll source the server would name.
//
// # Determinism
//
// The document is a pure function of the bundle's resources and the Options:
// no clock, no randomness, no map order. The same bundle (whatever key signed
// it) gives the same bytes, in YAML and in JSON. Keys are written in a fixed
// order that puts the OpenAPI keywords a reader looks for first (openapi,
// info, paths; summary before responses; type before properties) and names
// (paths, schemas, properties, status codes) in sorted order.
package openapi
