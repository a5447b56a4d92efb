package initramfs

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
		t.Fatal(err)
	}
}

// cpioList lists an archive with the system cpio (GNU cpio, Debian package cpio).
func cpioList(t *testing.T, gz []byte) string {
	t.Helper()
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Fatal("cpio not found: install the Debian package cpio")
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(false)
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, out)
	}
	return string(out)
}

func TestBaseArchiveIsReadableAndReproducible(t *testing.T) {
	agent := filepath.Join(t.TempDir(), "agent")
	writeFile(t, agent, "#!/bin/sh\necho hi\n")
	var a, b bytes.Buffer
	if err := WriteBase(&a, agent); err != nil {
		t.Fatal(err)
	}
	if err := WriteBase(&b, agent); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two builds from the same input differ")
	}
	list := cpioList(t, a.Bytes())
	for _, want := range []string{"crw-------   1 root     root       5,   1 Jan  1  1970 dev/console", "-rwxr-xr-x   1 root     root           18 Jan  1  1970 init", "drwxr-xr-x   2 root     root            0 Jan  1  1970 proc"} {
		if !strings.Contains(list, want) {
			t.Errorf("listing lacks %q:\n%s", want, list)
		}
	}
	// Extract and compare the file contents.
	dir := t.TempDir()
	zr, _ := gzip.NewReader(bytes.NewReader(a.Bytes()))
	cmd := exec.Command("cpio", "-id", "--quiet", "--no-absolute-filenames", "init")
	cmd.Dir = dir
	cmd.Stdin = zr
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "init"))
	if string(got) != "#!/bin/sh\necho hi\n" {
		t.Fatalf("init = %q", got)
	}
}

func TestBaseMissingAgent(t *testing.T) {
	err := WriteBase(io.Discard, "/nonexistent/agent")
	if err == nil || !strings.Contains(err.Error(), "agent binary") {
		t.Fatalf("err = %v", err)
	}
}

func fakeKernel(t *testing.T) string {
	dir := t.TempDir()
	dep := `kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/unrelated.ko:
`
	writeFile(t, filepath.Join(dir, "modules.dep"), dep)
	for _, l := range strings.Split(dep, "\n") {
		if m, _, ok := strings.Cut(l, ":"); ok {
			writeFile(t, filepath.Join(dir, m), "module "+m)
		}
	}
	return dir
}

func TestResolveOrdersDependenciesFirst(t *testing.T) {
	dir := fakeKernel(t)
	got, err := Resolve(dir, []string{"virtio_net", "virtio-pci", "virtio_rng", "not_a_module", "virtio_net"})
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range got {
		if _, dup := pos[ModuleName(m)]; dup {
			t.Fatalf("%s listed twice: %v", m, got)
		}
		pos[ModuleName(m)] = i
	}
	if len(got) != 9 {
		t.Fatalf("want 9 modules, got %v", got)
	}
	for _, e := range [][2]string{{"virtio_ring", "virtio"}, {"virtio", "virtio_pci"}, {"failover", "net_failover"}, {"net_failover", "virtio_net"}, {"virtio", "virtio_rng"}, {"virtio_pci_modern_dev", "virtio_pci"}} {
		if pos[e[0]] >= pos[e[1]] {
			t.Errorf("%s must load before %s: %v", e[0], e[1], got)
		}
	}
}

func TestModulesArchive(t *testing.T) {
	dir := fakeKernel(t)
	var a, b bytes.Buffer
	if err := WriteModules(&a, dir, []string{"virtio_rng"}); err != nil {
		t.Fatal(err)
	}
	WriteModules(&b, dir, []string{"virtio_rng"})
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("not reproducible")
	}
	list := cpioList(t, a.Bytes())
	for _, want := range []string{"lib/modules/berth/virtio_ring.ko", "lib/modules/berth/virtio-rng.ko", "lib/modules/berth/order"} {
		if !strings.Contains(list, want) {
			t.Errorf("listing lacks %s:\n%s", want, list)
		}
	}
	if strings.Contains(list, "unrelated") {
		t.Errorf("unneeded module packed:\n%s", list)
	}
	if err := WriteModules(io.Discard, t.TempDir(), DefaultModules); err == nil || !strings.Contains(err.Error(), "modules.dep") {
		t.Fatalf("missing modules.dep: err = %v", err)
	}
}

func TestForKernelConcatenates(t *testing.T) {
	dir := fakeKernel(t)
	agent := filepath.Join(t.TempDir(), "agent")
	writeFile(t, agent, "x")
	base := filepath.Join(t.TempDir(), "base.cpio.gz")
	f, _ := os.Create(base)
	if err := WriteBase(f, agent); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var out bytes.Buffer
	if err := ForKernel(&out, base, dir); err != nil {
		t.Fatal(err)
	}
	// Both members must be there: the kernel unpacks them in turn.
	zr, _ := gzip.NewReader(&out)
	all, err := io.ReadAll(zr) // multistream: both archives
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(all, []byte("TRAILER!!!")); n != 2 {
		t.Fatalf("want 2 archives, found %d trailers", n)
	}
	if !bytes.Contains(all, []byte("lib/modules/berth/virtio_net.ko")) {
		t.Fatal("modules missing")
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{"a/b/virtio-rng.ko": "virtio_rng", "x.ko.xz": "x", "vsock.ko.zst": "vsock", "plain": "plain"} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzResolve(f *testing.F) {
	f.Add("a.ko: b.ko\nb.ko:\n", "a")
	f.Add("a.ko: a.ko\n", "a")
	f.Add("x/y-z.ko.xz: a.ko b.ko\na.ko: b.ko\nb.ko: a.ko\n", "y_z")
	f.Fuzz(func(t *testing.T, dep, name string) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644)
		order, err := Resolve(dir, []string{name})
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, m := range order {
			if seen[m] {
				t.Fatalf("%s twice in %v", m, order)
			}
			seen[m] = true
		}
	})
}
