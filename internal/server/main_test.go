//go:build unix

package server

import (
	"os"
	"testing"
)

// TestMain lets BenchmarkQuotaIsolation start this binary again as its
// flooding client.
func TestMain(m *testing.M) {
	if os.Getenv(floodEnv) == "1" {
		floodMain()
		return
	}
	os.Exit(m.Run())
}
