// Package tenant is the per-tenant configuration: the tenant file
// cfg/tenants/<tenant>.yaml (File, Parse), its hot reload into the ledger
// (Watcher) and the config records that carry its derivation part
// (ConfigEntry, DecodeConfig).
//
// One file configures everything about a tenant: derivation's features and
// policies, identity's quotas, members and roles, and the redaction of span
// fields. Parse decodes it once, strictly: a member that is not part of the
// format is an error naming the nearest known one ("did you mean …?"), and
// every error says on which line of the file it is. The sections are handed
// on typed: derivation gets a derive.TenantConfig, identity plain quotas,
// members and roles, redaction the split paths.
//
// The derivation part is recorded as it is written. A config record holds
// the tenant's features and policies merged over the bundle's, in their
// generic form (ParseConfig reads it), so that replay of a ledger derives
// from what was in force at each position, whatever the files say today.
// The Watcher appends a record only when a file's content changes, and
// remembers what it recorded in AppliedFile.
package tenant
