package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"github.com/berth-dev/berth/internal/testimage"
)

// rewriteTar rebuilds a tar, letting edit change or drop (return nil) entries.
func rewriteTar(t testing.TB, in []byte, edit func(h *tar.Header, body []byte) (*tar.Header, []byte)) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(in))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		h, body = edit(h, body)
		if h == nil {
			continue
		}
		h.Size = int64(len(body))
		tw.WriteHeader(h)
		tw.Write(body)
	}
	tw.Close()
	return out.Bytes()
}

func editManifestJSON(t testing.TB, archive []byte, edit func(m []map[string]any)) []byte {
	return rewriteTar(t, archive, func(h *tar.Header, b []byte) (*tar.Header, []byte) {
		if h.Name != "manifest.json" {
			return h, b
		}
		var m []map[string]any
		json.Unmarshal(b, &m)
		edit(m)
		b, _ = json.Marshal(m)
		return h, b
	})
}

func TestLoadBadInput(t *testing.T) {
	t.Parallel()
	src, ref, _ := pulledStore(t)
	docker := saveBytes(t, src, FormatDocker, ref)
	oci := saveBytes(t, src, FormatOCI, ref)
	rec, _ := src.Inspect(ref)
	upper := rec.Layers[1].Digest.Hex

	var bomb bytes.Buffer
	{
		zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestSpeed)
		tw := tar.NewWriter(zw)
		tw.WriteHeader(&tar.Header{Name: "zeros", Mode: 0o644, Size: 2 << 30, Typeflag: tar.TypeReg})
		zero := make([]byte, 1<<20)
		for i := 0; i < 2048; i++ {
			tw.Write(zero)
		}
		tw.Close()
		zw.Close()
	}
	random := make([]byte, 4096)
	rand.New(rand.NewSource(1)).Read(random)
	corruptGz := gz(docker)
	corruptGz[len(corruptGz)/2] ^= 0xff

	cases := []struct {
		name, want string
		data       []byte
	}{
		{"truncated", "truncated", docker[:len(docker)/2]},
		{"truncated gzip", "truncated", gz(docker)[:len(gz(docker))/2]},
		{"corrupt gzip", "corrupt", corruptGz},
		{"random bytes", "corrupt archive", random},
		{"empty", "empty archive", nil},
		{"rootfs tar", "berth import", tarOf([2]string{"bin/sh", "x"})},
		{"missing layer file", "lacks", editManifestJSON(t, docker, func(m []map[string]any) {
			m[0]["Layers"].([]any)[0] = "nope/layer.tar"
		})},
		{"missing config", "lacks", editManifestJSON(t, docker, func(m []map[string]any) { m[0]["Config"] = "gone.json" })},
		{"dotdot in manifest", `".."`, editManifestJSON(t, docker, func(m []map[string]any) {
			m[0]["Layers"].([]any)[0] = "../../etc/passwd"
		})},
		{"dotdot entry", `".."`, rewriteTar(t, docker, func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			if strings.HasSuffix(h.Name, ".json") && h.Name != "manifest.json" {
				h.Name = "../" + h.Name
			}
			return h, b
		})},
		{"symlink escaping", "outside the archive", rewriteTar(t, docker, func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			if strings.HasPrefix(h.Name, upper) {
				return &tar.Header{Name: h.Name, Typeflag: tar.TypeSymlink, Linkname: "../../../etc/shadow"}, nil
			}
			return h, b
		})},
		{"docker layer digest mismatch", "digest mismatch", rewriteTar(t, docker, func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			if strings.HasPrefix(h.Name, upper) {
				b = gz(tarOf([2]string{"hello.txt", "not what the config promises"}))
			}
			return h, b
		})},
		{"docker layer corrupt", "corrupt compressed data", rewriteTar(t, docker, func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			if strings.HasPrefix(h.Name, upper) {
				b = append([]byte(nil), b...)
				b[len(b)/2] ^= 1
			}
			return h, b
		})},
		{"oci blob digest mismatch", "digest mismatch", rewriteTar(t, oci, func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			if h.Name == "blobs/sha256/"+upper {
				b = append([]byte(nil), b...)
				b[len(b)/2] ^= 1
			}
			return h, b
		})},
		{"oci missing blob", "lacks", rewriteTar(t, oci, func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			if h.Name == "blobs/sha256/"+upper {
				return nil, nil
			}
			return h, b
		})},
		{"unsupported media type", "unsupported", ociWithLayerType(t, "application/vnd.example.not-a-layer")},
		{"decompression bomb", "decompression bomb", bomb.Bytes()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, root := newStore(t)
			// A store that already holds something must keep it unchanged.
			if _, err := s.Load(context.Background(), bytes.NewReader(oci), LoadOptions{}); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, s, root)
			_, err := s.Load(context.Background(), bytes.NewReader(c.data), LoadOptions{})
			if err == nil {
				t.Fatal("loaded bad input")
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line containing %q", err, c.want)
			}
			if after := snapshot(t, s, root); after != before {
				t.Fatalf("store changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// ociWithLayerType is an OCI archive whose only layer claims media type mt.
func ociWithLayerType(t testing.TB, mt string) []byte {
	l, err := tarball.LayerFromReader(bytes.NewReader(tarOf([2]string{"a", "b"})), tarball.WithMediaType("application/vnd.oci.image.layer.v1.tar+gzip"))
	if err != nil {
		t.Fatal(err)
	}
	img := mustImage(testimage.Image("amd64", nil, l))
	// Build the archive by hand so the bad media type reaches the loader.
	m, _ := img.Manifest()
	m.Layers[0].MediaType = types.MediaType(mt)
	mraw, _ := json.Marshal(m)
	cfg, _ := img.RawConfigFile()
	rc, _ := l.Compressed()
	lb, _ := io.ReadAll(rc)
	ld, _ := l.Digest()
	md := sha256Hash(mraw)
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []map[string]any{{
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.String(), "size": len(mraw),
	}}})
	return tarOf(
		[2]string{"oci-layout", `{"imageLayoutVersion":"1.0.0"}`},
		[2]string{"index.json", string(idx)},
		[2]string{"blobs/sha256/" + md.Hex, string(mraw)},
		[2]string{"blobs/sha256/" + m.Config.Digest.Hex, string(cfg)},
		[2]string{"blobs/sha256/" + ld.Hex, string(lb)},
	)
}

func TestPullBadInput(t *testing.T) {
	t.Parallel()
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	s, root := newStore(t)
	weird := ociWithLayerTypeImage(t)
	weirdRef := reg.Push(t, weird, "weird:1")
	cases := []struct {
		ref, want string
		kind      error
	}{
		{"UPPER/Case:x", "invalid image reference", nil},
		{"busybox:bad tag", "invalid image reference", nil},
		{"127.0.0.1:1/busybox:latest", "cannot reach registry 127.0.0.1:1", ErrUnreachable},
		{reg.Addr + "/nosuch:latest", "not found on registry", ErrNotOnRegistry},
		{weirdRef, "unsupported layer media type", nil},
	}
	before := snapshot(t, s, root)
	for _, c := range cases {
		_, err := s.Pull(context.Background(), c.ref, PullOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("pull %s: %v; want one line containing %q", c.ref, err, c.want)
		}
		if c.kind != nil && !errors.Is(err, c.kind) {
			t.Errorf("pull %s: %v is not %v", c.ref, err, c.kind)
		}
	}
	if after := snapshot(t, s, root); after != before {
		t.Fatalf("store changed:\n%s", after)
	}
	// Plain HTTP is only for loopback registries: a private-range address
	// gets HTTPS (recorded here, nothing is sent).
	for host, want := range map[string]string{"10.0.0.1:5000": "https", "192.168.1.2": "https", "127.0.0.1:5000": "http", "localhost:1": "http", "[::1]:5000": "http"} {
		if got := schemeSent(host); got != want {
			t.Errorf("http://%s went out as %s, want %s", host, got, want)
		}
	}
}

// ociWithLayerTypeImage is an image whose layer has a media type Berth refuses.
func ociWithLayerTypeImage(t testing.TB) v1.Image {
	l, err := tarball.LayerFromReader(bytes.NewReader(tarOf([2]string{"a", "b"})), tarball.WithMediaType("application/vnd.example.not-a-layer"))
	if err != nil {
		t.Fatal(err)
	}
	return mustImage(testimage.Image("amd64", nil, l))
}

// schemeSent passes a plain-HTTP request through the store's transport
// to a recorder (no network) and returns the scheme that went out.
func schemeSent(host string) string {
	rec := &recordingTransport{}
	s := &Store{Transport: rec}
	req, _ := http.NewRequest("GET", "http://"+host+"/v2/", nil)
	s.transport().RoundTrip(req)
	return rec.scheme
}

type recordingTransport struct{ scheme string }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.scheme = req.URL.Scheme
	return nil, errors.New("recorded")
}

// TestInterruptedPull cuts a pull off in the middle of a big layer: no
// partial blob may be visible, no temp file may stay, and the next pull
// completes, reusing the layer that had finished.
func TestInterruptedPull(t *testing.T) {
	t.Parallel()
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	big := make([]byte, 24<<20)
	rand.New(rand.NewSource(7)).Read(big)
	bigL, _ := testimage.Layer([]testimage.File{{Path: "big", Data: big}})
	cut, _ := testimage.Layer([]testimage.File{{Path: "cut", Data: big[:16<<20]}})
	ref := reg.Push(t, mustImage(testimage.Image("amd64", nil, cut, bigL)), "big:1")
	bigDigest, _ := bigL.Digest()
	cutDigest, _ := cut.Digest()

	s, root := newStore(t)
	s.Jobs = 1 // largest first: the big layer completes, then the cut one starts
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := s.Pull(ctx, ref, PullOptions{Progress: func(e Event) {
		if e.ID == cutDigest.Hex[:12] && e.Status == StatusDownloading && e.Current < e.Total {
			cancel()
		}
	}})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("interrupted pull: %v", err)
	}
	if s.blobs.has(cutDigest) {
		t.Fatal("a partial blob is visible")
	}
	if left, _ := filepath.Glob(filepath.Join(root.Tmp(), "*")); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
	if imgs, _ := s.List(); len(imgs) != 0 {
		t.Fatalf("an image was recorded: %v", imgs)
	}
	var existed []string
	if _, err := s.Pull(context.Background(), ref, PullOptions{Progress: func(e Event) {
		if e.Status == StatusExists {
			existed = append(existed, e.ID)
		}
	}}); err != nil {
		t.Fatal(err)
	}
	if len(existed) != 1 || existed[0] != bigDigest.Hex[:12] {
		t.Errorf("resumed pull reused %v, want the finished big layer", existed)
	}
	// The interrupted pull's journal entries are settled too.
	s.Sync()
	if j := journal(t, s); len(j) != 0 {
		t.Errorf("journal after both pulls: %v", j)
	}
	// A temp file left by a crash is removed when the store is next opened.
	os.WriteFile(filepath.Join(root.Tmp(), tmpPrefix+"blob-crashed"), []byte("partial"), 0o600)
	if _, err := New(s.db, root); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(root.Tmp(), "*")); len(left) != 0 {
		t.Fatalf("stale temp files survive reopening: %v", left)
	}
}

// TestPullCorruptRegistryBlob damages a layer inside the registry's own
// storage: the registry then serves bytes that do not match the manifest,
// and the pull must fail with nothing visible in the store.
func TestPullCorruptRegistryBlob(t *testing.T) {
	t.Parallel()
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	s, root := newStore(t)
	for _, damage := range []string{"flip", "truncate"} {
		l, _ := testimage.Layer([]testimage.File{{Path: damage, Data: bytes.Repeat([]byte(damage), 10000)}})
		ref := reg.Push(t, mustImage(testimage.Image("amd64", nil, l)), "damaged:"+damage)
		d, _ := l.Digest()
		data := filepath.Join(reg.Dir, "docker", "registry", "v2", "blobs", "sha256", d.Hex[:2], d.Hex, "data")
		b, err := os.ReadFile(data)
		if err != nil {
			t.Fatal(err)
		}
		want := "digest mismatch"
		if damage == "flip" {
			b[len(b)/2] ^= 0xff
		} else {
			b, want = b[:len(b)-10], "size mismatch"
		}
		if err := os.WriteFile(data, b, 0o644); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, s, root)
		_, err = s.Pull(context.Background(), ref, PullOptions{})
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%s: %v, want one line containing %q", damage, err, want)
		}
		if after := snapshot(t, s, root); after != before {
			t.Fatalf("%s: store changed:\n%s", damage, after)
		}
	}
}
