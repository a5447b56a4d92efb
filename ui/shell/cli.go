package shell

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// CLIDir is where the CLI symlink goes (on the default PATH of macOS shells).
const CLIDir = "/usr/local/bin"

// CLIInstalled reports whether dir/berth is a symlink to binary.
func CLIInstalled(binary, dir string) bool {
	target, err := os.Readlink(filepath.Join(dir, "berth"))
	return err == nil && samePath(target, binary)
}

func samePath(a, b string) bool {
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	if err1 == nil && err2 == nil {
		return ra == rb
	}
	return filepath.Clean(a) == filepath.Clean(b)
}

// NeedsAdminError means the symlink needs administrator rights; Script is
// the shell command to run with them (the app passes it to osascript's
// "do shell script … with administrator privileges", which asks the user).
type NeedsAdminError struct{ Script string }

func (e *NeedsAdminError) Error() string {
	return "installing the command-line tool needs administrator rights"
}

// InstallCLI links dir/berth to binary. It never replaces a file that is
// not a symlink (someone else's berth); an old symlink of ours (to another
// Berth.app) is replaced.
func InstallCLI(binary, dir string) error {
	if !filepath.IsAbs(binary) {
		return fmt.Errorf("install CLI: %q is not an absolute path", binary)
	}
	link := filepath.Join(dir, "berth")
	if CLIInstalled(binary, dir) {
		return nil
	}
	st, err := os.Lstat(link)
	switch {
	case err == nil && st.Mode()&fs.ModeSymlink == 0:
		return fmt.Errorf("%s exists and is not a link to Berth; remove or rename it, then try again", link)
	case err == nil:
		if err := os.Remove(link); err != nil {
			return needsAdmin(binary, dir, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return needsAdmin(binary, dir, err)
	}
	if err := os.Symlink(binary, link); err != nil {
		return needsAdmin(binary, dir, err)
	}
	return nil
}

func needsAdmin(binary, dir string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return &NeedsAdminError{Script: fmt.Sprintf("mkdir -p %s && ln -sfn %s %s",
			shellQuote(dir), shellQuote(binary), shellQuote(filepath.Join(dir, "berth")))}
	}
	return err
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// AppleScriptString quotes s as an AppleScript string literal.
func AppleScriptString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
