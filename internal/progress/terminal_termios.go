//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package progress

import "golang.org/x/sys/unix"

// terminal reports whether fd is a terminal, and its width.
func terminal(fd int) (width int, ok bool) {
	if _, err := unix.IoctlGetTermios(fd, ioctlReadTermios); err != nil {
		return 0, false
	}
	if ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); err == nil {
		width = int(ws.Col)
	}
	return width, true
}
