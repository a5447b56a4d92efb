package image

import (
	"bytes"
	"context"
	"testing"
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
