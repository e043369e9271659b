package bundle

import (
	"encoding/json"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/ir"
)

// JSONSchemaDialect is the JSON Schema dialect of JSONSchemas (the default
// dialect of OpenAPI 3.1).
const JSONSchemaDialect = "https://json-schema.org/draft/2020-12/schema"

// JSONSchemas returns each schema of the bundle as a JSON Schema 2020-12
// object, by name. References to other schemas are refPrefix + name
// (e.g. "#/components/schemas/" in an OpenAPI document).
func (b *Bundle) JSONSchemas(refPrefix string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, s := range b.IR.Schemas {
		out[s.Name] = JSONSchema(s, refPrefix)
	}
	return out
}

// JSONSchema converts one schema.
func JSONSchema(s *ir.Schema, refPrefix string) map[string]any {
	m := stype(s.Type, refPrefix)
	m["$schema"] = JSONSchemaDialect
	m["title"] = s.Name
	return m
}

func stype(t *ir.SType, ref string) map[string]any {
	m := map[string]any{}
	if t == nil {
		return m
	}
	switch t.Kind {
	case "string":
		m["type"] = "string"
	case "int":
		m["type"] = "integer"
	case "number":
		m["type"] = "number"
	case "bool":
		m["type"] = "boolean"
	case "any":
	case "object":
		m["type"] = "object"
		if t.Fields != nil {
			props := map[string]any{}
			req := []string{}
			for _, f := range t.Fields {
				props[f.Name] = stype(f.Type, ref)
				if !f.Optional {
					req = append(req, f.Name)
				}
			}
			m["properties"] = props
			if len(req) > 0 {
				m["required"] = req
			}
		}
		if !t.Open {
			m["additionalProperties"] = false
		}
	case "list":
		m["type"] = "array"
		m["items"] = stype(t.Elem, ref)
	case "const":
		m["const"] = t.Const
	case "union":
		consts := []any{}
		for _, a := range t.Alts {
			if a.Kind != "const" {
				consts = nil
				break
			}
			consts = append(consts, a.Const)
		}
		if consts != nil {
			m["enum"] = consts
		} else {
			var alts []any
			for _, a := range t.Alts {
				alts = append(alts, stype(a, ref))
			}
			m["anyOf"] = alts
		}
	case "ref":
		m["$ref"] = ref + t.Ref
	}
	if t.Min != "" {
		m["minimum"] = json.Number(t.Min)
		m["maximum"] = json.Number(t.Max)
	}
	if t.Format != "" {
		if f, ok := abi.Formats()[t.Format]; ok {
			for k, v := range f.Schema {
				if k == "type" {
					continue
				}
				m[k] = v
			}
		}
	}
	return m
}
