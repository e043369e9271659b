package openapi

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A document is built from these and normalized (normalize) to the values
// encoding/json decodes with UseNumber: map[string]any, []any, string,
// json.Number, bool and nil. Both encodings are written from that form.
type (
	obj = map[string]any
	arr = []any
)

// normalize deep-copies v into the plain JSON form.
func normalize(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// keyOrder is the order of the OpenAPI and JSON Schema keywords in an
// object; other keys follow, sorted. Objects whose keys are names (paths,
// properties, schemas, status codes, media types) and example values are
// sorted throughout.
func keyOrder() map[string]int {
	keys := []string{
		"openapi", "info", "jsonSchemaDialect", "servers", "tags", "paths", "components",
		"$schema", "$id", "$ref", "name", "in", "title", "summary", "version", "hash", "description",
		"operationId", "externalDocs", "url", "license", "identifier",
		"type", "scheme", "bearerFormat", "const", "enum", "format", "contentMediaType", "contentEncoding",
		"pattern", "minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems", "items",
		"required", "properties", "additionalProperties", "allOf", "anyOf", "oneOf", "if", "then", "else",
		"security", "parameters", "requestBody", "style", "explode", "schema", "headers", "content",
		"examples", "example", "value", "externalValue", "responses",
		"schemas", "securitySchemes",
	}
	m := make(map[string]int, len(keys))
	for i, k := range keys {
		m[k] = i
	}
	return m
}

// rank is k's place in order; keys not in it come last.
func rank(order map[string]int, k string) int {
	if r, ok := order[k]; ok {
		return r
	}
	return len(order)
}

// pathOrder ranks the paths in the order of routes.
func pathOrder() map[string]int {
	m := map[string]int{}
	for _, rt := range routes(nil) {
		if _, ok := m[rt.path]; !ok {
			m[rt.path] = len(m)
		}
	}
	return m
}

// nameMaps are the members whose object's keys are names, not keywords.
func isNameMap(parent string) bool {
	switch parent {
	case "paths", "properties", "schemas", "responses", "examples", "headers", "content",
		"securitySchemes", "parameters", "$defs", "patternProperties", "dependentSchemas", "mapping", "variables":
		return true
	}
	return false
}

// isData reports whether the value under the member parent is example data,
// written as it is (objects sorted).
func isData(parent string) bool {
	switch parent {
	case "value", "example", "const", "enum", "default":
		return true
	}
	return false
}

// node converts a normalized value to a YAML node. parent is the member
// name the value sits under; data is true inside example values.
func node(v any, parent string, data bool, order map[string]int) (*yaml.Node, error) {
	switch v := v.(type) {
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	case bool:
		s := "false"
		if v {
			s = "true"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: s}, nil
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(string(v), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(v)}, nil
	case string:
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
		if strings.Contains(v, "\n") {
			n.Style = yaml.LiteralStyle
		}
		return n, nil
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		flow := len(v) > 0
		for _, e := range v {
			// Elements are objects of their own (parameters, tags,
			// schemas), not names.
			c, err := node(e, "", data, order)
			if err != nil {
				return nil, err
			}
			flow = flow && c.Kind == yaml.ScalarNode && c.Style == 0
			n.Content = append(n.Content, c)
		}
		if flow {
			n.Style = yaml.FlowStyle // [a, b, c]: lists of names and numbers
		}
		return n, nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		switch {
		case parent == "paths" && !data:
			// The paths in the order of the server's routes.
			paths := pathOrder()
			slices.SortFunc(keys, func(a, b string) int {
				if c := cmp.Compare(rank(paths, a), rank(paths, b)); c != 0 {
					return c
				}
				return strings.Compare(a, b)
			})
		case data || isNameMap(parent):
			slices.Sort(keys)
		default:
			slices.SortFunc(keys, func(a, b string) int {
				if c := cmp.Compare(rank(order, a), rank(order, b)); c != 0 {
					return c
				}
				return strings.Compare(a, b)
			})
		}
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, k := range keys {
			// A name map's values are keyword objects again; under a
			// keyword that takes data, everything below is data.
			childParent := k
			if isNameMap(parent) && !data {
				childParent = ""
			}
			c, err := node(v[k], childParent, data || (!isNameMap(parent) && isData(k)), order)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, c)
		}
		return n, nil
	}
	return nil, fmt.Errorf("openapi: cannot encode %T", v)
}

// docNode normalizes doc and orders its keys: the tree both encodings write.
func docNode(doc map[string]any) (*yaml.Node, error) {
	v, err := normalize(doc)
	if err != nil {
		return nil, err
	}
	return node(v, "", false, keyOrder())
}

// encodeYAML writes a normalized document as YAML, two-space indented.
func encodeYAML(doc map[string]any) ([]byte, error) {
	n, err := docNode(doc)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encodeJSON writes a normalized document as indented JSON with the keys
// in the same order as the YAML.
func encodeJSON(doc map[string]any) ([]byte, error) {
	n, err := docNode(doc)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := writeJSON(&buf, n, ""); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// writeJSON writes a YAML node built by node as JSON.
func writeJSON(buf *bytes.Buffer, n *yaml.Node, indent string) error {
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			b, err := marshalString(n.Value)
			if err != nil {
				return err
			}
			buf.Write(b)
		default:
			buf.WriteString(n.Value)
		}
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			buf.WriteString("[]")
			return nil
		}
		buf.WriteString("[\n")
		for i, c := range n.Content {
			buf.WriteString(indent + "  ")
			if err := writeJSON(buf, c, indent+"  "); err != nil {
				return err
			}
			if i < len(n.Content)-1 {
				buf.WriteByte(',')
			}
			buf.WriteByte('\n')
		}
		buf.WriteString(indent + "]")
	case yaml.MappingNode:
		if len(n.Content) == 0 {
			buf.WriteString("{}")
			return nil
		}
		buf.WriteString("{\n")
		for i := 0; i < len(n.Content); i += 2 {
			k, err := marshalString(n.Content[i].Value)
			if err != nil {
				return err
			}
			buf.WriteString(indent + "  ")
			buf.Write(k)
			buf.WriteString(": ")
			if err := writeJSON(buf, n.Content[i+1], indent+"  "); err != nil {
				return err
			}
			if i < len(n.Content)-2 {
				buf.WriteByte(',')
			}
			buf.WriteByte('\n')
		}
		buf.WriteString(indent + "}")
	default:
		return fmt.Errorf("openapi: unexpected YAML node kind %v", n.Kind)
	}
	return nil
}

// marshalString is json.Marshal of a string without HTML escaping.
func marshalString(s string) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
