package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berth-dev/berth/internal/testimage"
	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/state"
)

// newStore opens a store in a fresh data root.
func newStore(t testing.TB) (*Store, dataroot.Root) {
	t.Helper()
	root, err := dataroot.Open(filepath.Join(t.TempDir(), "root"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(root.StateDB())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := New(db, root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Sync) // before db.Close (cleanups run last-in first-out)
	return s, root
}

// snapshot describes everything visible in a store: images, tags, blob
// files and leftover temp files. Two equal snapshots mean "unchanged".
func snapshot(t testing.TB, s *Store, root dataroot.Root) string {
	t.Helper()
	imgs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, im := range imgs {
		lines = append(lines, "image "+im.Digest.String()+" "+strings.Join(im.Tags, ","))
	}
	blobs, _ := os.ReadDir(filepath.Join(root.Content(), "blobs", "sha256"))
	for _, b := range blobs {
		lines = append(lines, "blob "+b.Name())
	}
	tmp, _ := os.ReadDir(root.Tmp())
	for _, e := range tmp {
		lines = append(lines, "tmp "+e.Name())
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// files reads a layer's tar entries: name -> content (dirs and links: "").
func files(t testing.TB, l v1.Layer) map[string]string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}

// checkBusybox asserts img is testimage's busybox image, read from local blobs.
func checkBusybox(t testing.TB, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 {
		t.Fatalf("%d layers, want 2", len(layers))
	}
	base, upper := files(t, layers[0]), files(t, layers[1])
	bb, err := testimage.BusyboxBinary("")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(bb)
	if base["bin/busybox"] != string(want) {
		t.Errorf("bin/busybox differs from %s", bb)
	}
	if upper["hello.txt"] != testimage.HelloText {
		t.Errorf("hello.txt = %q", upper["hello.txt"])
	}
	if _, ok := upper["etc/.wh.motd"]; !ok {
		t.Errorf("the whiteout is missing from the upper layer: %v", upper)
	}
	for _, l := range layers {
		// Uncompressed content must hash to the diff ID the config promises.
		d, _ := l.DiffID()
		rc, _ := l.Uncompressed()
		got, _, err := v1.SHA256(rc)
		rc.Close()
		if err != nil || got != d {
			t.Errorf("layer diff ID %s, content hashes to %s (%v)", d, got, err)
		}
	}
}

func saveBytes(t testing.TB, s *Store, format string, refs ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Save(context.Background(), &buf, refs, format); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarOf builds a tar from name -> content pairs in order.
func tarOf(entries ...[2]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		tw.WriteHeader(&tar.Header{Name: e[0], Mode: 0o644, Size: int64(len(e[1])), Typeflag: tar.TypeReg})
		tw.Write([]byte(e[1]))
	}
	tw.Close()
	return buf.Bytes()
}
