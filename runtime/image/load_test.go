package image

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/berth-dev/berth/internal/testimage"
)

// pulledStore is a store holding busybox pulled from a fresh registry.
func pulledStore(t *testing.T) (*Store, string, *testimage.RegistryServer) {
	t.Helper()
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	img, err := testimage.BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, img, "busybox:latest")
	s, _ := newStore(t)
	if _, err := s.Pull(context.Background(), ref, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	return s, ref, reg
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zst(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := zstd.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestSaveLoadRoundTrip(t *testing.T) {
	t.Parallel()
	src, ref, _ := pulledStore(t)
	orig, digest, err := src.Resolve(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	origCfg, _ := orig.ConfigName()
	for _, format := range []string{FormatDocker, FormatOCI} {
		raw := saveBytes(t, src, format, ref)
		for comp, data := range map[string][]byte{"plain": raw, "gzip": gz(raw), "zstd": zst(raw)} {
			t.Run(format+"/"+comp, func(t *testing.T) {
				dst, _ := newStore(t)
				imgs, err := dst.Load(context.Background(), bytes.NewReader(data), LoadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if len(imgs) != 1 || len(imgs[0].Tags) != 1 || imgs[0].Tags[0] != familiar(mustTag(t, ref)) {
					t.Fatalf("loaded %+v", imgs)
				}
				img, d, err := dst.Resolve(context.Background(), ref, nil)
				if err != nil {
					t.Fatal(err)
				}
				checkBusybox(t, img)
				if cfg, _ := img.ConfigName(); cfg != origCfg {
					t.Errorf("config digest changed: %s -> %s", origCfg, cfg)
				}
				if format == FormatOCI && d != digest {
					t.Errorf("OCI round trip changed the manifest digest: %s -> %s", digest, d)
				}
			})
		}
	}
}

func mustTag(t testing.TB, s string) string {
	tag, err := ParseTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return canonical(tag)
}

func TestLoadSeveralImagesInOneArchive(t *testing.T) {
	t.Parallel()
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	s, _ := newStore(t)
	var refs []string
	for _, arch := range []string{"amd64", "arm64"} {
		r := reg.Push(t, smallImage(t, arch), "small-"+arch+":1")
		p, _ := ParsePlatform(arch)
		if _, err := s.Pull(context.Background(), r, PullOptions{Platform: &p}); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	if err := s.Tag(refs[0], "extra/name:two"); err != nil {
		t.Fatal(err)
	}
	refs = append(refs, "extra/name:two")
	for _, format := range []string{FormatDocker, FormatOCI} {
		raw := saveBytes(t, s, format, refs...)
		dst, _ := newStore(t)
		imgs, err := dst.Load(context.Background(), bytes.NewReader(raw), LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(imgs) != 2 {
			t.Fatalf("%s: loaded %d images, want 2", format, len(imgs))
		}
		for _, r := range refs {
			if _, _, err := dst.Resolve(context.Background(), r, nil); err != nil {
				t.Errorf("%s: %v", format, err)
			}
		}
	}
}

func TestLoadOCILayoutDirectory(t *testing.T) {
	t.Parallel()
	src, ref, _ := pulledStore(t)
	dir := t.TempDir()
	raw := saveBytes(t, src, FormatOCI, ref)
	cmd := exec.Command("tar", "-x", "-C", dir)
	cmd.Stdin = bytes.NewReader(raw)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	dst, root := newStore(t)
	if _, err := dst.LoadPath(context.Background(), dir, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	img, _, err := dst.Resolve(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkBusybox(t, img)
	// A symlink out of the layout directory is not followed.
	evil := t.TempDir()
	os.WriteFile(filepath.Join(evil, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(evil, "index.json"))
	before := snapshot(t, dst, root)
	if _, err := dst.LoadPath(context.Background(), evil, LoadOptions{}); err == nil {
		t.Fatal("loaded through a symlink leaving the layout directory")
	}
	if snapshot(t, dst, root) != before {
		t.Fatal("store changed")
	}
}

// requireTool fails (not skips) when a system tool the test needs is absent.
func requireTool(t testing.TB, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (packaging/setup-linux.sh)", tool, pkg)
	}
	return p
}

func TestLoadSkopeoArchives(t *testing.T) {
	t.Parallel()
	skopeo := requireTool(t, "skopeo", "skopeo")
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	img, err := testimage.BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, img, "busybox:skopeo")
	dir := t.TempDir()
	cases := map[string]string{
		"oci-archive":    "oci-archive:" + filepath.Join(dir, "oci.tar") + ":busybox:skopeo",
		"docker-archive": "docker-archive:" + filepath.Join(dir, "docker.tar") + ":busybox:skopeo",
		"oci-dir":        "oci:" + filepath.Join(dir, "layout") + ":busybox:skopeo",
	}
	for kind, dest := range cases {
		cmd := exec.Command(skopeo, "--insecure-policy", "copy", "--src-tls-verify=false", "docker://"+ref, dest)
		cmd.Env = append(os.Environ(), "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy to %s: %v\n%s", kind, err, out)
		}
	}
	for kind, file := range map[string]string{"oci-archive": "oci.tar", "docker-archive": "docker.tar", "oci-dir": "layout"} {
		t.Run(kind, func(t *testing.T) {
			s, _ := newStore(t)
			imgs, err := s.LoadPath(context.Background(), filepath.Join(dir, file), LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != 1 {
				t.Fatalf("loaded %d images", len(imgs))
			}
			img, _, err := s.Resolve(context.Background(), "busybox:skopeo", nil)
			if err != nil {
				t.Fatalf("%v (tags %v)", err, imgs[0].Tags)
			}
			checkBusybox(t, img)
		})
	}
	// What Berth saves, skopeo reads.
	s, _ := newStore(t)
	if _, err := s.LoadPath(context.Background(), filepath.Join(dir, "oci.tar"), LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{FormatDocker, FormatOCI} {
		p := filepath.Join(dir, "berth-"+format+".tar")
		os.WriteFile(p, saveBytes(t, s, format, "busybox:skopeo"), 0o644)
		transport := map[string]string{FormatDocker: "docker-archive:", FormatOCI: "oci-archive:"}[format]
		out, err := exec.Command(skopeo, "inspect", "--raw", transport+p).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "layers") {
			t.Errorf("skopeo cannot read Berth's %s archive: %v\n%s", format, err, out)
		}
	}
}

// TestLoadMultiPlatformArchive loads a multi-platform OCI archive made by
// skopeo (copy --all: index.json -> image index -> per-arch manifests).
func TestLoadMultiPlatformArchive(t *testing.T) {
	t.Parallel()
	skopeo := requireTool(t, "skopeo", "skopeo")
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	ref := reg.PushIndex(t, multiArchIndex(t, smallImage(t, "amd64"), smallImage(t, "arm64")), "multi:1")
	dir := t.TempDir()
	archive := filepath.Join(dir, "multi.tar")
	cmd := exec.Command(skopeo, "--insecure-policy", "copy", "--all", "--src-tls-verify=false", "docker://"+ref, "oci-archive:"+archive+":multi:1")
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo: %v\n%s", err, out)
	}
	for _, arch := range []string{"", "arm64", "amd64"} {
		s, root := newStore(t)
		opts := LoadOptions{}
		want := DefaultPlatform().Architecture
		if arch != "" {
			p, _ := ParsePlatform(arch)
			opts.Platform, want = &p, arch
		}
		imgs, err := s.LoadPath(context.Background(), archive, opts)
		if err != nil {
			t.Fatalf("%q: %v", arch, err)
		}
		if len(imgs) != 1 || imgs[0].Platform.Architecture != want || len(imgs[0].Tags) != 1 || imgs[0].Tags[0] != "multi:1" {
			t.Fatalf("%q: loaded %+v", arch, imgs)
		}
		p, _ := ParsePlatform("riscv64")
		before := snapshot(t, s, root)
		if _, err := s.LoadPath(context.Background(), archive, LoadOptions{Platform: &p}); err == nil || !strings.Contains(err.Error(), "linux/arm64") {
			t.Fatalf("load for a platform the archive lacks: %v", err)
		}
		if snapshot(t, s, root) != before {
			t.Fatal("store changed")
		}
	}
}
