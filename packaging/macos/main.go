// Command macos assembles Berth.app from a darwin/arm64 berth binary and the
// linux/arm64 guest initramfs, after validating Info.plist and
// entitlements.plist. It runs anywhere (tests run it on Linux with a
// stand-in binary); build-app.sh calls it on a Mac and then signs the
// bundle with codesign.
//
//	go run ./packaging/macos -binary build/darwin-arm64/berth -guest arm64=build/guest/arm64 \
//	    -info Info.plist -entitlements entitlements.plist -version "$(git describe)" -build 42 -out build/Berth.app
//	go run ./packaging/macos -check -info Info.plist -entitlements entitlements.plist
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	var b Bundle
	var guests multiFlag
	check := flag.Bool("check", false, "only validate Info.plist and entitlements.plist")
	flag.StringVar(&b.Binary, "binary", "", "darwin/arm64 berth executable")
	flag.BoolVar(&b.StandIn, "stand-in", false, "accept a non-Mach-O binary (tests)")
	flag.Var(&guests, "guest", "ARCH=DIR with initramfs.cpio.gz (repeatable)")
	flag.StringVar(&b.InfoPlist, "info", "Info.plist", "Info.plist template")
	flag.StringVar(&b.Entitlements, "entitlements", "entitlements.plist", "entitlements plist")
	flag.StringVar(&b.Version, "version", "", "version (git describe)")
	flag.StringVar(&b.Build, "build", "1", "build number (CFBundleVersion)")
	flag.StringVar(&b.Out, "out", "build/Berth.app", "bundle to create")
	flag.Parse()
	if *check {
		if err := checkOnly(b.InfoPlist, b.Entitlements); err != nil {
			fmt.Fprintln(os.Stderr, "macos:", err)
			os.Exit(1)
		}
		fmt.Println("Info.plist and entitlements.plist are valid")
		return
	}
	b.GuestDirs = map[string]string{}
	for _, g := range guests {
		arch, dir, ok := strings.Cut(g, "=")
		if !ok || arch == "" || dir == "" {
			fmt.Fprintf(os.Stderr, "macos: -guest %q: want ARCH=DIR, e.g. arm64=build/guest/arm64\n", g)
			os.Exit(2)
		}
		b.GuestDirs[arch] = dir
	}
	if b.Binary == "" {
		fmt.Fprintln(os.Stderr, "macos: -binary is required")
		os.Exit(2)
	}
	if err := b.Assemble(); err != nil {
		fmt.Fprintln(os.Stderr, "macos:", err)
		os.Exit(1)
	}
	fmt.Println(b.Out)
}

func checkOnly(info, ent string) error {
	d, err := readPlist(info)
	if err != nil {
		return err
	}
	if err := ValidateInfo(d); err != nil {
		return err
	}
	e, err := readPlist(ent)
	if err != nil {
		return err
	}
	return ValidateEntitlements(e)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }
