package kernel

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// kataLike builds an archive with the Kata release's layout: a few other
// members around the kernel, one trying to escape the extraction dir.
func kataLike(t *testing.T, kernel []byte) []byte {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	add := func(name string, typ byte, body []byte, link string) {
		h := &tar.Header{Name: name, Typeflag: typ, Mode: 0o644, Size: int64(len(body)), Linkname: link}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write(body)
		}
	}
	add("./opt/kata/", tar.TypeDir, nil, "")
	add("./opt/kata/bin/kata-runtime", tar.TypeReg, bytes.Repeat([]byte("runtime"), 50000), "")
	add("../../escape", tar.TypeReg, []byte("must never be written"), "")
	add("./opt/kata/share/kata-containers/vmlinux.container", tar.TypeSymlink, nil, "vmlinux-6.18.15-186")
	add("./opt/kata/share/kata-containers/vmlinux-6.18.15-186", tar.TypeReg, kernel, "")
	add("./opt/kata/share/kata-containers/kata-containers.img", tar.TypeReg, bytes.Repeat([]byte{1, 2, 3}, 100000), "")
	tw.Close()
	var zb bytes.Buffer
	zw, _ := zstd.NewWriter(&zb)
	zw.Write(tb.Bytes())
	zw.Close()
	return zb.Bytes()
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

type server struct {
	*httptest.Server
	hits atomic.Int32
}

// serve serves body at /kata.tar.zst; cut > 0 sends only that many bytes
// while announcing the full length (a dropped connection).
func serve(t *testing.T, body []byte, cut int) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if r.URL.Path != "/kata.tar.zst" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if cut > 0 {
			w.Write(body[:cut])
			return
		}
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func source(url, sha string) Source {
	src := Kata
	src.URL = url + "/kata.tar.zst"
	src.SHA256 = sha
	return src
}

// assertClean checks that a failed download published nothing and left no
// temp files, and that no archive member escaped.
func assertClean(t *testing.T, base, kernels string) {
	t.Helper()
	entries, _ := os.ReadDir(kernels)
	if len(entries) != 0 {
		t.Fatalf("kernels dir not empty after a failed download: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(base, "escape")); err == nil {
		t.Fatal("an archive member escaped")
	}
}

func TestDownloadVerifiesAndExtracts(t *testing.T) {
	kernel := fakeArm64("6.18.15-186")
	archive := kataLike(t, kernel)
	srv := serve(t, archive, 0)
	base := t.TempDir()
	kernels := filepath.Join(base, "a", "kernels")
	// A crashed download's temp dir is cleaned up; a fresh one (another
	// download in progress) is not.
	stale, fresh := filepath.Join(kernels, ".download-1"), filepath.Join(kernels, ".download-2")
	os.MkdirAll(stale, 0o755)
	os.MkdirAll(fresh, 0o755)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	var last, total int64
	calls := 0
	k, err := Download(context.Background(), kernels, source(srv.URL, sum(archive)), nil, func(d, tot int64) { last, total = d, tot; calls++ })
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(kernels, Kata.Dir, "vmlinux-6.18.15-186")
	if k.Image != want || k.Version != "6.18.15-186" || k.ModulesDir != "" {
		t.Fatalf("%+v", k)
	}
	got, _ := os.ReadFile(k.Image)
	if !bytes.Equal(got, kernel) {
		t.Fatal("extracted kernel differs")
	}
	if last != int64(len(archive)) || total != int64(len(archive)) || calls < 2 {
		t.Fatalf("progress: last %d/%d after %d calls, archive %d", last, total, calls, len(archive))
	}
	entries, _ := os.ReadDir(kernels)
	if len(entries) != 2 || entries[0].Name() != ".download-2" || entries[1].Name() != Kata.Dir {
		t.Fatalf("kernels dir holds %v; want the fresh temp dir and %s", entries, Kata.Dir)
	}
	assertClean(t, base, t.TempDir())
	// Once there, it is not fetched again; Resolve's darwin default finds it.
	if _, err := Download(context.Background(), kernels, source(srv.URL, sum(archive)), nil, nil); err != nil || srv.hits.Load() != 1 {
		t.Fatalf("second download: %v, %d requests", err, srv.hits.Load())
	}
	if k2, ok := Installed(kernels, Kata); !ok || k2 != k {
		t.Fatalf("Installed: %+v %v", k2, ok)
	}
}

func TestDownloadRejectsBadArchives(t *testing.T) {
	kernel := fakeArm64("6.18.15-186")
	archive := kataLike(t, kernel)
	corrupt := append([]byte(nil), archive...)
	corrupt[len(corrupt)/2] ^= 0xff
	noMember := kataLike(t, nil)
	for _, tc := range []struct {
		name string
		body []byte
		cut  int
		sha  string
		path string
		want string
	}{
		{"wrong hash", archive, 0, strings.Repeat("0", 64), "", "sha256 " + sum(archive) + ", want 0000"},
		{"corrupt", corrupt, 0, sum(archive), "", "incomplete or corrupt"},
		{"truncated", archive, len(archive) / 2, sum(archive), "", "try again"},
		{"not found", archive, 0, sum(archive), "/missing", "404 Not Found"},
		{"kernel not an Image", noMember, 0, sum(noMember), "", "is not an arm64 kernel image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, tc.body, tc.cut)
			base := t.TempDir()
			kernels := filepath.Join(base, "kernels")
			src := source(srv.URL, tc.sha)
			if tc.path != "" {
				src.URL = srv.URL + tc.path
			}
			_, err := Download(context.Background(), kernels, src, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			assertClean(t, base, kernels)
		})
	}
}

func TestDownloadMissingMember(t *testing.T) {
	archive := kataLike(t, fakeArm64("x"))
	srv := serve(t, archive, 0)
	src := source(srv.URL, sum(archive))
	src.Member = "opt/kata/share/kata-containers/vmlinux-9.9"
	kernels := filepath.Join(t.TempDir(), "kernels")
	if _, err := Download(context.Background(), kernels, src, nil, nil); err == nil || !strings.Contains(err.Error(), "the archive has no opt/kata/share/kata-containers/vmlinux-9.9") {
		t.Fatalf("got %v", err)
	}
}

// The macOS default resolves to the downloaded Kata kernel, and says what
// to do before it is there.
func TestDarwinDefault(t *testing.T) {
	root := t.TempDir()
	if _, err := defaultDarwin(root, "arm64"); err != ErrNotDownloaded {
		t.Fatalf("before download: %v", err)
	}
	archive := kataLike(t, fakeArm64("6.18.15-186"))
	srv := serve(t, archive, 0)
	if _, err := Download(context.Background(), filepath.Join(root, "kernels"), source(srv.URL, sum(archive)), nil, nil); err != nil {
		t.Fatal(err)
	}
	k, err := defaultDarwin(root, "arm64")
	if err != nil || k.Version != "6.18.15-186" {
		t.Fatalf("%+v %v", k, err)
	}
	if _, err := defaultDarwin(root, "amd64"); err == nil || !strings.Contains(err.Error(), "Rosetta") {
		t.Fatalf("amd64 on a Mac: %v", err)
	}
}
