package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-dev/berth/internal/testimage"
	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/image"
)

func e2fsck(t *testing.T, img string) {
	t.Helper()
	if out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn: %v (needs e2fsprogs)\n%s", err, out)
	}
}

func TestRootfsCreateFromTar(t *testing.T) {
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "in.tar")
	os.WriteFile(tarPath, testimage.Tar([]testimage.File{testimage.Dir("etc", 0o755), {Path: "etc/hi", Data: []byte("hi")}}), 0o644)
	out := filepath.Join(dir, "out.ext4")
	if code := Main([]string{"--data-root", filepath.Join(dir, "root"), "rootfs", "create", "--size", "64M", "--tar", tarPath, out}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	e2fsck(t, out)
	if st, _ := os.Stat(out); st.Size() != 64<<20 {
		t.Errorf("size %d, want 64 MiB", st.Size())
	}
	// Bad input fails and leaves no output file.
	os.WriteFile(tarPath, []byte("not a tar at all, definitely not"), 0o644)
	bad := filepath.Join(dir, "bad.ext4")
	if code := Main([]string{"--data-root", filepath.Join(dir, "root"), "rootfs", "create", "--tar", tarPath, bad}); code == 0 {
		t.Error("garbage tar accepted")
	}
	if _, err := os.Stat(bad); err == nil {
		t.Error("failed build left an output file")
	}
}

func TestRootfsCreateAndExportImage(t *testing.T) {
	dir := t.TempDir()
	root, _ := dataroot.Open(filepath.Join(dir, "root"))
	img, err := testimage.BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	tag, _ := name.NewTag("example.com/busybox:test")
	if err := tarball.Write(tag, img, &archive); err != nil {
		t.Fatal(err)
	}
	store, closeStore := openImageStore(t, root.Dir)
	if _, err := store.Load(context.Background(), &archive, image.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	closeStore()

	out := filepath.Join(dir, "bb.ext4")
	if code := Main([]string{"--data-root", root.Dir, "rootfs", "create", "--size", "256M", "example.com/busybox:test", out}); code != 0 {
		t.Fatalf("rootfs create: exit %d", code)
	}
	e2fsck(t, out)

	tarOut := filepath.Join(dir, "bb.tar")
	if code := Main([]string{"--data-root", root.Dir, "export", "example.com/busybox:test", "-o", tarOut}); code != 0 {
		t.Fatalf("export: exit %d", code)
	}
	f, err := os.Open(tarOut)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		seen[h.Name] = string(b)
	}
	if seen["hello.txt"] != testimage.HelloText {
		t.Errorf("hello.txt = %q", seen["hello.txt"])
	}
	if _, ok := seen[testimage.WhiteoutPath[1:]]; ok {
		t.Errorf("whited-out %s exported", testimage.WhiteoutPath)
	}
	if _, ok := seen["bin/busybox"]; !ok {
		t.Error("bin/busybox missing from the export")
	}
}
