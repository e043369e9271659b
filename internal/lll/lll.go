// Package lll is the front door of the .lll toolchain: Compile turns
// sources into a checked, typed program (package ir) or a sorted list of
// diagnostics.
//
// The toolchain is one phase a package, as go/scanner, go/parser and
// starlark-go are laid out:
//
//	token    tokens and positions
//	scanner  source text -> tokens
//	ast      the syntax tree
//	parser   tokens -> tree (every error, partial trees)
//	abi      the names ABI v1 predeclares: inputs, formats, builtins,
//	         kernels, host calls, capabilities, features, standard policies
//	check    tree -> typed IR (names, types, duplicates, capabilities)
//	ir       the typed IR, its JSON and text forms
//	eval     the interpreter (EVAL backend) over the IR
//	wasm     the AOT-WASM backend: encoder, layout, codegen, runner
//	         (it covers the span validators' field rules so far)
//	diag     diagnostics: codes, sorting, printing with carets, suggestions
//
// The language is described in docs/lll.md.
package lll

import (
	"sort"

	"github.com/loglineos/loglineos/internal/lll/ast"
	"github.com/loglineos/loglineos/internal/lll/check"
	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/parser"
)

// Source is one named source file.
type Source struct {
	Name string
	Text []byte
}

// Parse parses every source (in name order) and returns the trees and the
// diagnostics.
func Parse(srcs []Source) ([]*ast.File, diag.List) {
	srcs = sorted(srcs)
	var files []*ast.File
	var errs diag.List
	for _, s := range srcs {
		f, e := parser.ParseFile(s.Name, s.Text)
		files = append(files, f)
		errs = append(errs, e...)
	}
	errs.Sort()
	return files, errs
}

// Compile parses and checks the sources as one unit. The result does not
// depend on the order of srcs. When the diagnostic list is not empty the
// program must not be run (it is nil when parsing failed).
func Compile(srcs []Source) (*ir.Program, diag.List) {
	files, errs := Parse(srcs)
	if len(errs) > 0 {
		return nil, errs
	}
	return check.Check(files)
}

// Lookup returns a function that gives the text of a source by name, for
// diag.Print.
func Lookup(srcs []Source) func(string) []byte {
	return func(name string) []byte {
		for _, s := range srcs {
			if s.Name == name {
				return s.Text
			}
		}
		return nil
	}
}

func sorted(srcs []Source) []Source {
	out := append([]Source(nil), srcs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
