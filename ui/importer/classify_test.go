package importer

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/berth-dev/berth/ui/importer/importtest"
)

// TestDroppedFiles makes the fixtures once (a registry, skopeo runs) and
// runs every test that needs them as a subtest.
func TestDroppedFiles(t *testing.T) {
	f := importtest.Make(t)
	t.Run("Classify", func(t *testing.T) { testClassify(t, f) })
	t.Run("LayoutWithSymlink", func(t *testing.T) { testLayoutWithSymlink(t, f) })
	t.Run("Plan", func(t *testing.T) { testPlan(t, f) })
	t.Run("Engine", func(t *testing.T) { testEngine(t, f) })
}

func testClassify(t *testing.T, f importtest.Files) {
	for _, tc := range []struct {
		file, format, comp string
		kind               Kind
	}{
		{"docker.tar", "docker-archive", "", Archive},
		{"oci.tar", "OCI archive", "", Archive},
		{"docker.tar.gz", "docker-archive", "gzip", Archive},
		{"oci.tgz", "OCI archive", "gzip", Archive},
		{"oci.tar.zst", "OCI archive", "zstd", Archive},
		{"docker.tar.zst", "docker-archive", "zstd", Archive},
		{"layout", "OCI layout folder", "", Layout},
		{"rootfs.tar", "root filesystem tar", "", Rootfs},
		{"rootfs.tar.gz", "root filesystem tar", "gzip", Rootfs},
		{"rootfs.tar.zst", "root filesystem tar", "zstd", Rootfs},
	} {
		it, err := Classify(f[tc.file])
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		if it.Kind != tc.kind || it.Format != tc.format || it.Compression != tc.comp || it.Size <= 0 {
			t.Errorf("%s: got %+v", tc.file, it)
		}
		if it.NeedsName() != (tc.kind == Rootfs) {
			t.Errorf("%s: NeedsName %v", tc.file, it.NeedsName())
		}
	}
	if it, _ := Classify(f["oci.tar.zst"]); it.Describe() != "OCI archive (zstd)" {
		t.Errorf("Describe: %q", it.Describe())
	}
	for file, want := range map[string]string{
		"random.bin":           reasonNotArchive,
		"notes.txt":            reasonNotArchive,
		"empty.tar":            reasonEmptyFile,
		"truncated.tar.gz":     "truncated gzip tar: the file ends in the middle of an entry",
		"truncated-rootfs.tar": "truncated tar: the file ends in the middle of an entry",
		"truncated-oci.tar":    "truncated tar: the file ends in the middle of an entry",
		"index-only.tar":       "not an OCI archive: index.json without oci-layout",
		"folder":               "not an OCI layout folder: no oci-layout file in folder",
	} {
		_, err := Classify(f[file])
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: got %v, want %q…", file, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: multi-line error %q", file, err)
		}
	}
	if _, err := Classify(filepath.Join(t.TempDir(), "gone.tar")); err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("missing file: %v", err)
	}
}

// A symlink inside a layout folder could point anywhere: refused.
func testLayoutWithSymlink(t *testing.T, f importtest.Files) {
	dir := filepath.Join(t.TempDir(), "layout")
	if err := os.CopyFS(dir, os.DirFS(f["layout"])); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "blobs", "evil")); err != nil {
		t.Fatal(err)
	}
	_, err := Classify(dir)
	if err == nil || !strings.Contains(err.Error(), "blobs/evil, which is not a regular file") {
		t.Fatalf("got %v", err)
	}
}

// In-memory edge cases: names with "./", an empty tar, a zstd bomb.
func TestSniffEdges(t *testing.T) {
	mk := func(names ...string) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, n := range names {
			tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR})
		}
		tw.Close()
		return b.Bytes()
	}
	for _, tc := range []struct {
		data []byte
		kind Kind
		err  string
	}{
		{mk("./oci-layout", "./index.json"), Archive, ""},
		{mk("blobs/sha256/x", "manifest.json"), Archive, ""},
		{mk("sub/manifest.json"), Rootfs, ""}, // not at the top: a rootfs
		{mk(), 0, reasonNotArchive},           // an empty tar has no ustar header
		{bytes.Repeat([]byte{0}, 4096), 0, reasonNotArchive},
		{[]byte{0x1f, 0x8b, 1, 2, 3}, 0, "damaged gzip file"},
	} {
		k, _, _, err := sniff(bytes.NewReader(tc.data), int64(len(tc.data)))
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("%q: got %v, want %q", tc.data[:min(len(tc.data), 20)], err, tc.err)
			}
			continue
		}
		if err != nil || k != tc.kind {
			t.Errorf("%q: kind %v err %v", tc.data[:min(len(tc.data), 20)], k, err)
		}
	}
	// 300 MiB of zeros inside a tar header stream compresses to a few
	// KiB: refused as a bomb before it is all read.
	var z bytes.Buffer
	zw, _ := zstd.NewWriter(&z)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "big", Mode: 0o644, Size: 300 << 20, Format: tar.FormatUSTAR})
	zw.Write(tb.Bytes())
	zero := make([]byte, 1<<20)
	for range 300 {
		zw.Write(zero)
	}
	zw.Close()
	_, _, _, err := sniff(bytes.NewReader(z.Bytes()), int64(z.Len()))
	if err == nil || !strings.HasPrefix(err.Error(), "decompression bomb") {
		t.Fatalf("bomb (%d bytes compressed): %v", z.Len(), err)
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string]string{
		"/x/Alpine Root.tar.gz": "alpine-root:latest",
		"debian.tzst":           "debian:latest",
		"rootfs.tar":            "rootfs:latest",
		"___.tar":               "imported:latest",
		".tar":                  "tar:latest",
		"Ubuntu_22.04.tar.zst":  "ubuntu-22-04:latest",
	} {
		got := SuggestName(in)
		if got != want {
			t.Errorf("SuggestName(%q) = %q, want %q", in, got, want)
		}
		if _, err := ValidateName(got); err != nil {
			t.Errorf("suggested %q is invalid: %v", got, err)
		}
	}
	for _, ok := range []string{"myimage", " myimage:1.0 ", "127.0.0.1:5000/a/b:c", "a_b.c-d"} {
		if _, err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q): %v", ok, err)
		}
	}
	for in, want := range map[string]string{
		"":                  "enter a name",
		"   ":               "enter a name",
		"MyImage":           "invalid image reference",
		"a b":               "invalid image reference",
		"x@sha256:" + hex64: "names a digest",
		"x:":                "invalid image reference",
	} {
		_, err := ValidateName(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateName(%q) = %v, want %q", in, err, want)
		}
	}
	it := Item{Kind: Rootfs}
	if _, err := NewRequest(it, "Bad Name"); err == nil {
		t.Error("NewRequest accepted a bad name")
	}
	if r, err := NewRequest(Item{Kind: Archive}, "ignored"); err != nil || r.Name != "" {
		t.Errorf("archive request: %+v %v", r, err)
	}
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestReadStream(t *testing.T) {
	got, err := readStream(strings.NewReader(`{"stream":"Loaded image: busybox:latest\n"}` + "\n" + `{"stream":"Loaded image ID: sha256:abc\n"}`))
	if err != nil || strings.Join(got, ", ") != "busybox:latest, sha256:abc" {
		t.Errorf("got %q %v", got, err)
	}
	if _, err := readStream(strings.NewReader(`{"errorDetail":{"message":"unsupported media type"},"error":"unsupported media type"}`)); err == nil || err.Error() != "unsupported media type" {
		t.Errorf("error stream: %v", err)
	}
	if _, err := readStream(strings.NewReader(`{"stream":`)); err == nil {
		t.Error("truncated stream accepted")
	}
}
