//go:build !unix

package ledger

import "github.com/cockroachdb/pebble/v2/vfs"

const truncateSupported = false

func truncateFile(vfs.File, int64) error { return errNoTruncate }
