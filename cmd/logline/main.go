// Command logline runs the LogLineOS server and its operator commands.
package main

import (
	"context"
	"os"

	"github.com/loglineos/loglineos/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
