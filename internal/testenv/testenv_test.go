package testenv

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestKernelAndGuestDir(t *testing.T) {
	k, m := Kernel(t, runtime.GOARCH)
	if _, err := os.Stat(k); err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel %s modules %s", k, m)
	RequireQEMU(t, runtime.GOARCH)
	dir := GuestDir(t, runtime.GOARCH)
	for _, f := range []string{"berth-agent", "initramfs.cpio.gz"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if again := GuestDir(t, runtime.GOARCH); again != dir {
		t.Fatalf("second call gave %s, first %s", again, dir)
	}
	initrd := Initrd(t, runtime.GOARCH)
	if st, err := os.Stat(initrd); err != nil || st.Size() == 0 {
		t.Fatal(err)
	}
}

func TestVersionLess(t *testing.T) {
	if !versionLess("/boot/vmlinuz-6.1.0-9-cloud-amd64", "/boot/vmlinuz-6.1.0-10-cloud-amd64") {
		t.Fatal("6.1.0-9 should sort before 6.1.0-10")
	}
}

func TestUnknownArch(t *testing.T) {
	if _, _, err := FindKernel("riscv64"); err == nil {
		t.Fatal("want error")
	}
}
