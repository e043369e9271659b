//go:build !linux

package identity

import "time"

// threadCPU is not measured outside Linux; the cpu-p* metrics read 0.
func threadCPU() time.Duration { return 0 }
