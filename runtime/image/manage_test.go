package image

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestImport(t *testing.T) {
	t.Parallel()
	s, root := newStore(t)
	rootfs := tarOf([2]string{"bin/hello", "#!/bin/sh\necho hi\n"}, [2]string{"etc/os-release", "ID=berth\n"})
	for _, data := range [][]byte{rootfs, gz(rootfs), zst(rootfs)} {
		rec, err := s.Import(context.Background(), bytes.NewReader(data), "my/rootfs:1", ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.Layers) != 1 || rec.Layers[0].Digest != sha256Hash(rootfs) || rec.Layers[0].DiffID != sha256Hash(rootfs) {
			t.Fatalf("record %+v", rec)
		}
		img, _, err := s.Resolve(context.Background(), "my/rootfs:1", nil)
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := img.Layers()
		if got := files(t, layers[0])["etc/os-release"]; got != "ID=berth\n" {
			t.Fatalf("os-release %q", got)
		}
		cf, _ := img.ConfigFile()
		if cf.Architecture != DefaultPlatform().Architecture || cf.OS != "linux" {
			t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
		}
	}
	before := snapshot(t, s, root)
	bad := []struct {
		name, tag, want string
		data            []byte
	}{
		{"no name", "", "invalid image reference", rootfs},
		{"digest name", "x@sha256:" + strings.Repeat("a", 64), "name:tag is needed", rootfs},
		{"not a tar", "x:1", "not a tar archive", []byte(strings.Repeat("garbage ", 200))},
		{"empty", "x:1", "empty tar", make([]byte, 1024)},
		{"dotdot", "x:1", `".."`, tarOf([2]string{"../../etc/cron.d/evil", "x"})},
		{"image archive", "x:1", "berth load", tarOf([2]string{"manifest.json", "[]"})},
		{"truncated", "x:1", "truncated", rootfs[:520]},
	}
	for _, c := range bad {
		_, err := s.Import(context.Background(), bytes.NewReader(c.data), c.tag, ImportOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if after := snapshot(t, s, root); after != before {
		t.Fatalf("store changed:\n%s", after)
	}
}

func TestTagRemovePrune(t *testing.T) {
	t.Parallel()
	s, ref, _ := pulledStore(t)
	ctx := context.Background()
	if err := s.Tag(ref, "copy:1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag("nosuch:1", "x:1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("tag of a missing image: %v", err)
	}
	if err := s.Tag(ref, "Bad Name"); err == nil {
		t.Fatal("tagged with an invalid name")
	}
	imgs, _ := s.List()
	if len(imgs) != 1 || len(imgs[0].Tags) != 2 {
		t.Fatalf("list: %+v", imgs)
	}
	id := imgs[0].ID()
	// By ID with two tags: refused without -f.
	if _, err := s.Remove(id, false); err == nil || !strings.Contains(err.Error(), "use -f") {
		t.Fatalf("rmi by ID of a twice-tagged image: %v", err)
	}
	// One of two tags: untag only.
	res, err := s.Remove("copy:1", false)
	if err != nil || len(res.Untagged) != 1 || len(res.Deleted) != 0 {
		t.Fatalf("untag: %+v %v", res, err)
	}
	// In use: refused unless forced.
	var used v1.Hash
	s.InUse = func(d v1.Hash) bool { return d == used }
	used = imgs[0].Digest
	if _, err := s.Remove(ref, false); !errors.Is(err, ErrInUse) {
		t.Fatalf("rmi of an image in use: %v", err)
	}
	if p, err := s.Prune(true); err != nil || len(p.Deleted) != 0 {
		t.Fatalf("prune -a removed an image in use: %+v %v", p, err)
	}
	used = v1.Hash{}
	res, err = s.Remove(ref, false)
	if err != nil || len(res.Deleted) != 1 {
		t.Fatalf("rmi: %+v %v", res, err)
	}
	if blobs, _ := s.blobs.list(); len(blobs) != 0 {
		t.Fatalf("rmi left %d blobs", len(blobs))
	}
	if _, _, err := s.Resolve(ctx, ref, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("resolve after rmi: %v", err)
	}
	if _, err := s.Remove(ref, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second rmi: %v", err)
	}
}

func TestPruneDanglingAndOrphans(t *testing.T) {
	t.Parallel()
	s, ref, _ := pulledStore(t)
	// An untagged image (loaded from an OCI archive without names) is dangling.
	raw := saveBytes(t, s, FormatOCI, ref)
	imgs, _ := s.List()
	if _, err := s.Remove(ref, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(context.Background(), bytes.NewReader(stripNames(t, raw)), LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	// And an orphan blob, as an interrupted pull leaves.
	if _, err := s.blobs.putBytes([]byte("orphan")); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(imgs[0].ID(), "keep:1"); err != nil {
		t.Fatal(err)
	}
	p, err := s.Prune(false)
	if err != nil || len(p.Deleted) != 0 || p.Blobs != 1 || p.Reclaimed != int64(len("orphan")) {
		t.Fatalf("prune: %+v %v", p, err)
	}
	if _, err := s.Remove("keep:1", false); err != nil {
		t.Fatal(err)
	}
	// Remove of the last tag deleted it already; load it again untagged.
	if _, err := s.Load(context.Background(), bytes.NewReader(stripNames(t, raw)), LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err = s.Prune(false)
	if err != nil || len(p.Deleted) != 1 {
		t.Fatalf("prune of a dangling image: %+v %v", p, err)
	}
	if blobs, _ := s.blobs.list(); len(blobs) != 0 {
		t.Fatalf("%d blobs left", len(blobs))
	}
}

// stripNames removes the name annotations from an OCI archive's index.
func stripNames(t testing.TB, oci []byte) []byte {
	return bytes.ReplaceAll(oci, []byte(`"io.containerd.image.name"`), []byte(`"io.containerd.image.xxxx"`))
}
