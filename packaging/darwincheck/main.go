// Command darwincheck type-checks Berth's darwin-only code (Virtualization.framework
// through vz, AppKit through darwinkit) on a machine that cannot compile it.
//
// Compiling darwin code needs cgo with clang and the macOS SDK. This program needs
// neither: it asks `go list` (through golang.org/x/tools/go/packages) for the package
// graph as GOOS=darwin CGO_ENABLED=1 would build it, but without the compiled-files
// mode, so cgo never runs. It then parses every package's Go files (cgo files
// included) and type-checks them from source with go/types in dependency order,
// using types.Config{FakeImportC: true}: references to C.* are accepted unchecked,
// everything else — our calls into vz and darwinkit, their Go-level APIs, the
// standard library for darwin — is checked for real.
//
// Usage: go run ./packaging/darwincheck [-arch arm64,amd64] [packages]
//
// Only errors in the main module's packages are reported; the exit status is 1 when
// there are any, 2 when the package graph cannot be loaded.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	archs := flag.String("arch", "arm64,amd64", "comma-separated GOARCH values to check")
	dir := flag.String("C", "", "run as if in this directory")
	verbose := flag.Bool("v", false, "print a summary line per architecture")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: darwincheck [-arch arm64,amd64] [-C dir] [packages]")
		flag.PrintDefaults()
	}
	flag.Parse()
	patterns := flag.Args()
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	failed := false
	for _, arch := range strings.Split(*archs, ",") {
		arch = strings.TrimSpace(arch)
		if arch == "" {
			continue
		}
		res, err := Check(Options{Dir: *dir, GOARCH: arch, Patterns: patterns})
		if err != nil {
			fmt.Fprintf(os.Stderr, "darwincheck: darwin/%s: %v\n", arch, err)
			os.Exit(2)
		}
		for _, e := range res.Errors {
			fmt.Printf("darwin/%s: %s\n", arch, e)
		}
		if *verbose || len(res.Errors) > 0 {
			fmt.Printf("darwincheck: darwin/%s: %d packages checked (%d of this module), %d errors, %d C-type errors suppressed\n",
				arch, res.Checked, res.Own, len(res.Errors), res.Suppressed)
		}
		if len(res.Errors) > 0 {
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
