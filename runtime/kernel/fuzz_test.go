package kernel

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The archive is parsed while it streams in, before its hash can be
// checked: whatever the bytes, extraction must not panic and must write
// nothing but the one output file.
func FuzzExtractMember(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		out := filepath.Join(dir, "vmlinux")
		found, err := extractMember(bytes.NewReader(data), Kata.Member, out)
		if found && err == nil {
			if _, serr := os.Stat(out); serr != nil {
				t.Fatal("found but not written")
			}
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.Name() != "vmlinux" {
				t.Fatalf("extraction wrote %s", e.Name())
			}
		}
	})
}

// Kernel files are whatever the user points --kernel at.
func FuzzCheck(f *testing.F) {
	f.Add(fakeArm64("6.18.15-186"))
	x := make([]byte, 0x240)
	copy(x[0x202:], "HdrS")
	f.Add(x)
	f.Add([]byte("\x1f\x8b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "k")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, arch := range []string{"amd64", "arm64"} {
			for _, be := range []string{"qemu", "vz"} {
				Check(p, arch, be)
			}
		}
		versionOf(p)
	})
}
