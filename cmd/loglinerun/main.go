// Command loglinerun verifies a .lllb bundle and runs it over NDJSON; see
// package lllc.
package main

import (
	"os"

	"github.com/loglineos/loglineos/internal/lllc"
)

func main() { os.Exit(lllc.RunMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
