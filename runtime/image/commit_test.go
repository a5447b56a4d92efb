package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// failingReader yields some bytes, then an error: a commit whose layer
// could not be read to the end.
type failingReader struct{ r io.Reader }

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("disk read failed")
	}
	return n, err
}

func TestCommit(t *testing.T) {
	t.Parallel()
	s, root := newStore(t)
	ctx := context.Background()
	base, err := s.Import(ctx, bytes.NewReader(tarOf([2]string{"hello.txt", "hi\n"})), "base:1", ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	layer := tarOf([2]string{"new.txt", "new\n"}, [2]string{".wh.hello.txt", ""})
	cfg := v1.Config{Cmd: []string{"cat", "/new.txt"}, Env: []string{"X=1"}}
	rec, err := s.Commit(ctx, base.Digest.String(), bytes.NewReader(layer), CommitOptions{Config: cfg, Comment: "c1", Author: "me", Tag: "myimg:1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Layers) != 2 || rec.Layers[0] != base.Layers[0] || rec.Layers[1].DiffID != sha256Hash(layer) || rec.Source != "commit" {
		t.Fatalf("record %+v", rec)
	}
	img, _, err := s.Resolve(ctx, "myimg:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if fmt.Sprint(cf.Config.Cmd) != "[cat /new.txt]" || len(cf.RootFS.DiffIDs) != 2 || cf.Author != "me" {
		t.Errorf("config %+v", cf)
	}
	if d, err := s.Inspect("myimg:1"); err != nil || d.Comment != "c1" {
		t.Errorf("inspect comment: %+v %v", d, err)
	}
	if h := cf.History[len(cf.History)-1]; h.CreatedBy != "berth commit" || h.Comment != "c1" || h.Author != "me" || h.EmptyLayer {
		t.Errorf("history %+v", h)
	}
	layers, _ := img.Layers()
	if got := files(t, layers[1]); got["new.txt"] != "new\n" {
		t.Errorf("layer files %v", got)
	}
	// The stored blob is gzip and verifies against its digest.
	if d, _ := layers[1].Digest(); d == rec.Layers[1].DiffID {
		t.Errorf("layer stored uncompressed")
	}
	if err := s.blobs.verify(rec.Layers[1].Digest); err != nil {
		t.Error(err)
	}

	// Failures leave nothing: no image, no tag, no temp file.
	before := snapshot(t, s, root)
	for name, c := range map[string]struct {
		base, tag string
		r         io.Reader
		want      string
	}{
		"layer read fails": {base.Digest.String(), "x:1", &failingReader{bytes.NewReader(layer)}, "disk read failed"},
		"missing base":     {"sha256:" + strings.Repeat("0", 64), "x:1", bytes.NewReader(layer), "no such image"},
		"bad tag":          {base.Digest.String(), "UPPER:1", bytes.NewReader(layer), "invalid"},
	} {
		_, err := s.Commit(ctx, c.base, c.r, CommitOptions{Tag: c.tag})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	if after := snapshot(t, s, root); after != before {
		t.Fatalf("a failed commit changed the store:\n%s\nwas:\n%s", after, before)
	}
}
