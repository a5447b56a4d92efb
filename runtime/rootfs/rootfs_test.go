//go:build linux

package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/berth-dev/berth/internal/testimage"
	"github.com/berth-dev/berth/runtime/ext4"
)

func fsck(t *testing.T, img string) {
	t.Helper()
	out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn %s: %v (install e2fsprogs if missing)\n%s", img, err, out)
	}
}

// readTree returns path → content (files) or target (symlinks) of an image.
func readTree(t *testing.T, img string) map[string]string {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := ext4.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	err = rd.Walk(func(e *ext4.Entry) error {
		switch {
		case e.Mode.IsRegular():
			r, err := rd.OpenFile(e)
			if err != nil {
				return err
			}
			b, err := io.ReadAll(r)
			out[e.Path] = string(b)
			return err
		case e.Mode&os.ModeSymlink != 0:
			out[e.Path] = "-> " + e.Link
		default:
			out[e.Path] = e.Mode.String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSnapshotBusybox(t *testing.T) {
	img, err := testimage.BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &Snapshots{Dir: filepath.Join(dir, "snapshots"), Size: 128 << 20}
	before := builds.Load()
	var wg sync.WaitGroup
	paths := make([]string, 8)
	errs := make([]error, 8)
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i], errs[i] = s.Snapshot(context.Background(), img, "sha256:abc@linux/amd64")
		}()
	}
	wg.Wait()
	for i := range paths {
		if errs[i] != nil || paths[i] != paths[0] {
			t.Fatalf("request %d: %q, %v", i, paths[i], errs[i])
		}
	}
	if n := builds.Load() - before; n != 1 {
		t.Errorf("8 concurrent requests built the snapshot %d times", n)
	}
	snap := paths[0]
	fsck(t, snap)
	tree := readTree(t, snap)
	bb, _ := testimage.BusyboxBinary("")
	want, _ := os.ReadFile(bb)
	if tree["bin/busybox"] != string(want) {
		t.Error("bin/busybox content differs")
	}
	if tree["hello.txt"] != testimage.HelloText {
		t.Errorf("hello.txt = %q", tree["hello.txt"])
	}
	if _, ok := tree[testimage.WhiteoutPath[1:]]; ok {
		t.Errorf("%s survived its whiteout", testimage.WhiteoutPath)
	}
	if tree["bin/sh"] != "-> busybox" {
		t.Errorf("bin/sh = %q", tree["bin/sh"])
	}
	// No temp or stray files besides the snapshot and its lock.
	ents, _ := os.ReadDir(s.Dir)
	for _, e := range ents {
		if e.Name() != filepath.Base(snap) && filepath.Ext(e.Name()) != ".lock" {
			t.Errorf("stray file %s in the snapshot dir", e.Name())
		}
	}

	// Clone: same bytes, sparse, independent of the snapshot.
	dst := filepath.Join(dir, "c1", "rootfs.ext4")
	os.MkdirAll(filepath.Dir(dst), 0o700)
	if err := s.Clone(snap, dst); err != nil {
		t.Fatal(err)
	}
	if err := s.Clone(snap, dst); err == nil {
		t.Error("clone over an existing file succeeded")
	}
	a, _ := os.ReadFile(snap)
	b, _ := os.ReadFile(dst)
	if !bytes.Equal(a, b) {
		t.Fatal("clone differs from the snapshot")
	}
	var st syscall.Stat_t
	syscall.Stat(dst, &st)
	if st.Blocks*512 > 64<<20 {
		t.Errorf("clone occupies %d MiB on disk; the copy should be sparse", st.Blocks*512>>20)
	}
	fsck(t, dst)
	f, _ := os.OpenFile(dst, os.O_WRONLY, 0)
	f.WriteAt([]byte("scribble"), 1<<20)
	f.Close()
	a2, _ := os.ReadFile(snap)
	if !bytes.Equal(a, a2) {
		t.Error("writing the clone changed the snapshot")
	}
}

// Two independent Snapshots (as two processes would have) build once: the
// file lock serialises them and the second finds the published file.
func TestSnapshotAcrossProcesses(t *testing.T) {
	img, err := testimage.BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	before := builds.Load()
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &Snapshots{Dir: dir, Size: 256 << 20}
			if _, err := s.Snapshot(context.Background(), img, "sha256:def"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := builds.Load() - before; n != 1 {
		t.Errorf("built %d times", n)
	}
}

func zstdLayer(t *testing.T, tarBytes []byte) v1.Layer {
	var b bytes.Buffer
	zw, _ := zstd.NewWriter(&b)
	zw.Write(tarBytes)
	zw.Close()
	return static.NewLayer(b.Bytes(), types.OCILayerZStd)
}

func tarOf(t *testing.T, files map[string]string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for name, data := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write([]byte(data))
	}
	tw.Close()
	return b.Bytes()
}

// gzip, zstd and uncompressed layers in one image; the compression is
// sniffed, not taken from the (here deliberately wrong) media type.
func TestMixedCompression(t *testing.T) {
	gz, err := testimage.LayerFromTar(tarOf(t, map[string]string{"a": "gzip layer", "b": "lower b"}))
	if err != nil {
		t.Fatal(err)
	}
	zs := zstdLayer(t, tarOf(t, map[string]string{"z": "zstd layer", ".wh.b": ""}))
	plain := static.NewLayer(tarOf(t, map[string]string{"p": "plain layer"}), types.DockerLayer)
	img, err := testimage.Image("amd64", []string{"sh"}, gz, zs, plain)
	if err != nil {
		t.Fatal(err)
	}
	s := &Snapshots{Dir: t.TempDir(), Size: 64 << 20}
	p, err := s.Snapshot(context.Background(), img, "k")
	if err != nil {
		t.Fatal(err)
	}
	fsck(t, p)
	tree := readTree(t, p)
	for k, v := range map[string]string{"a": "gzip layer", "z": "zstd layer", "p": "plain layer"} {
		if tree[k] != v {
			t.Errorf("%s = %q, want %q", k, tree[k], v)
		}
	}
	if _, ok := tree["b"]; ok {
		t.Error("b survived its whiteout")
	}
}

// A cancelled build publishes nothing and leaves no temp file.
func TestSnapshotCancelled(t *testing.T) {
	img, err := testimage.BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := &Snapshots{Dir: t.TempDir(), Size: 64 << 20}
	if _, err := s.Snapshot(ctx, img, "k"); err == nil {
		t.Fatal("cancelled build succeeded")
	}
	ents, _ := os.ReadDir(s.Dir)
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ".lock" {
			t.Errorf("left %s behind", e.Name())
		}
	}
}

func TestCorruptLayer(t *testing.T) {
	bad := static.NewLayer(append([]byte{0x1f, 0x8b, 8, 0}, bytes.Repeat([]byte{0xAB}, 100)...), types.DockerLayer)
	img, err := testimage.Image("amd64", nil, bad)
	if err != nil {
		t.Fatal(err)
	}
	s := &Snapshots{Dir: t.TempDir(), Size: 64 << 20}
	_, err = s.Snapshot(context.Background(), img, "k")
	if err == nil || !strings.Contains(err.Error(), "gzip layer") {
		t.Fatalf("corrupt gzip layer: want an error naming it, got %v", err)
	}
}
