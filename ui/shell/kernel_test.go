package shell

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/berth-dev/berth/runtime/kernel"
)

func kernelSourceForTest() kernel.Source {
	return kernel.Source{Release: "9.9.9", Member: "opt/kata/vmlinux-test", Dir: "kata-test", Version: "test", Arch: "arm64"}
}

// The first-launch download path against a real HTTP server on loopback
// serving an archive laid out like the Kata release.
func TestKernelFetchRun(t *testing.T) {
	img := make([]byte, 4096)
	copy(img[0x38:], "ARM\x64")
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "opt/kata/vmlinux-test", Mode: 0o644, Size: int64(len(img))})
	tw.Write(img)
	tw.Close()
	var zb bytes.Buffer
	zw, _ := zstd.NewWriter(&zb)
	zw.Write(tb.Bytes())
	zw.Close()
	sum := sha256.Sum256(zb.Bytes())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(zb.Bytes()) }))
	defer srv.Close()

	src := kernelSourceForTest()
	src.URL, src.SHA256 = srv.URL+"/kata.tar.zst", hex.EncodeToString(sum[:])
	k := KernelFetch{KernelsDir: t.TempDir(), Source: src}
	var last int64
	if err := k.Run(context.Background(), func(done, total int64) { last = done }); err != nil {
		t.Fatal(err)
	}
	if k.Needed() || last != int64(zb.Len()) {
		t.Fatalf("after download: needed=%v progress=%d/%d", k.Needed(), last, zb.Len())
	}
	// A wrong hash installs nothing.
	src.SHA256 = hex.EncodeToString(make([]byte, 32))
	bad := KernelFetch{KernelsDir: t.TempDir(), Source: src}
	if err := bad.Run(context.Background(), nil); err == nil || !bad.Needed() {
		t.Fatalf("hash mismatch: err=%v needed=%v", err, bad.Needed())
	}
}
