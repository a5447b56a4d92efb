// Package kernel finds and checks guest kernels. A kernel is an image file
// plus, when its virtio drivers are modules (Debian's cloud kernels), the
// /lib/modules/<version> directory the initramfs builder packs them from.
//
// Defaults: on Linux the newest /boot/vmlinuz-* for the host architecture
// (and the tree packaging/fetch-arm64.sh lays out for arm64); on macOS the
// Kata Containers arm64 kernel that Apple's `container` uses, downloaded
// once into the data root (see Download). Users may name any other kernel,
// globally ($BERTH_KERNEL) or per container (--kernel).
package kernel

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/runtime/dataroot"
)

// Kernel is a bootable guest kernel.
type Kernel struct {
	Image      string // the kernel image file
	ModulesDir string // its /lib/modules/<version>; "" when it needs none
	Version    string // e.g. "6.1.0-56-cloud-amd64"; "" when unknown
}

// GlobalEnv names a kernel for every container that does not name its own.
const GlobalEnv = "BERTH_KERNEL"

// Arm64Cache is where packaging/fetch-arm64.sh puts Debian's arm64 cloud
// kernel on Linux machines of another architecture.
var Arm64Cache = "/var/cache/berth/arm64"

// Resolve picks the kernel for a guest architecture: override (a
// container's --kernel) if set, else $BERTH_KERNEL, else the platform
// default. override may name an image file or a directory laid out like
// Arm64Cache (vmlinuz, version, modules/<version>/). The kernel is checked
// to be a kernel image for arch.
func Resolve(dataRoot, arch, override string) (Kernel, error) {
	if override == "" {
		override = os.Getenv(GlobalEnv)
	}
	if override != "" {
		k, err := fromPath(override)
		if err != nil {
			return Kernel{}, err
		}
		return k, Check(k.Image, arch, "")
	}
	if runtime.GOOS == "darwin" {
		return defaultDarwin(dataRoot, arch)
	}
	return defaultLinux(arch)
}

func defaultLinux(arch string) (Kernel, error) {
	if arch == runtime.GOARCH {
		k, err := newestBoot("/boot", "/lib/modules")
		if err != nil {
			return Kernel{}, fmt.Errorf("%w: install the Debian package linux-image-cloud-%s (packaging/setup-linux.sh) or pass --kernel", err, arch)
		}
		return k, Check(k.Image, arch, "")
	}
	if arch == "arm64" {
		k, err := fromDir(Arm64Cache)
		if err != nil {
			return Kernel{}, fmt.Errorf("no arm64 guest kernel in %s: run packaging/fetch-arm64.sh or pass --kernel", Arm64Cache)
		}
		return k, Check(k.Image, arch, "")
	}
	return Kernel{}, fmt.Errorf("no default %s guest kernel on this %s machine: pass --kernel", arch, runtime.GOARCH)
}

func defaultDarwin(dataRoot, arch string) (Kernel, error) {
	if arch != "arm64" {
		return Kernel{}, fmt.Errorf("no default %s guest kernel: linux/amd64 images run on the arm64 kernel with Rosetta; pass --kernel for anything else", arch)
	}
	k, ok := Installed(dataroot.Root{Dir: dataRoot}.Kernels(), Kata)
	if !ok {
		return Kernel{}, ErrNotDownloaded
	}
	return k, nil
}

// ErrNotDownloaded means the default macOS kernel has not been fetched yet.
var ErrNotDownloaded = errors.New("the default kernel (Kata Containers " + Kata.Release + ") is not downloaded yet: fetch it from the app or with Download")

// fromPath turns a user's --kernel into a Kernel: a file, or a directory in
// the fetch-arm64 layout.
func fromPath(p string) (Kernel, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return Kernel{}, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return Kernel{}, fmt.Errorf("kernel %s: %w", p, notExist(err))
	}
	if st.IsDir() {
		return fromDir(abs)
	}
	k := Kernel{Image: abs}
	// /boot/vmlinuz-<version> next to /lib/modules/<version>.
	if v, ok := strings.CutPrefix(filepath.Base(abs), "vmlinuz-"); ok {
		k.Version = v
		if m := filepath.Join("/lib/modules", v); isFile(filepath.Join(m, "modules.dep")) {
			k.ModulesDir = m
		}
	}
	if k.Version == "" {
		k.Version = versionOf(abs)
	}
	return k, nil
}

func fromDir(dir string) (Kernel, error) {
	img := filepath.Join(dir, "vmlinuz")
	if !isFile(img) {
		return Kernel{}, fmt.Errorf("kernel directory %s has no vmlinuz", dir)
	}
	k := Kernel{Image: img}
	if v, err := os.ReadFile(filepath.Join(dir, "version")); err == nil {
		k.Version = strings.TrimSpace(string(v))
		if m := filepath.Join(dir, "modules", k.Version); isFile(filepath.Join(m, "modules.dep")) {
			k.ModulesDir = m
		}
	}
	return k, nil
}

// newestBoot is the newest vmlinuz-* in bootDir, with modulesRoot/<version>
// when it has a modules.dep.
func newestBoot(bootDir, modulesRoot string) (Kernel, error) {
	matches, _ := filepath.Glob(filepath.Join(bootDir, "vmlinuz-*"))
	if len(matches) == 0 {
		return Kernel{}, fmt.Errorf("no kernel %s/vmlinuz-*", bootDir)
	}
	sort.Slice(matches, func(i, j int) bool { return versionLess(matches[i], matches[j]) })
	img := matches[len(matches)-1]
	v := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
	k := Kernel{Image: img, Version: v}
	if m := filepath.Join(modulesRoot, v); isFile(filepath.Join(m, "modules.dep")) {
		k.ModulesDir = m
	}
	return k, nil
}

// versionLess orders names by their dot/dash separated parts, numerically
// where both are numbers (6.1.0-10 after 6.1.0-9).
func versionLess(a, b string) bool {
	split := func(s string) []string {
		return strings.FieldsFunc(filepath.Base(s), func(r rune) bool { return r == '.' || r == '-' })
	}
	pa, pb := split(a), split(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] == pb[i] {
			continue
		}
		na, ea := strconv.Atoi(pa[i])
		nb, eb := strconv.Atoi(pb[i])
		if ea == nil && eb == nil {
			return na < nb
		}
		return pa[i] < pb[i]
	}
	return len(pa) < len(pb)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func notExist(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return errors.New("no such file")
	}
	return err
}

// Check verifies that path is a kernel image a VM of arch can boot: an x86
// bzImage ("HdrS" at 0x202) for amd64; for arm64 an uncompressed Image
// ("ARMd" at 0x38) — or, except for backend "vz", a compressed or ELF one,
// which QEMU unpacks itself. Virtualization.framework boots only the
// uncompressed Image, so for "vz" a compressed kernel gets a message saying
// how to unpack it.
func Check(path, arch, backend string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("kernel %s: %w", path, notExist(err))
	}
	defer f.Close()
	hdr := make([]byte, 0x240)
	n, _ := io.ReadFull(f, hdr)
	hdr = hdr[:n]
	at := func(off int, magic string) bool {
		return len(hdr) >= off+len(magic) && string(hdr[off:off+len(magic)]) == magic
	}
	switch arch {
	case "amd64":
		if at(0x202, "HdrS") {
			return nil
		}
		if at(0x38, "ARMd") {
			return fmt.Errorf("kernel %s is an arm64 kernel, not an x86-64 one", path)
		}
		return fmt.Errorf("kernel %s is not an x86-64 kernel image (no bzImage header): pass a vmlinuz/bzImage", path)
	case "arm64":
		if at(0x38, "ARMd") {
			return nil
		}
		if at(0x202, "HdrS") {
			return fmt.Errorf("kernel %s is an x86-64 kernel, not an arm64 one", path)
		}
		kind := ""
		switch {
		case at(0, "\x1f\x8b"):
			kind = "gzip-compressed"
		case at(0, "MZ") && at(4, "zimg"):
			kind = "EFI zboot-compressed"
		case at(0, "\x28\xb5\x2f\xfd"):
			kind = "zstd-compressed"
		case at(0, "\x7fELF"):
			kind = "ELF (vmlinux)"
		}
		if kind == "" {
			return fmt.Errorf("kernel %s is not an arm64 kernel image (no \"ARMd\" magic at 0x38)", path)
		}
		if backend == "vz" {
			return fmt.Errorf("kernel %s is %s: Virtualization.framework boots only an uncompressed arm64 Image (arch/arm64/boot/Image; for a gzip one: gunzip -c %s > Image)", path, kind, path)
		}
		return nil
	}
	return fmt.Errorf("unsupported guest architecture %q (amd64 or arm64)", arch)
}

// versionOf reads a kernel image's version: from the bzImage header's
// version pointer for x86, else by finding the "Linux version " banner in
// an uncompressed image. "" when neither works.
func versionOf(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	hdr := make([]byte, 0x210)
	if _, err := io.ReadFull(f, hdr); err == nil && string(hdr[0x202:0x206]) == "HdrS" {
		off := int64(binary.LittleEndian.Uint16(hdr[0x20e:])) + 0x200
		buf := make([]byte, 128)
		if n, _ := f.ReadAt(buf, off); n > 0 {
			s, _, _ := strings.Cut(string(buf[:n]), "\x00")
			v, _, _ := strings.Cut(s, " ")
			return v
		}
		return ""
	}
	// The banner is "Linux version <version> (builder) ...".
	f.Seek(0, io.SeekStart)
	r := bufio.NewReaderSize(f, 1<<20)
	const banner = "Linux version "
	var carry []byte
	buf := make([]byte, 1<<20)
	for {
		n, err := r.Read(buf)
		chunk := append(carry, buf[:n]...)
		if i := bytes.Index(chunk, []byte(banner)); i >= 0 && i+len(banner)+64 <= len(chunk) {
			rest := chunk[i+len(banner):]
			if j := bytes.IndexAny(rest, " \x00"); j > 0 {
				return string(rest[:j])
			}
		}
		if err != nil {
			return ""
		}
		if len(chunk) > 256 {
			carry = append([]byte(nil), chunk[len(chunk)-256:]...)
		} else {
			carry = chunk
		}
	}
}
