package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berth-dev/berth/internal/testimage"
	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/state"
)

// Benchmarks need heavy setup (200 MB of layers, a registry, building
// crane): they run only under `make bench` (BERTH_BENCH=1).
func requireBench(b *testing.B) {
	if os.Getenv("BERTH_BENCH") != "1" {
		b.Skip("set BERTH_BENCH=1 (make bench) to run")
	}
}

// randomTar is an uncompressed tar holding one file of n random bytes.
func randomTar(seed uint64, n int) []byte {
	data := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(data)
	return tarOf([2]string{fmt.Sprintf("data-%d.bin", seed), string(data)})
}

// benchLayers are the layer tars of a ~200 MB, 5-layer image.
func benchLayers() [][]byte {
	sizes := []int{80 << 20, 60 << 20, 40 << 20, 15 << 20, 5 << 20}
	var out [][]byte
	for i, n := range sizes {
		out = append(out, randomTar(uint64(i+1), n))
	}
	return out
}

// buildCrane compiles go-containerregistry's crane from the module cache
// (in its own module, so this repository's go.sum needs nothing extra).
func buildCrane(b *testing.B) string {
	b.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/google/go-containerregistry").Output()
	if err != nil {
		b.Fatalf("locate go-containerregistry: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	bin := filepath.Join(b.TempDir(), "crane")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/crane")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build crane: %v\n%s", err, out)
	}
	return bin
}

// BenchmarkPull pulls a ~200 MB multi-layer image from a loopback
// registry with Berth and with `crane pull --format oci` (same registry,
// same image, cold destination each time) and reports berth/crane.
//
// The machine is shared, so the two run interleaved (alternating which
// goes first) for pullRounds rounds and the best time of each counts
// (berth/crane); berth/crane_median is the median of the rounds' ratios.
// Dirty pages are flushed before every timed run, so neither pays for the
// other's writeback, and each run's output is deleted after it (as crane's
// is): on this VM, writing into never-used memory costs far more CPU than
// reusing freed page cache, so letting Berth's stores pile up made every
// later Berth run 2-3x slower. berth_s is Pull's wall time (the image is
// usable when it returns); berth_durable_s adds the wait for its
// background fsyncs (Store.Sync), which crane never does.
func BenchmarkPull(b *testing.B) {
	requireBench(b)
	crane := buildCrane(b)
	reg := testimage.Registry(b, testimage.RegistryOptions{})
	var layers []v1.Layer
	var total int64
	for _, t := range benchLayers() {
		l, err := testimage.LayerFromTar(t)
		if err != nil {
			b.Fatal(err)
		}
		sz, _ := l.Size()
		total += sz
		layers = append(layers, l)
	}
	ref := reg.Push(b, mustImage(testimage.Image("amd64", nil, layers...)), "bench/pull:1")
	scratch := b.TempDir()
	flush := func() {
		if err := syncFS(scratch); err != nil {
			b.Fatal(err)
		}
	}
	runCrane := func() time.Duration {
		dst, err := os.MkdirTemp(scratch, "crane-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dst)
		flush()
		t0 := time.Now()
		if out, err := exec.Command(crane, "pull", "--insecure", "--format", "oci", ref, filepath.Join(dst, "layout")).CombinedOutput(); err != nil {
			b.Fatalf("crane pull: %v\n%s", err, out)
		}
		return time.Since(t0)
	}
	runBerth := func(syncFirst bool) (pull, durable time.Duration) {
		s, done := benchStore(b, scratch)
		defer done()
		s.syncBeforeCommit = syncFirst
		flush()
		t0 := time.Now()
		if _, err := s.Pull(context.Background(), ref, PullOptions{}); err != nil {
			b.Fatal(err)
		}
		pull = time.Since(t0)
		s.Sync()
		return pull, time.Since(t0)
	}
	best := func(cur *time.Duration, d time.Duration) {
		if *cur == 0 || d < *cur {
			*cur = d
		}
	}
	b.ResetTimer()
	var berthBest, durableBest, syncFirstBest, craneBest time.Duration
	var ratios []float64
	for i := 0; i < b.N; i++ {
		for round := 0; round < pullRounds(); round++ {
			var c, p, d, sf time.Duration
			if round%2 == 0 {
				c = runCrane()
				p, d = runBerth(false)
				_, sf = runBerth(true)
			} else {
				_, sf = runBerth(true)
				p, d = runBerth(false)
				c = runCrane()
			}
			b.Logf("round %d: crane %.3fs berth %.3fs (durable %.3fs, sync-before-commit %.3fs)", round, c.Seconds(), p.Seconds(), d.Seconds(), sf.Seconds())
			ratios = append(ratios, p.Seconds()/c.Seconds())
			best(&craneBest, c)
			best(&berthBest, p)
			best(&durableBest, d)
			best(&syncFirstBest, sf)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(total)/1e6, "MB")
	b.ReportMetric(berthBest.Seconds(), "berth_s")
	b.ReportMetric(durableBest.Seconds(), "berth_durable_s")
	b.ReportMetric(syncFirstBest.Seconds(), "berth_syncfirst_s")
	b.ReportMetric(craneBest.Seconds(), "crane_s")
	b.ReportMetric(berthBest.Seconds()/craneBest.Seconds(), "berth/crane")
	sort.Float64s(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "berth/crane_median")
}

// benchStore opens a store in a fresh data root under dir; done syncs,
// closes and deletes it (see BenchmarkPull on why runs must not pile up).
func benchStore(b *testing.B, dir string) (s *Store, done func()) {
	dir, err := os.MkdirTemp(dir, "berth-")
	if err != nil {
		b.Fatal(err)
	}
	root, err := dataroot.Open(filepath.Join(dir, "root"))
	if err != nil {
		b.Fatal(err)
	}
	db, err := state.Open(root.StateDB())
	if err != nil {
		b.Fatal(err)
	}
	if s, err = New(db, root); err != nil {
		b.Fatal(err)
	}
	return s, func() {
		s.Sync()
		db.Close()
		os.RemoveAll(dir)
	}
}

// pullRounds is how many interleaved rounds BenchmarkPull runs
// (BERTH_BENCH_ROUNDS, default 7).
func pullRounds() int {
	if n, err := strconv.Atoi(os.Getenv("BERTH_BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 7
}

// BenchmarkLoad loads a ~200 MB docker-archive shaped like `docker save`
// output (uncompressed layer.tar files) and reports MB/s.
func BenchmarkLoad(b *testing.B) {
	requireBench(b)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var diffIDs []v1.Hash
	var layerPaths []string
	for i, l := range benchLayers() {
		d := sha256Hash(l)
		diffIDs = append(diffIDs, d)
		p := fmt.Sprintf("%s/layer.tar", d.Hex)
		layerPaths = append(layerPaths, p)
		tw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: int64(len(l)), Typeflag: tar.TypeReg})
		tw.Write(l)
		_ = i
	}
	cfg, _ := json.Marshal(v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers", DiffIDs: diffIDs}})
	cfgName := sha256Hash(cfg).Hex + ".json"
	man, _ := json.Marshal([]dockerEntry{{Config: cfgName, RepoTags: []string{"bench/load:1"}, Layers: layerPaths}})
	for _, f := range [][2][]byte{{[]byte(cfgName), cfg}, {[]byte("manifest.json"), man}} {
		tw.WriteHeader(&tar.Header{Name: string(f[0]), Mode: 0o644, Size: int64(len(f[1])), Typeflag: tar.TypeReg})
		tw.Write(f[1])
	}
	tw.Close()
	archive := filepath.Join(b.TempDir(), "bench.tar")
	if err := os.WriteFile(archive, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	size := buf.Len()
	buf = bytes.Buffer{}
	scratch := b.TempDir()
	b.ResetTimer()
	var best time.Duration
	for i := 0; i < b.N; i++ {
		for round := 0; round < 3; round++ {
			s, done := benchStore(b, scratch)
			if err := syncFS(scratch); err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			if _, err := s.LoadPath(context.Background(), archive, LoadOptions{}); err != nil {
				b.Fatal(err)
			}
			if d := time.Since(t0); best == 0 || d < best {
				best = d
			}
			done()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(size)/1e6, "MB")
	b.ReportMetric(float64(size)/1e6/best.Seconds(), "MB/s")
}
