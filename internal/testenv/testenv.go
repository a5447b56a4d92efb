// Package testenv holds the fixtures every VM test shares: the guest kernel,
// the agent + initramfs (built once per machine and cached), and the QEMU
// presence check.
//
// The guest build is cached under os.TempDir()/berth-testcache keyed by a
// hash of the agent's sources, and guarded by a file lock, so the many test
// binaries `go test ./...` runs in parallel build it once and share it.
package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/guest/build"
	"github.com/berth-dev/berth/guest/initramfs"
)

// Arm64Cache is where packaging/fetch-arm64.sh unpacks the arm64 kernel
// and busybox (override: $BERTH_ARM64_CACHE).
const Arm64Cache = "/var/cache/berth/arm64"

// CacheDir is the machine-wide cache of guest builds.
func CacheDir() string { return filepath.Join(os.TempDir(), "berth-testcache") }

// Kernel returns the guest kernel image for arch and its modules directory
// (/lib/modules/<version>; "" when the kernel ships none). amd64 uses the
// newest /boot/vmlinuz-* (Debian's linux-image-cloud-amd64); arm64 comes from
// Arm64Cache. A missing kernel fails the test naming what to install.
func Kernel(t testing.TB, arch string) (kernelPath, modulesDir string) {
	t.Helper()
	k, m, err := FindKernel(arch)
	if err != nil {
		t.Fatal(err)
	}
	return k, m
}

// FindKernel is Kernel without a testing.TB.
func FindKernel(arch string) (kernelPath, modulesDir string, err error) {
	switch {
	case arch != "amd64" && arch != "arm64":
		return "", "", fmt.Errorf("testenv: unsupported guest arch %q (amd64, arm64)", arch)
	case arch == runtime.GOARCH:
		return bootKernel(arch)
	case arch == "arm64":
		return arm64CacheKernel()
	}
	return "", "", fmt.Errorf("testenv: no %s guest kernel on a %s host", arch, runtime.GOARCH)
}

// bootKernel is the newest Debian cloud kernel in /boot.
func bootKernel(arch string) (string, string, error) {
	matches, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(matches) == 0 {
		return "", "", fmt.Errorf("testenv: no guest kernel /boot/vmlinuz-*: install the Debian package linux-image-cloud-%s (packaging/setup-linux.sh)", arch)
	}
	sort.Slice(matches, func(i, j int) bool { return versionLess(matches[i], matches[j]) })
	k := matches[len(matches)-1]
	m := filepath.Join("/lib/modules", strings.TrimPrefix(filepath.Base(k), "vmlinuz-"))
	if _, err := os.Stat(filepath.Join(m, "modules.dep")); err != nil {
		m = ""
	}
	return k, m, nil
}

// arm64CacheKernel is the layout packaging/fetch-arm64.sh writes:
// vmlinuz, version, modules/<version>/.
func arm64CacheKernel() (string, string, error) {
	dir := Arm64Cache
	if d := os.Getenv("BERTH_ARM64_CACHE"); d != "" {
		dir = d
	}
	k := filepath.Join(dir, "vmlinuz")
	v, err := os.ReadFile(filepath.Join(dir, "version"))
	if _, serr := os.Stat(k); serr != nil || err != nil {
		return "", "", fmt.Errorf("testenv: no arm64 guest kernel in %s: run packaging/fetch-arm64.sh", dir)
	}
	m := filepath.Join(dir, "modules", strings.TrimSpace(string(v)))
	if _, err := os.Stat(filepath.Join(m, "modules.dep")); err != nil {
		m = ""
	}
	return k, m, nil
}

// versionLess orders kernel file names by their numeric version parts, so
// 6.1.0-10 sorts after 6.1.0-9.
func versionLess(a, b string) bool {
	pa, pb := splitVersion(a), splitVersion(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] != pb[i] {
			var na, nb int
			_, ea := fmt.Sscanf(pa[i], "%d", &na)
			_, eb := fmt.Sscanf(pb[i], "%d", &nb)
			if ea == nil && eb == nil && na != nb {
				return na < nb
			}
			return pa[i] < pb[i]
		}
	}
	return len(pa) < len(pb)
}

func splitVersion(s string) []string {
	return strings.FieldsFunc(filepath.Base(s), func(r rune) bool { return r == '.' || r == '-' })
}

// QEMUBinary is the qemu-system binary for a guest arch and the Debian
// package that provides it.
func QEMUBinary(arch string) (binary, pkg string) {
	if arch == "arm64" {
		return "qemu-system-aarch64", "qemu-system-arm"
	}
	return "qemu-system-x86_64", "qemu-system-x86"
}

// RequireQEMU fails (never skips) the test when QEMU for arch is missing.
func RequireQEMU(t testing.TB, arch string) {
	t.Helper()
	bin, pkg := QEMUBinary(arch)
	if _, err := exec.LookPath(bin); err != nil {
		t.Fatalf("testenv: %s not found: install the Debian package %s (packaging/setup-linux.sh)", bin, pkg)
	}
}

var (
	guestMu   sync.Mutex
	guestDirs = map[string]string{}
)

// GuestDir returns a directory holding berth-agent and initramfs.cpio.gz
// (the base archive, no modules) for arch, built from the current sources.
func GuestDir(t testing.TB, arch string) string {
	t.Helper()
	dir, err := BuildGuest(arch)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// Initrd returns a complete initramfs for arch and the test kernel: the base
// archive followed by the kernel's modules (initramfs.ForKernel). Cached like
// GuestDir. extraModules are loaded after Berth's own (tests that need, say,
// vsock_loopback); without them the archive is the one Berth ships.
func Initrd(t testing.TB, arch string, extraModules ...string) string {
	t.Helper()
	dir := GuestDir(t, arch)
	_, modulesDir := Kernel(t, arch)
	out := filepath.Join(dir, "initrd-"+hashString(modulesDir+"\x00"+strings.Join(extraModules, ","))+".cpio.gz")
	err := withLock(filepath.Join(dir, ".initrd.lock"), func() error {
		if _, err := os.Stat(out); err == nil {
			return nil
		}
		tmp := out + ".tmp"
		f, err := os.Create(tmp)
		if err != nil {
			return err
		}
		err = initramfs.ForKernel(f, filepath.Join(dir, build.InitramfsFile), modulesDir)
		if err == nil && len(extraModules) > 0 {
			// A second modules archive replaces the first one's order
			// file: list Berth's modules again, then the extras.
			err = initramfs.WriteModules(f, modulesDir, append(slices.Clone(initramfs.DefaultModules), extraModules...))
		}
		if err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		return os.Rename(tmp, out)
	})
	if err != nil {
		t.Fatalf("testenv: initrd: %v", err)
	}
	return out
}

// BuildGuest is GuestDir without a testing.TB.
func BuildGuest(arch string) (string, error) {
	guestMu.Lock()
	defer guestMu.Unlock()
	if d, ok := guestDirs[arch]; ok {
		return d, nil
	}
	root, err := build.ModuleRoot(".")
	if err != nil {
		return "", err
	}
	sum, err := sourceHash(root, arch)
	if err != nil {
		return "", fmt.Errorf("testenv: hashing guest sources: %w", err)
	}
	cache := CacheDir()
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "guest-"+arch+"-"+sum[:16])
	err = withLock(filepath.Join(cache, "guest-"+arch+".lock"), func() error {
		if _, err := os.Stat(filepath.Join(dir, build.InitramfsFile)); err == nil {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		tmp := dir + ".building"
		os.RemoveAll(tmp)
		if err := build.Dir(ctx, root, arch, tmp); err != nil {
			return err
		}
		return os.Rename(tmp, dir)
	})
	if err != nil {
		return "", fmt.Errorf("testenv: guest build: %w", err)
	}
	guestDirs[arch] = dir
	return dir, nil
}

// BuildProbe compiles pkg (a main package of this module) as a static
// linux/arch binary for running inside a test VM, and returns its path.
func BuildProbe(t testing.TB, arch, pkg string) string {
	t.Helper()
	root, err := build.ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "grpcnotrace", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s for linux/%s: %v\n%s", pkg, arch, err, b)
	}
	return out
}

// sourceHash covers everything the guest build reads from the tree: guest/
// and the module files. Dependencies outside the tree are pinned by go.sum.
func sourceHash(root, arch string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", arch, runtime.Version())
	for _, f := range []string{"go.mod", "go.sum"} {
		if err := hashFile(h, root, filepath.Join(root, f)); err != nil {
			return "", err
		}
	}
	err := filepath.WalkDir(filepath.Join(root, "guest"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasSuffix(p, "_test.go") || strings.Contains(p, "/testdata/") {
			return nil
		}
		return hashFile(h, root, p)
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(h io.Writer, root, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	rel, _ := filepath.Rel(root, p)
	fmt.Fprintf(h, "%s\x00", rel)
	_, err = io.Copy(h, f)
	h.Write([]byte{0})
	return err
}

func hashString(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:12]
}

// withLock runs fn holding an exclusive flock on path (shared across
// processes, so parallel test binaries wait for one build).
func withLock(path string, fn func() error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", path, err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return fn()
}
