package progress

import (
	"io"
	"os"
)

// Terminal reports whether w is a terminal, and its width in columns (0
// when the terminal does not say). Only an *os.File can be one: a pipe, a
// file or /dev/null is not. It asks the terminal driver for w's settings
// (the termios ioctl, as isatty(3) does): on systems where this package
// does not know that request, nothing is a terminal.
func Terminal(w io.Writer) (width int, ok bool) {
	f, isFile := w.(*os.File)
	if !isFile {
		return 0, false
	}
	// SyscallConn, unlike Fd, leaves the descriptor's mode alone.
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, false
	}
	if err := rc.Control(func(fd uintptr) { width, ok = terminal(int(fd)) }); err != nil {
		return 0, false
	}
	return width, ok
}
