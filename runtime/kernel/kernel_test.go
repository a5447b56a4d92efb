package kernel

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeArm64 is a minimal arm64 Image: the magic at 0x38 and a banner.
func fakeArm64(version string) []byte {
	b := make([]byte, 8192)
	copy(b[0x38:], "ARMd")
	copy(b[4000:], "Linux version "+version+" (builder@example) #1 SMP\x00")
	return b
}

func write(t *testing.T, p string, b []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func hostKernel(t *testing.T) string {
	t.Helper()
	k, err := newestBoot("/boot", "/lib/modules")
	if err != nil {
		t.Fatalf("%v: install the Debian package linux-image-cloud-amd64 (packaging/setup-linux.sh)", err)
	}
	return k.Image
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	arm := write(t, filepath.Join(dir, "Image"), fakeArm64("6.18.15-186"))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(fakeArm64("x"))
	zw.Close()
	armGz := write(t, filepath.Join(dir, "Image.gz"), gz.Bytes())
	junk := write(t, filepath.Join(dir, "junk"), []byte("hello"))
	x86 := hostKernel(t)

	for _, tc := range []struct {
		path, arch, backend, want string
	}{
		{x86, "amd64", "qemu", ""},
		{arm, "arm64", "vz", ""},
		{arm, "arm64", "qemu", ""},
		{armGz, "arm64", "qemu", ""}, // QEMU unpacks it
		{armGz, "arm64", "vz", "is gzip-compressed: Virtualization.framework boots only an uncompressed arm64 Image"},
		{x86, "arm64", "vz", "is an x86-64 kernel, not an arm64 one"},
		{arm, "amd64", "qemu", "is an arm64 kernel, not an x86-64 one"},
		{junk, "amd64", "qemu", "is not an x86-64 kernel image"},
		{junk, "arm64", "vz", `is not an arm64 kernel image (no "ARMd" magic at 0x38)`},
		{filepath.Join(dir, "missing"), "amd64", "", "no such file"},
		{arm, "riscv64", "", "unsupported guest architecture"},
	} {
		err := Check(tc.path, tc.arch, tc.backend)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Check(%s, %s, %s) = %v", filepath.Base(tc.path), tc.arch, tc.backend, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Check(%s, %s, %s) = %v, want %q", filepath.Base(tc.path), tc.arch, tc.backend, err, tc.want)
		}
	}
}

func TestVersionOf(t *testing.T) {
	x86 := hostKernel(t)
	want := strings.TrimPrefix(filepath.Base(x86), "vmlinuz-")
	if got := versionOf(x86); got != want {
		t.Errorf("bzImage version %q, want %q", got, want)
	}
	arm := write(t, filepath.Join(t.TempDir(), "Image"), fakeArm64("6.18.15-186"))
	if got := versionOf(arm); got != "6.18.15-186" {
		t.Errorf("arm64 banner version %q", got)
	}
	if k, err := fromDir(Arm64Cache); err == nil {
		if got := versionOf(k.Image); got != k.Version {
			t.Errorf("Debian arm64 Image: banner %q, version file %q", got, k.Version)
		}
	}
}

func TestNewestBoot(t *testing.T) {
	boot, mods := t.TempDir(), t.TempDir()
	for _, v := range []string{"6.1.0-9-cloud-amd64", "6.1.0-10-cloud-amd64", "5.10.0-30-cloud-amd64"} {
		write(t, filepath.Join(boot, "vmlinuz-"+v), []byte("k"))
	}
	write(t, filepath.Join(mods, "6.1.0-10-cloud-amd64", "modules.dep"), nil)
	k, err := newestBoot(boot, mods)
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != "6.1.0-10-cloud-amd64" || k.ModulesDir != filepath.Join(mods, "6.1.0-10-cloud-amd64") {
		t.Fatalf("%+v", k)
	}
	if _, err := newestBoot(t.TempDir(), mods); err == nil {
		t.Fatal("empty /boot accepted")
	}
}

func TestResolve(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the defaults checked here are those of an amd64 Linux machine")
	}
	t.Setenv(GlobalEnv, "")
	root := t.TempDir()
	k, err := Resolve(root, "amd64", "")
	if err != nil {
		t.Fatal(err)
	}
	if k.Image != hostKernel(t) || k.ModulesDir != "/lib/modules/"+k.Version {
		t.Fatalf("default amd64 kernel %+v", k)
	}

	// arm64 comes from the fetch-arm64.sh layout.
	cache := t.TempDir()
	write(t, filepath.Join(cache, "vmlinuz"), fakeArm64("6.1.0-56-cloud-arm64"))
	write(t, filepath.Join(cache, "version"), []byte("6.1.0-56-cloud-arm64\n"))
	write(t, filepath.Join(cache, "modules", "6.1.0-56-cloud-arm64", "modules.dep"), nil)
	old := Arm64Cache
	Arm64Cache = cache
	defer func() { Arm64Cache = old }()
	k, err = Resolve(root, "arm64", "")
	if err != nil {
		t.Fatal(err)
	}
	if k.Image != filepath.Join(cache, "vmlinuz") || k.Version != "6.1.0-56-cloud-arm64" || k.ModulesDir != filepath.Join(cache, "modules", k.Version) {
		t.Fatalf("arm64 %+v", k)
	}
	Arm64Cache = filepath.Join(cache, "absent")
	if _, err := Resolve(root, "arm64", ""); err == nil || !strings.Contains(err.Error(), "run packaging/fetch-arm64.sh") {
		t.Fatalf("missing arm64 cache: %v", err)
	}

	// Per-container override: a directory, a /boot file, a bare image.
	if k, err = Resolve(root, "arm64", cache); err != nil || k.ModulesDir == "" {
		t.Fatalf("override dir: %+v %v", k, err)
	}
	if k, err = Resolve(root, "amd64", hostKernel(t)); err != nil || k.ModulesDir == "" {
		t.Fatalf("override /boot kernel: %+v %v", k, err)
	}
	bare := write(t, filepath.Join(t.TempDir(), "Image"), fakeArm64("6.18.15-186"))
	if k, err = Resolve(root, "arm64", bare); err != nil || k.Version != "6.18.15-186" || k.ModulesDir != "" {
		t.Fatalf("override image: %+v %v", k, err)
	}
	if _, err := Resolve(root, "amd64", "/nonexistent/vmlinuz"); err == nil || err.Error() != "kernel /nonexistent/vmlinuz: no such file" {
		t.Fatalf("missing override: %v", err)
	}
	if _, err := Resolve(root, "amd64", bare); err == nil || !strings.Contains(err.Error(), "arm64 kernel, not an x86-64") {
		t.Fatalf("wrong-arch override: %v", err)
	}
	// The global setting applies when the container names none.
	t.Setenv(GlobalEnv, bare)
	if k, err = Resolve(root, "arm64", ""); err != nil || k.Image != bare {
		t.Fatalf("global kernel: %+v %v", k, err)
	}
}
