package tenant

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/suggest"
)

// File is a tenant file, cfg/tenants/<tenant>.yaml, decoded and checked:
//
//	features: {trajectory: true, diamond: true, cluster: false}
//	quotas:   {ingest_per_second: 2000, burst: 4000}
//	policies:
//	  trajectory_linker: {close_timeout: "2h", exceptions: ["this:heartbeat-*"]}
//	  quality_meter:     {percentile_target: "p96", min_score: 60}
//	redact:   ["data.customer_email"]
//	members:  {"alice@example.com": [writer], "u_0123...": [admin]}
//	roles:    {auditor: [stream.read, receipts.read]}
//
// Every member is optional. features and policies override the bundle's for
// this tenant (see ParseConfig); they reach derivation through a config
// record in the ledger (Doc). quotas, members and roles go to identity,
// redact to the server's redaction.
type File struct {
	// Config is the tenant's complete derivation configuration: the base
	// given to Parse with the file's features and policies over it.
	Config derive.TenantConfig
	// Doc is Config in the generic form a config record carries
	// (ConfigEntry): the base merged with the file's features and policies
	// as written.
	Doc map[string]any

	// Quotas is the tenant's ingest token bucket; zero: the server's
	// default.
	Quotas Quotas
	// Members maps a person, by LLID ("u_…") or by an email address the
	// login provider has verified, to roles in the tenant.
	Members map[string][]string
	// Roles overrides the capabilities of roles in this tenant: a listed
	// role gets exactly the capabilities listed; a new name defines a role.
	Roles map[string][]string
	// Redact lists the span fields whose values are replaced by keyed
	// hashes before anything is written, each as its path of member names:
	// ["who"], ["data", "customer_email"].
	Redact [][]string
	// Runtime is what the tenant's routers may do (nil: nothing).
	Runtime *Runtime
}

// Quotas are a tenant's token bucket: IngestPerSecond sustained, Burst at
// once, in units of one span ingested (reads, streams, exports and dry runs
// cost their documented weights), and a bucket of its own for each role in
// Roles, checked as well as the tenant's.
type Quotas struct {
	IngestPerSecond float64              `yaml:"ingest_per_second"`
	Burst           int                  `yaml:"burst"`
	Roles           map[string]RoleQuota `yaml:"roles"`
}

// RoleQuota is the bucket of the principals holding a role.
type RoleQuota struct {
	IngestPerSecond float64 `yaml:"ingest_per_second"`
	Burst           int     `yaml:"burst"`
}

// ErrInvalid is wrapped by every error Parse returns about the content of a
// tenant file.
var ErrInvalid = errors.New("tenant: invalid tenant file")

// An Error is one problem of a tenant file, where it is written.
type Error struct {
	File string // as given to Parse; may be empty
	Line int    // 1-based; 0 when the problem has no single place
	// Err is the problem: a *derive.ConfigError for a bad derivation
	// setting, else an error whose text starts with the member's path.
	Err error
}

// Error returns "file:line: path: problem", leaving out what is unknown.
func (e *Error) Error() string {
	msg := e.Err.Error()
	if ce, ok := e.Err.(*derive.ConfigError); ok {
		msg = ce.Path + ": " + ce.Msg
	}
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, msg)
	case e.File != "":
		return e.File + ": " + msg
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s", e.Line, msg)
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrInvalid) true, and errors.As reach the
// problem (errors.Is(err, derive.ErrInvalidConfig) for a bad setting).
func (e *Error) Unwrap() []error { return []error{ErrInvalid, e.Err} }

// fileYAML is the top level of a tenant file as decoded. features and
// policies stay nodes: they are read in their generic form (ParseConfig),
// which a config record records, and their nodes place errors on lines.
type fileYAML struct {
	Features yaml.Node           `yaml:"features"`
	Policies yaml.Node           `yaml:"policies"`
	Quotas   Quotas              `yaml:"quotas"`
	Members  map[string][]string `yaml:"members"`
	Roles    map[string][]string `yaml:"roles"`
	Redact   []yaml.Node         `yaml:"redact"`
	Runtime  *Runtime            `yaml:"runtime"`
}

// Parse decodes and checks a tenant file, named file in errors (a path, or
// "" when the caller names it itself). base is the derivation configuration
// the file's features and policies override, in generic form (the bundle's;
// nil: derive's defaults).
//
// The file is decoded once, strictly: a member that is not part of the
// format is an error naming the nearest known one, and every error is an
// *Error with the line it is written on. The error joins every problem
// found, in line order.
func Parse(file string, data []byte, base map[string]any) (*File, error) {
	p := &parser{file: file}
	raw := p.decode(data)
	if len(p.errs) > 0 {
		return nil, p.err()
	}
	f := &File{Quotas: raw.Quotas, Members: raw.Members, Roles: raw.Roles, Runtime: raw.Runtime}
	p.checkRuntime(f.Runtime)
	f.Doc = Merge(base, p.overrides(raw))
	cfg, err := ParseConfig(f.Doc)
	p.placeAll(err, nil)
	f.Config = cfg
	p.checkRecordable("", f.Doc)
	if q := raw.Quotas; q.IngestPerSecond < 0 || q.Burst < 0 {
		p.add(p.line("quotas"), errors.New("quotas: ingest_per_second and burst must not be negative"))
	}
	for _, role := range slices.Sorted(maps.Keys(raw.Quotas.Roles)) {
		if q := raw.Quotas.Roles[role]; q.IngestPerSecond <= 0 || q.Burst <= 0 {
			p.add(p.line("quotas"), fmt.Errorf("quotas.roles.%s: ingest_per_second and burst must both be positive", role))
		}
	}
	for _, n := range raw.Redact {
		if n.Tag == "!!null" {
			continue // redact: [~] names nothing
		}
		var entry string
		if err := n.Decode(&entry); err != nil {
			p.addYAML("redact", err)
			continue
		}
		path, err := redactPath(entry)
		if err != nil {
			p.add(n.Line, err)
			continue
		}
		f.Redact = append(f.Redact, path)
	}
	if len(p.errs) > 0 {
		return nil, p.err()
	}
	return f, nil
}

// A parser holds one Parse's document and problems.
type parser struct {
	file string
	root *yaml.Node // the top-level mapping; nil for an empty file
	errs []error
}

func (p *parser) add(line int, err error) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Err: err})
}

// err joins the problems in line order (those of one line in the order
// found).
func (p *parser) err() error {
	slices.SortStableFunc(p.errs, func(a, b error) int { return a.(*Error).Line - b.(*Error).Line })
	return errors.Join(p.errs...)
}

// yamlLine splits the line out of yaml's messages: "yaml: line 3: …" for
// syntax, "line 3: …" for each entry of a *yaml.TypeError.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// addYAML adds an error of the yaml decoder, one for each problem it lists,
// prefixing the member path (if any) to the message.
func (p *parser) addYAML(path string, err error) {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, msg := range msgs {
		line := 0
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		if path != "" {
			msg = path + ": " + msg
		}
		p.add(line, errors.New(msg))
	}
}

// decode parses data and decodes its top level, checking every member name.
func (p *parser) decode(data []byte) fileYAML {
	var raw fileYAML
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) { // an empty file is an empty configuration
			p.addYAML("", err)
		}
		return raw
	}
	root := resolve(&doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = resolve(root.Content[0])
	}
	switch {
	case root.Tag == "!!null":
		return raw
	case root.Kind != yaml.MappingNode:
		p.add(root.Line, fmt.Errorf("want a map of %s, got %s", strings.Join(yamlNames(raw), ", "), root.Tag))
		return raw
	}
	p.root = root
	p.checkMembers("", root, yamlNames(raw))
	if _, q := member(root, "quotas"); q != nil && q.Kind == yaml.MappingNode {
		p.checkMembers("quotas", q, yamlNames(raw.Quotas))
		if _, roles := member(q, "roles"); roles != nil && roles.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(roles.Content); i += 2 {
				if rq := resolve(roles.Content[i+1]); rq.Kind == yaml.MappingNode {
					p.checkMembers("quotas.roles."+roles.Content[i].Value, rq, yamlNames(RoleQuota{}))
				}
			}
		}
	}
	p.checkRuntimeMembers(root)
	if len(p.errs) == 0 {
		if err := root.Decode(&raw); err != nil {
			p.addYAML("", err)
		}
	}
	return raw
}

// checkMembers reports the members of mapping n that are not in known, and
// members written twice. path is n's path ("" for the top level).
func (p *parser) checkMembers(path string, n *yaml.Node, known []string) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Tag == "!!merge" {
			// A merge key (<<: *defaults): the merged mappings' members are
			// this mapping's, and may be overridden here.
			p.checkMerged(path, n.Content[i+1], known)
			continue
		}
		name := path + "." + k.Value
		if path == "" {
			name = k.Value
		}
		switch first, dup := seen[k.Value]; {
		case dup:
			p.add(k.Line, fmt.Errorf("%s: written twice (first on line %d)", name, first))
		case !slices.Contains(known, k.Value):
			p.add(k.Line, fmt.Errorf("%s: unknown member%s (known: %s)", name, suggest.DidYouMean(k.Value, known), strings.Join(known, ", ")))
		}
		seen[k.Value] = k.Line
	}
}

// checkMerged checks the members of what a merge key merges: a mapping, or
// a sequence of them.
func (p *parser) checkMerged(path string, v *yaml.Node, known []string) {
	v = resolve(v)
	switch v.Kind {
	case yaml.MappingNode:
		p.checkMembers(path, v, known)
	case yaml.SequenceNode:
		for _, m := range v.Content {
			p.checkMerged(path, m, known)
		}
	}
}

// overrides returns the file's features and policies in generic form, as
// they override the base: a member left out or null overrides nothing.
func (p *parser) overrides(raw fileYAML) map[string]any {
	over := map[string]any{}
	for name, n := range map[string]*yaml.Node{"features": &raw.Features, "policies": &raw.Policies} {
		if n.Kind == 0 || n.Tag == "!!null" {
			continue
		}
		// A mapping is read with its keys as written (1.0 stays "1.0"), as
		// the records always held them.
		var v any
		if n.Kind == yaml.MappingNode {
			var m map[string]any
			if err := n.Decode(&m); err != nil {
				p.addYAML(name, err)
				continue
			}
			v = m
		} else if err := n.Decode(&v); err != nil {
			p.addYAML(name, err)
			continue
		}
		over[name] = normalize(v)
	}
	return over
}

// checkRecordable reports the values of v, the document a config record
// will carry, that JSON cannot hold: YAML's .nan and .inf (in a policy
// derivation does not read, so ParseConfig lets them through).
func (p *parser) checkRecordable(path string, v any) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			p.add(p.line(path), fmt.Errorf("%s: %v cannot be recorded (JSON has no NaN or infinity)", path, x))
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			p.checkRecordable(join(k), x[k])
		}
	case []any:
		for i, e := range x {
			p.checkRecordable(fmt.Sprintf("%s[%d]", path, i), e)
		}
	}
}

// placeAll adds the problems of err (joined *derive.ConfigError values) at
// the lines their paths are written on (lineOf; p.line when nil).
func (p *parser) placeAll(err error, lineOf func(path string) int) {
	if lineOf == nil {
		lineOf = p.line
	}
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		line := 0
		if ce, ok := e.(*derive.ConfigError); ok {
			line = lineOf(ce.Path)
		}
		p.add(line, e)
	}
}

// line returns the line where path ("policies.trajectory_linker.key_fields[1]")
// is written, or where its nearest written ancestor is: a value the file
// does not set comes from the base. 0 when none is written.
func (p *parser) line(path string) int {
	n, line := p.root, 0
	for seg := range strings.SplitSeq(path, ".") {
		name, index, _ := strings.Cut(seg, "[")
		k, v := member(n, name)
		if k == nil {
			return line
		}
		line, n = k.Line, v
		if i, err := strconv.Atoi(strings.TrimSuffix(index, "]")); err == nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
			n = resolve(n.Content[i])
			line = n.Line
		}
	}
	return line
}

// member returns the key and value nodes of member name of mapping n, or
// nils.
func member(n *yaml.Node, name string) (key, value *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == name {
			return n.Content[i], resolve(n.Content[i+1])
		}
	}
	return nil, nil
}

// yamlNames lists the members of struct v by their yaml tags, in field
// order.
func yamlNames(v any) []string {
	t := reflect.TypeOf(v)
	names := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// normalize turns YAML's map[any]any trees into JSON-like ones.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = normalize(x)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[fmt.Sprint(k)] = normalize(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = normalize(x)
		}
		return out
	}
	return v
}

// redactPath checks a redact entry and splits it into its path: identity
// members (id, tenant) and when cannot be redacted, since the ledger and
// derivation need them; data members can.
func redactPath(p string) ([]string, error) {
	parts := strings.Split(p, ".")
	switch parts[0] {
	case "id", "tenant", "when":
		return nil, fmt.Errorf("redact %q: %s cannot be redacted (the ledger and derivation need it)", p, parts[0])
	case "who", "did", "this", "status", "confirmed_by":
		if len(parts) > 1 {
			return nil, fmt.Errorf("redact %q: %s has no members", p, parts[0])
		}
	case "data":
		if len(parts) < 2 {
			return nil, errors.New(`redact "data": name a member of data, e.g. data.customer_email`)
		}
	default:
		return nil, fmt.Errorf("redact %q: not a span field (who, did, this, status, confirmed_by or data.<member>)", p)
	}
	if slices.Contains(parts, "") {
		return nil, fmt.Errorf("redact %q: empty path element", p)
	}
	return parts, nil
}
