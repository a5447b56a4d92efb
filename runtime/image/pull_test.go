package image

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	ggcrcomp "github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-dev/berth/internal/testimage"
)

func TestPullFromRegistry(t *testing.T) {
	t.Parallel()
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	img, err := testimage.BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, img, "busybox:1")
	s, _ := newStore(t)
	var mu sync.Mutex
	statuses := map[string]int{}
	rec, err := s.Pull(context.Background(), ref, PullOptions{Progress: func(e Event) {
		mu.Lock()
		statuses[e.Status]++
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if rec.Digest != want {
		t.Fatalf("stored manifest %s, pushed %s", rec.Digest, want)
	}
	if statuses[StatusDownloadComplete] != 2 || statuses[StatusPullComplete] != 2 {
		t.Errorf("progress: %v", statuses)
	}
	local, d, err := s.Resolve(context.Background(), ref, nil)
	if err != nil || d != want {
		t.Fatalf("resolve: %v %s", err, d)
	}
	checkBusybox(t, local)
	if got, _ := local.Digest(); got != want {
		t.Errorf("local image digest %s", got)
	}
	// The short name and the image ID resolve too.
	if _, _, err := s.Resolve(context.Background(), rec.ID(), nil); err != nil {
		t.Errorf("resolve by ID: %v", err)
	}
	if _, _, err := s.Resolve(context.Background(), "nosuch:1", nil); !isNotFound(err) {
		t.Errorf("resolve of a missing image: %v", err)
	}
	// Pulling again downloads nothing.
	statuses = map[string]int{}
	if _, err := s.Pull(context.Background(), ref, PullOptions{Progress: func(e Event) { statuses[e.Status]++ }}); err != nil {
		t.Fatal(err)
	}
	if statuses[StatusExists] != 2 || statuses[StatusDownloading] != 0 {
		t.Errorf("second pull: %v", statuses)
	}
}

func isNotFound(err error) bool {
	return err != nil && strings.Contains(err.Error(), ErrNotFound.Error())
}

func TestPullWithHtpasswdAuth(t *testing.T) {
	// Not parallel: DOCKER_CONFIG is process-wide.
	reg := testimage.Registry(t, testimage.RegistryOptions{Username: "berth", Password: "pw-123"})
	img, err := testimage.BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, img, "private/busybox:latest")

	s, root := newStore(t)
	before := snapshot(t, s, root)
	t.Setenv("DOCKER_CONFIG", reg.DockerConfig(t, "berth", "wrong"))
	_, err = s.Pull(context.Background(), ref, PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "refused access") || strings.Contains(err.Error(), "\n") || !errors.Is(err, ErrDenied) {
		t.Fatalf("wrong password: %v", err)
	}
	if after := snapshot(t, s, root); after != before {
		t.Fatalf("store changed by a failed pull:\n%s", after)
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials at all
	if _, err = s.Pull(context.Background(), ref, PullOptions{}); err == nil || !strings.Contains(err.Error(), "refused access") {
		t.Fatalf("no credentials: %v", err)
	}
	t.Setenv("DOCKER_CONFIG", reg.DockerConfig(t, "berth", "pw-123"))
	rec, err := s.Pull(context.Background(), ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	local, _, err := s.Resolve(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkBusybox(t, local)
	if rec.Platform.Architecture == "" {
		t.Error("no platform recorded")
	}
}

// smallImage is a one-layer image for arch whose file names the arch.
func smallImage(t testing.TB, arch string, extra ...v1.Layer) v1.Image {
	t.Helper()
	l, err := testimage.Layer([]testimage.File{{Path: "arch.txt", Data: []byte(arch + "\n")}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := testimage.Image(arch, []string{"cat", "/arch.txt"}, append(extra, l)...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestPullMultiPlatformIndex(t *testing.T) {
	t.Parallel()
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	idx := multiArchIndex(t, smallImage(t, "amd64"), smallImage(t, "arm64"))
	ref := reg.PushIndex(t, idx, "multi:latest")
	s, _ := newStore(t)
	for _, arch := range []string{"arm64", "amd64"} {
		p, _ := ParsePlatform("linux/" + arch)
		rec, err := s.Pull(context.Background(), ref, PullOptions{Platform: &p})
		if err != nil {
			t.Fatal(err)
		}
		if rec.Platform.Architecture != arch {
			t.Fatalf("asked for %s, got %s", arch, rec.Platform.Architecture)
		}
		img, _, err := s.Resolve(context.Background(), ref, &p)
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := img.Layers()
		if got := files(t, layers[0])["arch.txt"]; got != arch+"\n" {
			t.Fatalf("arch.txt = %q", got)
		}
		idxDigest, _ := idx.Digest()
		if len(rec.RepoDigests) == 0 || !strings.HasSuffix(rec.RepoDigests[0], idxDigest.String()) {
			t.Errorf("repo digests %v, want the index digest %s", rec.RepoDigests, idxDigest)
		}
	}
	// The default is the host's architecture.
	rec, err := s.Pull(context.Background(), ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Platform.Architecture != DefaultPlatform().Architecture {
		t.Errorf("default pull got %s", rec.Platform.Architecture)
	}
	// Asking the local store for another platform is "not found" (the
	// engine then pulls); the index digest names the pulled image too.
	p, _ := ParsePlatform("linux/s390x")
	if _, _, err := s.Resolve(context.Background(), ref, &p); !errors.Is(err, ErrNotFound) {
		t.Errorf("resolve for another platform: %v", err)
	}
	idxDigest, _ := idx.Digest()
	if _, d, err := s.Resolve(context.Background(), reg.Addr+"/multi@"+idxDigest.String(), nil); err != nil || d != rec.Digest {
		t.Errorf("resolve by index digest: %v %s", err, d)
	}
	arm, _ := ParsePlatform("linux/arm64")
	if img, _, err := s.Resolve(context.Background(), reg.Addr+"/multi@"+idxDigest.String(), &arm); err != nil {
		t.Errorf("resolve by index digest for arm64: %v", err)
	} else if cf, _ := img.ConfigFile(); cf.Architecture != "arm64" {
		t.Errorf("resolve by index digest for arm64 gave %s", cf.Architecture)
	}
	_, err = s.Pull(context.Background(), ref, PullOptions{Platform: &p})
	if err == nil || !strings.Contains(err.Error(), "linux/amd64") || !strings.Contains(err.Error(), "linux/arm64") {
		t.Fatalf("missing platform: %v", err)
	}
}

func TestSharedLayerStoredOnce(t *testing.T) {
	t.Parallel()
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	shared, err := testimage.Layer([]testimage.File{{Path: "shared.bin", Data: make([]byte, 100<<10)}})
	if err != nil {
		t.Fatal(err)
	}
	a := reg.Push(t, smallImage(t, "amd64", shared), "a:1")
	b := reg.Push(t, mustImage(testimage.Image("amd64", []string{"true"}, shared)), "b:1")
	s, root := newStore(t)
	if _, err := s.Pull(context.Background(), a, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	var exists []string
	if _, err := s.Pull(context.Background(), b, PullOptions{Progress: func(e Event) {
		if e.Status == StatusExists {
			exists = append(exists, e.ID)
		}
	}}); err != nil {
		t.Fatal(err)
	}
	sd, _ := shared.Digest()
	if len(exists) != 1 || exists[0] != sd.Hex[:12] {
		t.Errorf("second pull reported existing layers %v, want the shared one", exists)
	}
	// a: manifest, config, shared, own layer; b: manifest, config (shared layer reused).
	ents, _ := os.ReadDir(filepath.Join(root.Content(), "blobs", "sha256"))
	if len(ents) != 6 {
		t.Errorf("%d blobs, want 6", len(ents))
	}
	// Removing a keeps the shared layer for b.
	if _, err := s.Remove(a, false); err != nil {
		t.Fatal(err)
	}
	if !s.blobs.has(sd) {
		t.Fatal("removing a deleted the layer b still uses")
	}
	img, _, err := s.Resolve(context.Background(), b, nil)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	if len(files(t, layers[0])["shared.bin"]) != 100<<10 {
		t.Error("shared layer content wrong")
	}
}

func mustImage(img v1.Image, err error) v1.Image {
	if err != nil {
		panic(err)
	}
	return img
}

// TestPullZstdLayer pulls an image whose layer is zstd-compressed
// (application/vnd.oci.image.layer.v1.tar+zstd) and reads it back.
func TestPullZstdLayer(t *testing.T) {
	t.Parallel()
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	raw := tarOf([2]string{"zstd.txt", "squeezed\n"})
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithCompression(ggcrcomp.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, mustImage(testimage.Image("amd64", nil, l)), "zstd:1")
	s, _ := newStore(t)
	rec, err := s.Pull(context.Background(), ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Layers[0].MediaType != types.OCILayerZStd {
		t.Fatalf("media type %s", rec.Layers[0].MediaType)
	}
	img, _, err := s.Resolve(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	if got := files(t, layers[0])["zstd.txt"]; got != "squeezed\n" {
		t.Fatalf("zstd.txt = %q", got)
	}
}
