package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/berth-dev/berth/guest/build"
	"github.com/berth-dev/berth/guest/initramfs"
	"github.com/berth-dev/berth/runtime/container"
	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/kernel"
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
	// Cmdline is appended to the kernel command line ($BERTH_KERNEL_ARGS
	// adds to it: "loglevel=7" shows the boot on the console log).
	Cmdline string

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
	k, err := kernel.Resolve(b.Root.Dir, arch, override)
	if err != nil {
		return container.BootFiles{}, err
	}
	kernelPath, modules := k.Image, k.ModulesDir
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
	f := container.BootFiles{Kernel: kernelPath, Initrd: initrd, Cmdline: strings.TrimSpace(b.Cmdline + " " + os.Getenv("BERTH_KERNEL_ARGS"))}
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
