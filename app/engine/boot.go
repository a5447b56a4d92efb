package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/berth-dev/berth/guest/build"
	"github.com/berth-dev/berth/guest/initramfs"
	"github.com/berth-dev/berth/runtime/container"
	"github.com/berth-dev/berth/runtime/dataroot"
)

// GuestDirEnv names the guest directory (see GuestDirFor).
const GuestDirEnv = "BERTH_GUEST_DIR"

// GuestDirFor finds the directory with <arch>/berth-agent and
// <arch>/initramfs.cpio.gz: the flag, else $BERTH_GUEST_DIR, else
// <dir of the berth executable>/guest (make build), else
// <exe dir>/../Resources/guest (inside Berth.app).
func GuestDirFor(flag, arch string) (string, error) {
	var tried []string
	check := func(d string) bool {
		if d == "" {
			return false
		}
		tried = append(tried, d)
		_, err := os.Stat(filepath.Join(d, arch, build.InitramfsFile))
		return err == nil
	}
	if flag != "" {
		if check(flag) {
			return flag, nil
		}
		return "", fmt.Errorf("guest directory %s has no %s/%s: run `make build` or pass the right --guest-dir", flag, arch, build.InitramfsFile)
	}
	if d := os.Getenv(GuestDirEnv); d != "" {
		if check(d) {
			return d, nil
		}
		return "", fmt.Errorf("$%s=%s has no %s/%s: run `make build`", GuestDirEnv, d, arch, build.InitramfsFile)
	}
	if exe, err := os.Executable(); err == nil {
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		for _, d := range []string{filepath.Join(filepath.Dir(exe), "guest"), filepath.Join(filepath.Dir(exe), "..", "Resources", "guest")} {
			if check(d) {
				return d, nil
			}
		}
	}
	return "", fmt.Errorf("no guest agent initramfs for %s (looked in %s): run `make build`, or set --guest-dir / $%s", arch, strings.Join(tried, ", "), GuestDirEnv)
}

// BootFiles resolves what a container VM boots: kernel, initramfs (the base
// archive with the agent, plus the kernel's modules appended, built once per
// kernel into the data root) and command line.
type BootFiles struct {
	Root     dataroot.Root
	GuestDir string
	Kernel   string // global override

	mu    sync.Mutex
	cache map[string]container.BootFiles
}

// Boot implements container.Kernels.
func (b *BootFiles) Boot(ctx context.Context, arch, override string) (container.BootFiles, error) {
	if override == "" {
		override = b.Kernel
	}
	key := arch + "\x00" + override
	b.mu.Lock()
	defer b.mu.Unlock()
	if f, ok := b.cache[key]; ok {
		if _, err := os.Stat(f.Initrd); err == nil {
			return f, nil
		}
	}
	kernel, modules, err := findKernel(arch, override)
	if err != nil {
		return container.BootFiles{}, err
	}
	gd, err := GuestDirFor(b.GuestDir, arch)
	if err != nil {
		return container.BootFiles{}, err
	}
	base := filepath.Join(gd, arch, build.InitramfsFile)
	initrd := base
	if modules != "" {
		if initrd, err = b.initrdFor(base, modules); err != nil {
			return container.BootFiles{}, err
		}
	}
	f := container.BootFiles{Kernel: kernel, Initrd: initrd}
	if b.cache == nil {
		b.cache = map[string]container.BootFiles{}
	}
	b.cache[key] = f
	return f, nil
}

// initrdFor appends the kernel's modules to the base archive, once per
// (base, modules) pair, published with temp file + rename.
func (b *BootFiles) initrdFor(base, modules string) (string, error) {
	st, err := os.Stat(base)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("%s|%d|%d|%s", base, st.Size(), st.ModTime().UnixNano(), modules)))
	out := filepath.Join(b.Root.Kernels(), "initrd-"+hex.EncodeToString(h[:8])+".cpio.gz")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(b.Root.Kernels(), 0o700); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(b.Root.Kernels(), ".initrd-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := initramfs.ForKernel(tmp, base, modules); err != nil {
		tmp.Close()
		return "", fmt.Errorf("build initramfs with the modules of %s: %w", modules, err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return out, os.Rename(tmp.Name(), out)
}

// findKernel picks the kernel image and its modules directory: an explicit
// path (modules from /lib/modules/<version> when the name says which), else
// the newest /boot/vmlinuz-* of this machine for the host arch.
func findKernel(arch, override string) (kernel, modules string, err error) {
	if override != "" {
		st, err := os.Stat(override)
		if err != nil {
			return "", "", fmt.Errorf("kernel %s: %w", override, err)
		}
		if st.IsDir() || st.Size() < 1<<20 {
			return "", "", fmt.Errorf("kernel %s is not a kernel image (too small or a directory)", override)
		}
		return override, modulesFor(filepath.Base(override)), nil
	}
	matches, _ := filepath.Glob("/boot/vmlinuz-*")
	sort.Slice(matches, func(i, j int) bool { return versionLess(matches[j], matches[i]) })
	if len(matches) > 0 {
		return matches[0], modulesFor(filepath.Base(matches[0])), nil
	}
	return "", "", errors.New("no guest kernel found in /boot: install linux-image-cloud-amd64 (packaging/setup-linux.sh) or pass --kernel")
}

func modulesFor(name string) string {
	ver := strings.TrimPrefix(name, "vmlinuz-")
	if ver == name {
		return ""
	}
	d := filepath.Join("/lib/modules", ver)
	if _, err := os.Stat(filepath.Join(d, "modules.dep")); err == nil {
		return d
	}
	return ""
}

// versionLess orders "vmlinuz-6.1.0-9-…" before "vmlinuz-6.1.0-10-…".
func versionLess(a, b string) bool {
	pa, pb := splitNum(a), splitNum(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] == pb[i] {
			continue
		}
		na, ea := atoi(pa[i])
		nb, eb := atoi(pb[i])
		if ea && eb {
			return na < nb
		}
		return pa[i] < pb[i]
	}
	return len(pa) < len(pb)
}

func splitNum(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' })
}

func atoi(s string) (int, bool) {
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, false
		}
		n = n*10 + int(r-'0')
	}
	return n, s != ""
}
