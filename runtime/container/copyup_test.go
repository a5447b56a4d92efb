package container

import (
	"archive/tar"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/moby/moby/api/types/container"
)

// An empty volume is filled from the image's directory — contents, owner,
// mode, symlinks as symlinks — and nothing escapes the volume; a volume
// with data, a nocopy mount and a path the image lacks stay as they are.
func TestCopyUpVolumes(t *testing.T) {
	rootfs := filepath.Join(t.TempDir(), "rootfs.ext4")
	buildImageAt(t, rootfs, buildTar(t, []tEntry{
		{name: "srv/", typ: tar.TypeDir, mode: 0o750, uid: 999},
		{name: "srv/index.html", typ: tar.TypeReg, data: "<h1>from the image</h1>\n", uid: 999},
		{name: "srv/sub/", typ: tar.TypeDir},
		{name: "srv/sub/run.sh", typ: tar.TypeReg, mode: 0o4755, data: "#!/bin/sh\n"},
		{name: "srv/abs", typ: tar.TypeSymlink, link: "/etc/passwd"},
		{name: "srv/up", typ: tar.TypeSymlink, link: "../../../../../tmp"},
		{name: "srv/fifo", typ: tar.TypeFifo},
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/passwd", typ: tar.TypeReg, data: "root:x:0:0::/root:/bin/sh\n"},
		{name: "web", typ: tar.TypeSymlink, link: "/srv"},
	}))
	vols := volumeStore(t)
	h := container.HostConfig{Binds: []string{"fresh:/srv", "vialink:/web", "kept:/srv", "none:/srv:nocopy", "missing:/nothing/here"}}
	// One parse per mount: the same target twice is refused in one container.
	var specs []mountSpec
	for _, b := range h.Binds {
		m, err := parseBind(b)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, m)
	}
	if err := prepareMounts(specs, vols); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(vols.Path("kept"), "mine.txt"), []byte("user data"), 0o644)
	if err := copyUpVolumes(specs, vols, rootfs); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fresh", "vialink"} {
		dir := vols.Path(name)
		if b, err := os.ReadFile(filepath.Join(dir, "index.html")); err != nil || string(b) != "<h1>from the image</h1>\n" {
			t.Fatalf("%s: index.html %q %v", name, b, err)
		}
		st, err := os.Lstat(dir)
		if err != nil || st.Mode().Perm() != 0o750 || st.Sys().(*syscall.Stat_t).Uid != 999 {
			t.Errorf("%s: volume root %v uid %v, want the image directory's 0750 and uid 999", name, st.Mode(), st.Sys().(*syscall.Stat_t).Uid)
		}
		if st, err := os.Stat(filepath.Join(dir, "sub", "run.sh")); err != nil || st.Mode()&os.ModeSetuid == 0 || st.Mode().Perm() != 0o755 {
			t.Errorf("%s: run.sh %v %v", name, st, err)
		}
		if l, err := os.Readlink(filepath.Join(dir, "abs")); err != nil || l != "/etc/passwd" {
			t.Errorf("%s: abs -> %q %v (want the symlink itself)", name, l, err)
		}
		if l, err := os.Readlink(filepath.Join(dir, "up")); err != nil || l != "../../../../../tmp" {
			t.Errorf("%s: up -> %q %v", name, l, err)
		}
		if _, err := os.Lstat(filepath.Join(dir, "fifo")); err == nil {
			t.Errorf("%s: a fifo was copied", name)
		}
	}
	if ents, _ := os.ReadDir(vols.Path("kept")); len(ents) != 1 {
		t.Errorf("a volume with data was filled: %v", ents)
	}
	for _, name := range []string{"none", "missing"} {
		if ents, _ := os.ReadDir(vols.Path(name)); len(ents) != 0 {
			t.Errorf("%s: filled: %v", name, ents)
		}
	}
}
