package cluster

import "time"

// SetWatchDelay makes s's watcher apply each entry d late, and reload d
// late after: a node whose copy lags behind the bucket.
func SetWatchDelay(s *SharedFiles, d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}
