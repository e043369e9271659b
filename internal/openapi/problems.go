package openapi

import "github.com/loglineos/loglineos/internal/gateway"

// problemType is one of the gateway's problem types (see
// gateway.ProblemTypes): name, status, title and description. The names are
// part of the API: never rename one.
type problemType struct {
	name   string
	status int
	title  string
	doc    string
}

func problemTypes() []problemType {
	var out []problemType
	for _, t := range gateway.ProblemTypes() {
		out = append(out, problemType{name: t.Name, status: t.Status, title: t.Title, doc: t.Doc})
	}
	return out
}
