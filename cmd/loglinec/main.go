// Command loglinec compiles .lll sources into signed .lllb bundles; see
// package lllc.
package main

import (
	"os"

	"github.com/loglineos/loglineos/internal/lllc"
)

func main() { os.Exit(lllc.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
