package container

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/testimage"
	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/ext4"
	"github.com/berth-dev/berth/runtime/state"
)

// stoppedWithDisk makes a manager with one exited container "c" whose root
// disk holds files.
func stoppedWithDisk(t *testing.T, files []testimage.File) *Manager {
	t.Helper()
	root, _ := dataroot.Open(t.TempDir())
	db, err := state.Open(root.StateDB())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m, _ := New(Config{DB: db, Root: root})
	r := &record{ID: newID(), Name: "c", Created: time.Now(), State: container.StateExited, HasBeenStarted: true, Arch: "amd64"}
	os.MkdirAll(root.Container(r.ID), 0o700)
	f, err := os.Create(root.Container(r.ID) + "/rootfs.ext4")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := ext4.NewWriter(f, ext4.Options{Size: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddTar(bytes.NewReader(testimage.Tar(files))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.put(r); err != nil {
		t.Fatal(err)
	}
	m, _ = New(Config{DB: db, Root: root})
	return m
}

type tarEntry struct {
	name, body string
	typ        byte
}

func readTar(t *testing.T, data []byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("the copy is not a valid tar: %v", err)
		}
		b, _ := io.ReadAll(tr)
		out = append(out, tarEntry{h.Name, string(b), h.Typeflag})
	}
}

// docker cp out of a stopped container reads its ext4: the agent's tar
// layout (named from the path's base, symlinks resolved inside the root),
// path stats for HEAD, no way out with ".." or symlinks, clear errors; and
// copying in says to start the container first.
func TestCopyFromStoppedContainer(t *testing.T) {
	m := stoppedWithDisk(t, []testimage.File{
		testimage.Dir("etc", 0o755),
		{Path: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0::/root:/bin/sh\n")},
		{Path: "etc/shadow", Mode: 0o600, Data: []byte("secret\n"), UID: 0, GID: 42},
		testimage.Dir("etc/sub", 0o700),
		{Path: "etc/sub/f", Mode: os.ModeSetuid | 0o755, Data: []byte("f\n")},
		testimage.Dir("etcetera", 0o755),
		{Path: "etcetera/x", Mode: 0o644, Data: []byte("not in /etc\n")},
		testimage.Symlink("abs", "/etc"),
		testimage.Symlink("climb", "../../../../etc/passwd"),
		testimage.Symlink("loop", "loop"),
		{Path: "hello.txt", Mode: 0o644, Data: []byte("hello\n")},
	})
	ctx := context.Background()
	copyOut := func(p string) ([]tarEntry, error) {
		var buf bytes.Buffer
		err := m.CopyFrom(ctx, "c", p, &buf)
		return readTar(t, buf.Bytes()), err
	}
	got, err := copyOut("/etc")
	if err != nil {
		t.Fatal(err)
	}
	want := []tarEntry{{"etc/", "", tar.TypeDir}, {"etc/passwd", "root:x:0:0::/root:/bin/sh\n", tar.TypeReg},
		{"etc/shadow", "secret\n", tar.TypeReg}, {"etc/sub/", "", tar.TypeDir}, {"etc/sub/f", "f\n", tar.TypeReg}}
	if len(got) != len(want) {
		t.Fatalf("copy of /etc: %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	for p, want := range map[string][]tarEntry{
		"/hello.txt":        {{"hello.txt", "hello\n", tar.TypeReg}},
		"/abs/passwd":       {{"passwd", "root:x:0:0::/root:/bin/sh\n", tar.TypeReg}},
		"/climb":            {{"climb", "root:x:0:0::/root:/bin/sh\n", tar.TypeReg}}, // the container's, not the host's
		"/../../etc/passwd": {{"passwd", "root:x:0:0::/root:/bin/sh\n", tar.TypeReg}},
		"etc/sub/../sub/f":  {{"f", "f\n", tar.TypeReg}},
		"/abs/../hello.txt": {{"hello.txt", "hello\n", tar.TypeReg}}, // lexically cleaned first, as for a running container
		"/etcetera/x":       {{"x", "not in /etc\n", tar.TypeReg}},
	} {
		got, err := copyOut(p)
		if err != nil || len(got) != 1 || got[0] != want[0] {
			t.Errorf("copy of %s: %+v %v, want %+v", p, got, err, want)
		}
	}
	if all, err := copyOut("/"); err != nil || len(all) < 10 || all[0].name != "./" {
		t.Errorf("copy of /: %v, %d entries, first %+v", err, len(all), all)
	}

	st, err := m.StatPath(ctx, "c", "/etc/sub/f")
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != "f" || st.Size != 2 || st.Mode != os.ModeSetuid|0o755 || st.Mtime.IsZero() {
		t.Errorf("stat /etc/sub/f: %+v", st)
	}
	if st, err := m.StatPath(ctx, "c", "/abs"); err != nil || st.Name != "abs" || !st.Mode.IsDir() {
		t.Errorf("stat /abs (a symlink to a directory, followed): %+v %v", st, err)
	}
	for p, kind := range map[string]error{
		"/nosuch": ErrNotFound, "/hello.txt/x": ErrNotFound, "/abs/nosuch": ErrNotFound, "/loop": ErrInvalid,
	} {
		if _, err := copyOut(p); !errors.Is(err, kind) {
			t.Errorf("copy of %s: %v, want %v", p, err, kind)
		}
		if _, err := m.StatPath(ctx, "c", p); !errors.Is(err, kind) {
			t.Errorf("stat of %s: %v, want %v", p, err, kind)
		}
	}
	if _, err := m.StatPath(ctx, "nosuch", "/etc"); !errors.Is(err, ErrNotFound) {
		t.Errorf("stat in a missing container: %v", err)
	}
	err = m.CopyTo(ctx, "c", "/tmp", bytes.NewReader(testimage.Tar([]testimage.File{{Path: "x", Data: []byte("x")}})), CopyToOptions{})
	if !errors.Is(err, ErrNotImplemented) || !strings.Contains(err.Error(), "start it first") {
		t.Errorf("copy into a stopped container: %v", err)
	}
}
