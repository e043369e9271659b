//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package progress

// terminal reports that nothing is a terminal where the termios request
// is not known.
func terminal(int) (int, bool) { return 0, false }
