//go:build linux

package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/berth-dev/berth/internal/testimage"
	"github.com/berth-dev/berth/runtime/ext4"
)

// Benchmark child: BERTH_ROOTFS_CHILD=<layer files, comma separated>,out
// builds an image from compressed layer files so the parent reads peak RSS.
func TestMain(m *testing.M) {
	if spec := os.Getenv("BERTH_ROOTFS_CHILD"); spec != "" {
		parts := strings.Split(spec, ",")
		if err := buildFromFiles(parts[:len(parts)-1], parts[len(parts)-1]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func buildFromFiles(layers []string, out string) error {
	var ls []v1.Layer
	for _, p := range layers {
		ls = append(ls, fileLayer(p))
	}
	img, err := testimage.Image("amd64", nil, ls...)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := Build(context.Background(), f, img, ext4.Options{}); err != nil {
		return err
	}
	return f.Sync()
}

// fileLayer is a layer whose compressed bytes are a file (read lazily).
type fileLayer string

func (p fileLayer) Compressed() (io.ReadCloser, error)   { return os.Open(string(p)) }
func (p fileLayer) Uncompressed() (io.ReadCloser, error) { return nil, fmt.Errorf("unused") }
func (p fileLayer) Digest() (v1.Hash, error) {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", len(p))}, nil
}
func (p fileLayer) DiffID() (v1.Hash, error) { return p.Digest() }
func (p fileLayer) Size() (int64, error) {
	st, err := os.Stat(string(p))
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
func (p fileLayer) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }

var _ = static.NewLayer

// BenchmarkGoRootLayers: GOROOT as a gzip layer and as a zstd layer → ext4
// (decompression runs in parallel with the writer), against `tar -xzf`/
// `zstd -d | tar -x` of the same layer followed by `mkfs.ext4 -d`.
func BenchmarkGoRootLayers(b *testing.B) {
	if os.Getenv("BERTH_BENCH") != "1" {
		b.Skip("set BERTH_BENCH=1 (make bench)")
	}
	dir := b.TempDir()
	raw := goRootTar(b, dir)
	gz := filepath.Join(dir, "layer.tar.gz")
	zs := filepath.Join(dir, "layer.tar.zst")
	compressFile(b, raw, gz, func(w io.Writer) io.WriteCloser { z, _ := gzip.NewWriterLevel(w, gzip.DefaultCompression); return z })
	compressFile(b, raw, zs, func(w io.Writer) io.WriteCloser { z, _ := zstd.NewWriter(w); return z })
	for _, c := range []struct{ name, layer string }{{"gzip", gz}, {"zstd", zs}} {
		out := filepath.Join(dir, "out.ext4")
		os.Remove(out)
		child := exec.Command(os.Args[0], "-test.run=^$")
		child.Env = append(os.Environ(), "BERTH_ROOTFS_CHILD="+c.layer+","+out)
		t0 := time.Now()
		if o, err := child.CombinedOutput(); err != nil {
			b.Fatalf("child: %v: %s", err, o)
		}
		d := time.Since(t0)
		rss := child.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024
		if o, err := exec.Command("e2fsck", "-fn", out).CombinedOutput(); err != nil {
			b.Fatalf("e2fsck: %v\n%s", err, o)
		}
		b.ReportMetric(d.Seconds(), "s-"+c.name)
		b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB-"+c.name)
	}
}

func compressFile(b *testing.B, in, out string, mk func(io.Writer) io.WriteCloser) {
	r, _ := os.Open(in)
	defer r.Close()
	f, _ := os.Create(out)
	defer f.Close()
	z := mk(f)
	if _, err := io.Copy(z, r); err != nil {
		b.Fatal(err)
	}
	z.Close()
}

func goRootTar(b *testing.B, dir string) string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		b.Fatal(err)
	}
	root := strings.TrimSpace(string(out))
	p := filepath.Join(dir, "goroot.tar")
	f, _ := os.Create(p)
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, _ := d.Info()
		link, _ := os.Readlink(path)
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		h.Name = rel
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, bytes.NewReader(data))
			return err
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	tw.Close()
	return p
}
