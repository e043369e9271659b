//go:build race

package cycle

const raceEnabled = true
