//go:build race

package derive

// raceEnabled: the race detector slows the largest tests tenfold; they run
// smaller under it, and at full size in .ci/run's step without it.
const raceEnabled = true
