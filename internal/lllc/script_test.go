package lllc_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/loglineos/loglineos/internal/lllc"
	"github.com/loglineos/loglineos/stdlib"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"loglinec":   func() { os.Exit(lllc.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
		"loglinerun": func() { os.Exit(lllc.RunMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScript runs the end-to-end scripts of testdata/script. Each script
// starts with the standard sources in $WORK/stdlib and has two extra
// commands: flipbyte FILE OFFSET (xor 0x01 into one byte; a negative
// offset counts from the end) and perm FILE MODE (check a file's mode).
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			dir := filepath.Join(env.WorkDir, "stdlib")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			for _, s := range stdlib.Sources() {
				if err := os.WriteFile(filepath.Join(env.WorkDir, s.Name), s.Text, 0o644); err != nil {
					return err
				}
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"flipbyte": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: flipbyte FILE OFFSET")
				}
				name := ts.MkAbs(args[0])
				b, err := os.ReadFile(name)
				ts.Check(err)
				off, err := strconv.Atoi(args[1])
				ts.Check(err)
				if off < 0 {
					off += len(b)
				}
				b[off] ^= 1
				ts.Check(os.WriteFile(name, b, 0o644))
			},
			"perm": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: perm FILE MODE")
				}
				fi, err := os.Stat(ts.MkAbs(args[0]))
				ts.Check(err)
				if got := fmt.Sprintf("%04o", fi.Mode().Perm()); (got == args[1]) == neg {
					ts.Fatalf("%s has mode %s, want %s%s", args[0], got, map[bool]string{true: "not "}[neg], args[1])
				}
			},
		},
	})
}
