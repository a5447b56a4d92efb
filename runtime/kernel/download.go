package kernel

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Source is a kernel inside a release archive (tar + zstd) pinned by hash.
type Source struct {
	Release string // shown to users
	URL     string
	SHA256  string // of the archive as downloaded
	Member  string // the kernel's path inside the archive
	Dir     string // directory name under the kernels dir
	Version string
	Arch    string // the kernel's architecture, checked after extraction
}

// Kata is the default macOS kernel: the one Apple's `container` installs
// (uncompressed arm64 Image, virtio built in, no modules).
var Kata = Source{
	Release: "3.28.0",
	URL:     "https://github.com/kata-containers/kata-containers/releases/download/3.28.0/kata-static-3.28.0-arm64.tar.zst",
	SHA256:  "f63d54507d1f18635d94475077e4c2330de4d8e05cedf25f7c38f063b0e66a91",
	Member:  "opt/kata/share/kata-containers/vmlinux-6.18.15-186",
	Dir:     "kata-3.28.0-arm64",
	Version: "6.18.15-186",
	Arch:    "arm64",
}

// Installed returns src's kernel when it is already in kernelsDir.
func Installed(kernelsDir string, src Source) (Kernel, bool) {
	img := filepath.Join(kernelsDir, src.Dir, path.Base(src.Member))
	if !isFile(img) {
		return Kernel{}, false
	}
	return Kernel{Image: img, Version: src.Version}, true
}

// Progress is told how many archive bytes have arrived out of total
// (-1 when the server does not say).
type Progress func(done, total int64)

// Download fetches src's archive once, verifies its sha256 while streaming
// it, and extracts just the kernel member into kernelsDir/src.Dir. Nothing
// is published until the whole archive has arrived and matched the hash:
// the kernel is written to a temp directory and renamed into place. client
// nil means http.DefaultClient.
func Download(ctx context.Context, kernelsDir string, src Source, client *http.Client, progress Progress) (Kernel, error) {
	if k, ok := Installed(kernelsDir, src); ok {
		return k, nil
	}
	if client == nil {
		client = http.DefaultClient
	}
	if err := os.MkdirAll(kernelsDir, 0o755); err != nil {
		return Kernel{}, err
	}
	removeStaleDownloads(kernelsDir)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return Kernel{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return Kernel{}, fmt.Errorf("download kernel %s: %w", src.Release, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Kernel{}, fmt.Errorf("download kernel %s: %s from %s", src.Release, resp.Status, src.URL)
	}

	tmp, err := os.MkdirTemp(kernelsDir, ".download-")
	if err != nil {
		return Kernel{}, err
	}
	defer os.RemoveAll(tmp) // after a successful rename there is nothing left here

	hash := sha256.New()
	body := &counter{r: io.TeeReader(resp.Body, hash), total: resp.ContentLength, progress: progress}
	out := filepath.Join(tmp, path.Base(src.Member))
	found, err := extractMember(body, src.Member, out)
	if err == nil {
		// Hash the whole archive, not just what the decoder needed.
		_, err = io.Copy(io.Discard, body)
	}
	if err != nil {
		return Kernel{}, fmt.Errorf("download kernel %s: %w (the download was incomplete or corrupt; try again)", src.Release, err)
	}
	if resp.ContentLength >= 0 && body.done != resp.ContentLength {
		return Kernel{}, fmt.Errorf("download kernel %s: got %d of %d bytes (try again)", src.Release, body.done, resp.ContentLength)
	}
	if sum := hex.EncodeToString(hash.Sum(nil)); sum != src.SHA256 {
		return Kernel{}, fmt.Errorf("download kernel %s: sha256 %s, want %s: refusing the archive from %s", src.Release, sum, src.SHA256, src.URL)
	}
	if !found {
		return Kernel{}, fmt.Errorf("download kernel %s: the archive has no %s", src.Release, src.Member)
	}
	// The hash vouches for the archive; this catches a wrong Member pin.
	if err := Check(out, src.Arch, "vz"); err != nil {
		return Kernel{}, err
	}
	final := filepath.Join(kernelsDir, src.Dir)
	if err := os.Rename(tmp, final); err != nil {
		if k, ok := Installed(kernelsDir, src); ok { // someone else finished first
			return k, nil
		}
		return Kernel{}, err
	}
	os.Chmod(final, 0o755)
	k, _ := Installed(kernelsDir, src)
	return k, nil
}

// removeStaleDownloads deletes temp dirs of downloads that died with their
// process (an hour is far longer than any download in progress).
func removeStaleDownloads(kernelsDir string) {
	old, _ := filepath.Glob(filepath.Join(kernelsDir, ".download-*"))
	for _, d := range old {
		if st, err := os.Stat(d); err == nil && time.Since(st.ModTime()) > time.Hour {
			os.RemoveAll(d)
		}
	}
}

// extractMember streams a zstd-compressed tar and copies member to out.
// Only that one member is written, to a name we chose: nothing in the
// archive decides where bytes land.
func extractMember(r io.Reader, member, out string) (bool, error) {
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return false, err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	found := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, err
		}
		if found || path.Clean(h.Name) != path.Clean(member) || h.Typeflag != tar.TypeReg {
			continue
		}
		f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return false, err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return false, err
		}
		found = true
	}
	// Reading to the end of the zstd stream catches truncation inside it.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return false, err
	}
	return found, nil
}

type counter struct {
	r        io.Reader
	done     int64
	total    int64
	progress Progress
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.done += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(c.done, c.total)
	}
	return n, err
}
