// Package dataroot decides where Berth keeps its state on disk and names the
// places inside it. Every other package gets paths from here, so the layout
// of the data root is written down in one place.
package dataroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// EnvVar overrides the default data root (the --data-root flag wins over it).
const EnvVar = "BERTH_DATA_ROOT"

// Default returns the platform's data root:
// ~/Library/Application Support/Berth on macOS, $XDG_DATA_HOME/berth or
// ~/.local/share/berth elsewhere.
func Default() (string, error) {
	home, err := os.UserHomeDir()
	if runtime.GOOS == "darwin" {
		if err != nil {
			return "", fmt.Errorf("cannot find the home directory for the data root: %w (set %s)", err, EnvVar)
		}
		return filepath.Join(home, "Library", "Application Support", "Berth"), nil
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "berth"), nil
	}
	if err != nil {
		return "", fmt.Errorf("cannot find the home directory for the data root: %w (set %s)", err, EnvVar)
	}
	return filepath.Join(home, ".local", "share", "berth"), nil
}

// Resolve picks the data root: the flag value if set, else $BERTH_DATA_ROOT,
// else Default. The result is absolute.
func Resolve(flag string) (string, error) {
	p := flag
	if p == "" {
		p = os.Getenv(EnvVar)
	}
	if p == "" {
		d, err := Default()
		if err != nil {
			return "", err
		}
		p = d
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("data root %q: %w", p, err)
	}
	return abs, nil
}

// Root is an opened data root: an absolute directory that exists, mode 0700.
type Root struct{ Dir string }

// Open creates the data root (0700) if needed and returns it.
func Open(dir string) (Root, error) {
	if dir == "" {
		return Root{}, errors.New("empty data root")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Root{}, fmt.Errorf("create data root %s: %w", dir, err)
	}
	return Root{Dir: dir}, nil
}

// StateDB is the bbolt database; only the engine process opens it.
func (r Root) StateDB() string { return filepath.Join(r.Dir, "state.db") }

// Socket is the engine's Docker-API unix socket (mode 0600).
func (r Root) Socket() string { return filepath.Join(r.Dir, "berth.sock") }

// Content is the OCI content store: blobs by digest.
func (r Root) Content() string { return filepath.Join(r.Dir, "content") }

// Snapshots holds one ext4 image per image manifest digest and platform.
func (r Root) Snapshots() string { return filepath.Join(r.Dir, "snapshots") }

// Containers holds one directory per container (root disk, logs, console).
func (r Root) Containers() string { return filepath.Join(r.Dir, "containers") }

// Container is one container's directory.
func (r Root) Container(id string) string { return filepath.Join(r.Containers(), id) }

// Kernels holds downloaded guest kernels and built initramfs images.
func (r Root) Kernels() string { return filepath.Join(r.Dir, "kernels") }

// Tmp is scratch space on the same filesystem as everything else, so a
// finished temp file can be published with an atomic rename. It is emptied
// when the engine starts.
func (r Root) Tmp() string { return filepath.Join(r.Dir, "tmp") }

// Volumes holds named volumes, one directory each (<name>/_data is what
// containers see); their records live in the state database.
func (r Root) Volumes() string { return filepath.Join(r.Dir, "volumes") }
