package image

import (
	"bytes"
	"context"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// seedArchives are small valid archives of both formats plus damaged ones.
func seedArchives(t testing.TB) [][]byte {
	s, _ := newStore(t)
	rootfs := tarOf([2]string{"bin/sh", "#!"}, [2]string{"etc/passwd", "root:x:0:0::/:/bin/sh\n"})
	if _, err := s.Import(context.Background(), bytes.NewReader(rootfs), "fuzz:seed", ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	docker := saveBytes(t, s, FormatDocker, "fuzz:seed")
	oci := saveBytes(t, s, FormatOCI, "fuzz:seed")
	return [][]byte{docker, oci, gz(docker), zst(oci), docker[:len(docker)-1024], rootfs, {}}
}

// FuzzLoad feeds arbitrary bytes to the archive loader. Whatever it gets,
// Load must not panic, and must either fail leaving the store exactly as
// it was or succeed with every image resolvable from complete blobs.
//
// Run: go test -run '^$' -fuzz FuzzLoad -fuzztime 50s -fuzzminimizetime 50x ./runtime/image
// (the default minimize time of 60s would swallow a short run); copy new
// inputs from the fuzz cache into testdata/fuzz/FuzzLoad to keep them.
func FuzzLoad(f *testing.F) {
	for _, s := range seedArchives(f) {
		f.Add(s)
	}
	// One store for all inputs (opening bbolt per input would dominate):
	// every input starts from an empty store, restored by prune -a.
	s, root := newStore(f)
	s.MaxExpansion = 10
	empty := snapshot(f, s, root)
	f.Fuzz(func(t *testing.T, data []byte) {
		defer func() {
			if _, err := s.Prune(true); err != nil {
				t.Fatal(err)
			}
		}()
		imgs, err := s.Load(context.Background(), bytes.NewReader(data), LoadOptions{})
		if err != nil {
			if after := snapshot(t, s, root); after != empty {
				t.Fatalf("failed load (%v) changed the store:\n%s", err, after)
			}
			return
		}
		for _, im := range imgs {
			img, _, err := s.Resolve(context.Background(), im.Digest.String(), nil)
			if err != nil {
				t.Fatalf("loaded image %s does not resolve: %v", im.Digest, err)
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range layers {
				d, _ := l.Digest()
				if !s.blobs.has(d) {
					t.Fatalf("layer %s of a loaded image is missing", d)
				}
			}
		}
	})
}

// FuzzImport feeds arbitrary bytes to the root filesystem importer: it
// must not panic, and must either fail leaving the store unchanged or
// store exactly the decompressed input as the image's one layer.
func FuzzImport(f *testing.F) {
	rootfs := tarOf([2]string{"bin/sh", "#!"}, [2]string{"etc/hostname", "x\n"})
	for _, s := range [][]byte{rootfs, gz(rootfs), zst(rootfs), rootfs[:600], {}} {
		f.Add(s)
	}
	s, root := newStore(f)
	s.MaxExpansion = 10
	empty := snapshot(f, s, root)
	f.Fuzz(func(t *testing.T, data []byte) {
		defer func() {
			if _, err := s.Prune(true); err != nil {
				t.Fatal(err)
			}
		}()
		rec, err := s.Import(context.Background(), bytes.NewReader(data), "fuzz/import:1", ImportOptions{})
		if err != nil {
			if after := snapshot(t, s, root); after != empty {
				t.Fatalf("failed import (%v) changed the store:\n%s", err, after)
			}
			return
		}
		img, _, err := s.Resolve(context.Background(), "fuzz/import:1", nil)
		if err != nil || len(rec.Layers) != 1 {
			t.Fatalf("imported image: %v %+v", err, rec)
		}
		layers, _ := img.Layers()
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		d, _, err := v1.SHA256(rc)
		if err != nil || d != rec.Layers[0].DiffID {
			t.Fatalf("stored layer hashes to %s, diff ID %s (%v)", d, rec.Layers[0].DiffID, err)
		}
	})
}
