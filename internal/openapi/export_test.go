package openapi

import (
	"net/http/httptest"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// Test helpers for the external test package (routes_server_test.go).
var (
	StandardBundle   = standardBundle
	MountedInSource  = mountedInSource
	DocumentT        = document
	KinLoad          = kinLoad
	YAMLOf           = yamlOf
	Documented       = documented
	NotYetMounted    = notYetMounted
	SkipKinUnderRace = skipKinUnderRace
)

func CheckResponse(t *testing.T, doc *openapi3.T, name, method, pattern string, w *httptest.ResponseRecorder) {
	checkResponse(t, doc, name, exchange{method: method, pattern: pattern}, w)
}
