package tenant

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/ir"
)

// ParseLLL decodes and checks a tenant file written in .lll,
// cfg/tenants/<tenant>.lll: policy declarations only, with the keys of the
// YAML file's policies section, checked by the language's compiler (each
// error at file:line:col):
//
//	policy quality_meter {
//	  min_score: 70
//	  percentile_target: "p90"
//	}
//
// A tenant's file is either its .yaml or its .lll; features, quotas,
// members, roles, redaction and the runtime section are written in YAML.
func ParseLLL(file string, data []byte, base map[string]any) (*File, error) {
	prog, diags := lll.Compile([]lll.Source{{Name: file, Text: data}})
	if len(diags) > 0 {
		var msgs []string
		for _, d := range diags {
			msgs = append(msgs, d.Error())
		}
		return nil, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(msgs, "\n"))
	}
	p := &parser{file: file}
	for _, pos := range otherDecls(prog) {
		p.add(lineOf(pos), errors.New("a tenant file in .lll holds policy declarations only (features, quotas, members, roles, redact and runtime are written in the .yaml file)"))
	}
	lines := map[string]int{}
	policies := map[string]any{}
	for _, pol := range prog.Policies {
		m := map[string]any{}
		lines["policies."+pol.Name] = lineOf(pol.Pos)
		for _, f := range pol.Fields {
			m[f.Key] = f.Value.Interface()
			lines["policies."+pol.Name+"."+f.Key] = lineOf(f.Pos)
		}
		policies[pol.Name] = m
	}
	f := &File{}
	f.Doc = Merge(base, map[string]any{"policies": policies})
	cfg, err := ParseConfig(f.Doc)
	p.placeAll(err, func(path string) int {
		for ; path != ""; path = parent(path) {
			if line, ok := lines[path]; ok {
				return line
			}
		}
		return 0
	})
	f.Config = cfg
	p.checkRecordable("", f.Doc)
	if len(p.errs) > 0 {
		return nil, p.err()
	}
	return f, nil
}

// NameOf returns the tenant a file of cfg/tenants is for: <tenant>.yaml or
// <tenant>.lll (read in name order, so a tenant's .lll comes first and is
// the one in force).
func NameOf(file string) (string, bool) {
	if name, ok := strings.CutSuffix(file, ".yaml"); ok {
		return name, true
	}
	return strings.CutSuffix(file, ".lll")
}

// ParseFile parses a tenant file by its name: .lll with ParseLLL, else Parse.
func ParseFile(path string, data []byte, base map[string]any) (*File, error) {
	if strings.HasSuffix(path, ".lll") {
		return ParseLLL(path, data, base)
	}
	return Parse(path, data, base)
}

// otherDecls returns the positions of the declarations other than policies.
func otherDecls(prog *ir.Program) []string {
	var out []string
	for _, v := range prog.Validators {
		out = append(out, v.Pos)
	}
	for _, v := range prog.Pipelines {
		out = append(out, v.Pos)
	}
	for _, v := range prog.Routers {
		out = append(out, v.Pos)
	}
	for _, v := range prog.Schemas {
		out = append(out, v.Pos)
	}
	return out
}

// lineOf returns the line of a position "file:line:col".
func lineOf(pos string) int {
	parts := strings.Split(pos, ":")
	if len(parts) < 3 {
		return 0
	}
	n, _ := strconv.Atoi(parts[len(parts)-2])
	return n
}

// parent returns the path one level up ("a.b[2]" → "a.b", "a.b" → "a").
func parent(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}
