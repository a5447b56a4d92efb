package shell

import (
	"path/filepath"
	"strings"
)

// IsAppLaunch reports whether berth was started as the menu-bar app: from
// Berth.app (its executable inside Contents/MacOS) with no arguments, or
// with the -psn_… argument older Finders/LaunchServices pass. From a shell,
// `berth` with no arguments stays the CLI (help), so a user who symlinked
// the bundle's binary into /usr/local/bin gets the CLI.
func IsAppLaunch(args []string, exe string) bool {
	if len(args) == 1 && strings.HasPrefix(args[0], "-psn_") {
		return true
	}
	return len(args) == 0 && InBundle(exe)
}

// InBundle reports whether exe is an app bundle's main executable
// (…/X.app/Contents/MacOS/name), after resolving symlinks.
func InBundle(exe string) bool {
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	dir := filepath.Dir(exe)
	return filepath.Base(dir) == "MacOS" &&
		filepath.Base(filepath.Dir(dir)) == "Contents" &&
		strings.HasSuffix(filepath.Dir(filepath.Dir(dir)), ".app")
}

// BundleDir is the .app directory containing exe ("" when not in one).
func BundleDir(exe string) string {
	if !InBundle(exe) {
		return ""
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return filepath.Dir(filepath.Dir(filepath.Dir(exe)))
}
