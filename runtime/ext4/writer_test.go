//go:build linux

package ext4

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2024, 3, 5, 6, 7, 8, 123456789, time.UTC)

func dirH(name string, mode int64) tar.Header {
	return tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: t0}
}

func fileH(name string, mode int64) tar.Header {
	return tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, ModTime: t0}
}

func aclValue(entries ...[3]uint32) string {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return string(b)
}

// everyType is a tar with every entry type and attribute the writer handles.
func everyType(t testing.TB) []byte {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1000)
	capab := string([]byte{1, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	longX := strings.Repeat("v", 1500)
	files := []tarFile{
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755, ModTime: t0, Uid: 0, Gid: 0}},
		{hdr: dirH("etc/", 0o755)},
		{hdr: fileH("etc/passwd", 0o644), data: []byte("root:x:0:0::/root:/bin/sh\n")},
		{hdr: fileH("empty", 0o600)},
		{hdr: fileH("block4096", 0o644), data: bytes.Repeat([]byte{7}, 4096)},
		{hdr: fileH("block4097", 0o644), data: bytes.Repeat([]byte{8}, 4097)},
		{hdr: fileH("big", 0o644), data: big},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "setuid", Mode: 0o4755, ModTime: t0, Uid: 100000, Gid: 200000}, data: []byte("su")},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "setgid", Mode: 0o2711, ModTime: t0, Uid: 1 << 31, Gid: 65536}, data: []byte("sg")},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "tmp", Mode: 0o1777, ModTime: t0}},
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "fast", Linkname: strings.Repeat("f", 59), ModTime: t0}},
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "slow60", Linkname: strings.Repeat("s", 60), ModTime: t0}},
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "slow61", Linkname: "/" + strings.Repeat("x/", 30), ModTime: t0}},
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "slow4000", Linkname: strings.Repeat("L", 4000), ModTime: t0}},
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "loop1", Linkname: "loop2", ModTime: t0}},
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "loop2", Linkname: "loop1", ModTime: t0}},
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "etc/passwd.link", Linkname: "etc/passwd", ModTime: t0}},
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "passwd2", Linkname: "./etc/passwd", ModTime: t0}},
		{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: t0}},
		{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/bigdev", Mode: 0o600, Devmajor: 300, Devminor: 70000, ModTime: t0}},
		{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/sda", Mode: 0o660, Devmajor: 8, Devminor: 0, Gid: 6, ModTime: t0}},
		{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "fifo", Mode: 0o644, ModTime: t0}},
		{hdr: tar.Header{Typeflag: 'Z', Name: "weird", ModTime: t0}},
		{hdr: fileH("old", 0o644), data: []byte("1960")},
		{hdr: fileH("future", 0o644), data: []byte("2100")},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "times", Mode: 0o644, ModTime: t0, AccessTime: t0.Add(time.Hour + 5), ChangeTime: t0.Add(2*time.Hour + 7)}, data: []byte("t")},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "xattr-inline", Mode: 0o755, ModTime: t0, PAXRecords: map[string]string{
			"SCHILY.xattr.security.capability": capab, "SCHILY.xattr.user.a": "1"}}, data: []byte("x")},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "xattr-block", Mode: 0o644, ModTime: t0, PAXRecords: map[string]string{
			"SCHILY.xattr.user.long": longX, "SCHILY.xattr.trusted.t": "trust", "SCHILY.xattr.user.z": "zz", "SCHILY.xattr.user.empty": ""}}, data: []byte("y")},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "acl", Mode: 0o770, ModTime: t0, PAXRecords: map[string]string{
			"SCHILY.xattr.system.posix_acl_access":  aclValue([3]uint32{1, 7, 0xFFFFFFFF}, [3]uint32{2, 5, 1000}, [3]uint32{4, 7, 0xFFFFFFFF}, [3]uint32{0x10, 7, 0xFFFFFFFF}, [3]uint32{0x20, 0, 0xFFFFFFFF}),
			"SCHILY.xattr.system.posix_acl_default": aclValue([3]uint32{1, 7, 0xFFFFFFFF}, [3]uint32{4, 5, 0xFFFFFFFF}, [3]uint32{0x20, 0, 0xFFFFFFFF})}}},
		// implicit parents
		{hdr: fileH("implicit/a/b/c.txt", 0o640), data: []byte("deep")},
		// later entries replace earlier ones
		{hdr: fileH("replace-file", 0o644), data: []byte("first version, longer")},
		{hdr: fileH("replace-file", 0o600), data: []byte("second")},
		{hdr: dirH("dir-to-file", 0o755)},
		{hdr: fileH("dir-to-file/child", 0o644), data: []byte("gone")},
		{hdr: fileH("dir-to-file", 0o644), data: []byte("now a file")},
		{hdr: fileH("file-to-dir", 0o644), data: []byte("was a file")},
		{hdr: dirH("file-to-dir", 0o711)},
		{hdr: fileH("file-to-dir/kid", 0o644), data: []byte("kid")},
		{hdr: dirH("etc/", 0o750)}, // re-declared directory keeps its children
		// hostile names, normalised inside the image
		{hdr: fileH("../../escape", 0o644), data: []byte("inside")},
		{hdr: fileH("/abs/path", 0o644), data: []byte("abs")},
		{hdr: fileH("a/./b/../c", 0o644), data: []byte("c")},
		{hdr: fileH(strings.Repeat("n", 255), 0o644), data: []byte("max name")},
	}
	files[23].hdr.ModTime = time.Date(1960, 1, 2, 3, 4, 5, 6, time.UTC)
	files[24].hdr.ModTime = time.Date(2100, 1, 2, 3, 4, 5, 999999999, time.UTC)
	return mkTar(t, files)
}

func TestEveryEntryType(t *testing.T) {
	t.Parallel()
	data := everyType(t)
	var warns []string
	img, err := build(t, data, Options{Size: 64 << 20, Warn: func(s string) { warns = append(warns, s) }})
	if err != nil {
		t.Fatal(err)
	}
	want := refApply(t, [][]byte{data}, false)
	checkImage(t, img, want)
	if !strings.Contains(strings.Join(warns, "\n"), `"weird"`) {
		t.Errorf("no warning for the unsupported entry type; warnings: %q", warns)
	}
}

// The image mounts read-write in the kernel, takes a 100 MB write and a
// directory of new files, and stays e2fsck-clean.
func TestMountReadWrite(t *testing.T) {
	t.Parallel()
	img, err := build(t, everyType(t), Options{Size: 512 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root for a loop mount (CI runs as root)")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "ext4", "-o", "loop,rw", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount rw: %v: %s", err, out)
	}
	script := `set -e
dd if=/dev/urandom of=big bs=1M count=100 status=none
mkdir -p many && for i in $(seq 1 300); do echo $i > many/f$i; done
echo more >> etc/passwd && rm -f big4096 block4096 && mv setuid setuid2 && ln fifo fifo2
sync`
	out, err := exec.Command("sh", "-c", "cd "+mnt+" && "+script).CombinedOutput()
	if uerr := exec.Command("umount", mnt).Run(); uerr != nil {
		t.Errorf("umount: %v", uerr)
	}
	if err != nil {
		t.Fatalf("writing to the mounted image: %v: %s", err, out)
	}
	fsck(t, img)
	// The reader understands what the kernel wrote (its own block
	// allocation, grown directories, deeper extent trees).
	kernel, ours := readMounted(t, img), readWithReader(t, img)
	for p, k := range kernel {
		o, ok := ours[p]
		if !ok {
			t.Errorf("reader misses %q", p)
			continue
		}
		if a, b := fmt.Sprintf("%+v", *k), fmt.Sprintf("%+v", *o); a != b {
			t.Errorf("%q: kernel %s, reader %s", p, a, b)
		}
	}
	if len(kernel) != len(ours) {
		t.Errorf("kernel sees %d entries, reader %d", len(kernel), len(ours))
	}
}

func TestLargeFileAndManyExtents(t *testing.T) {
	// Not parallel: shrinks the extent length so that a small file needs a
	// depth-1 extent tree (the layout a >512 MiB file gets).
	old := extentLimit
	extentLimit = 4
	defer func() { extentLimit = old }()
	data := make([]byte, 3<<20+123) // 769 blocks → 193 extents → one leaf
	for i := range data {
		data[i] = byte(i * 7 >> 8)
	}
	many := make([]byte, 4*340*4*blockSize+5) // > 1360 extents is refused; this needs 1361
	tarData := mkTar(t, []tarFile{{hdr: fileH("f", 0o644), data: data}, {hdr: fileH("g", 0o644), data: data[:17*blockSize]}})
	img, err := build(t, tarData, Options{Size: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	fsck(t, img)
	compareTree(t, "reader", refApply(t, [][]byte{tarData}, false), readWithReader(t, img))
	compareTree(t, "kernel", refApply(t, [][]byte{tarData}, false), readMounted(t, img))

	_, err = build(t, mkTar(t, []tarFile{{hdr: fileH("huge", 0o644), data: many}}), Options{Size: 256 << 20})
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("file needing 1361 extents: want a 'too large' error, got %v", err)
	}
}

// A 300 MiB file: more than two max-length extents, streamed.
func Test300MiBFile(t *testing.T) {
	t.Parallel()
	const size = 300<<20 + 17
	pattern := func() io.Reader { return &patternReader{seed: 42} }
	dir := t.TempDir()
	tf, err := os.Create(filepath.Join(dir, "big.tar"))
	if err != nil {
		t.Fatal(err)
	}
	writeTar(t, tf, []tarFile{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "big.bin", Mode: 0o644, ModTime: t0, Size: size}, stream: pattern}})
	tf.Close()
	img := filepath.Join(dir, "img.ext4")
	f, _ := os.Create(img)
	w, err := NewWriter(f, Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	in, _ := os.Open(tf.Name())
	if err := w.AddTar(in); err != nil {
		t.Fatal(err)
	}
	in.Close()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.Remove(tf.Name())
	fsck(t, img)
	h := sha256sum(io.LimitReader(pattern(), size))
	want := refTree{
		"":           {typ: '5', mode: 0o755, implicit: true},
		"lost+found": {typ: '5', mode: 0o700, implicit: true},
		"big.bin":    {typ: '0', mode: 0o644, mtime: t0, atime: t0, ctime: t0, size: size, sum: h, nlink: 1},
	}
	checkImage(t, img, want)
}

type patternReader struct {
	seed uint64
	n    uint64
}

func (p *patternReader) Read(b []byte) (int, error) {
	for i := range b {
		p.n++
		b[i] = byte((p.n * (p.seed | 1)) >> 7)
	}
	return len(b), nil
}

func TestTenThousandFilesInOneDir(t *testing.T) {
	t.Parallel()
	var files []tarFile
	files = append(files, tarFile{hdr: dirH("d", 0o755)})
	for i := 0; i < 10000; i++ {
		files = append(files, tarFile{hdr: fileH(fmt.Sprintf("d/file-with-a-longish-name-%05d", i), 0o644), data: []byte(fmt.Sprint(i))})
	}
	data := mkTar(t, files)
	img, err := build(t, data, Options{Size: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, img, refApply(t, [][]byte{data}, false))
}

// A copy of /usr/local/go (the Go toolchain running this test): ~15k files.
func TestGoRootCopy(t *testing.T) {
	t.Parallel()
	tarPath := goRootTar(t)
	img := filepath.Join(t.TempDir(), "go.ext4")
	f, _ := os.Create(img)
	w, err := NewWriter(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	in, _ := os.Open(tarPath)
	defer in.Close()
	if err := w.AddTar(in); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	data, err := os.ReadFile(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, img, refApply(t, [][]byte{data}, false))
}

// goRootTar tars GOROOT into a temp file (PAX, ns times, no atime/ctime).
func goRootTar(t testing.TB) string {
	t.Helper()
	root := os.Getenv("GOROOT")
	if root == "" {
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			t.Fatalf("go env GOROOT: %v", err)
		}
		root = strings.TrimSpace(string(out))
	}
	p := filepath.Join(t.TempDir(), "goroot.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	buf := make([]byte, 1<<20)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(path)
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		h.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			h.Name += "/"
		}
		h.Format = tar.FormatPAX
		h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
		h.Uname, h.Gname = "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			in, err := os.Open(path)
			if err != nil {
				return err
			}
			_, err = io.CopyBuffer(tw, in, buf)
			in.Close()
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLayersWhiteouts(t *testing.T) {
	t.Parallel()
	base := mkTar(t, []tarFile{
		{hdr: dirH("etc", 0o755)},
		{hdr: fileH("etc/keep", 0o644), data: []byte("keep")},
		{hdr: fileH("etc/delete-me", 0o644), data: []byte("delete")},
		{hdr: dirH("opaque", 0o755)},
		{hdr: fileH("opaque/old1", 0o644), data: []byte("old1")},
		{hdr: dirH("opaque/sub", 0o755)},
		{hdr: fileH("opaque/sub/old2", 0o644), data: []byte("old2")},
		{hdr: dirH("dirbecomesfile", 0o755)},
		{hdr: fileH("dirbecomesfile/x", 0o644), data: []byte("x")},
		{hdr: fileH("filebecomesdir", 0o644), data: []byte("f")},
		{hdr: dirH("gone", 0o755)},
		{hdr: fileH("gone/deep", 0o644), data: []byte("deep")},
		{hdr: fileH("linked", 0o644), data: []byte("hard linked data")},
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "linked2", Linkname: "linked", ModTime: t0}},
		{hdr: dirH("merge", 0o700)},
		{hdr: fileH("merge/lower", 0o644), data: []byte("lower")},
		{hdr: dirH("recreated", 0o755)},
		{hdr: fileH("recreated/old", 0o644), data: []byte("old")},
	})
	mid := mkTar(t, []tarFile{
		{hdr: dirH("etc", 0o755)},
		{hdr: fileH("etc/.wh.delete-me", 0o644)},
		{hdr: dirH("opaque", 0o750)},
		{hdr: fileH("opaque/.wh..wh..opq", 0o644)},
		{hdr: fileH("opaque/new", 0o644), data: []byte("new")},
		{hdr: fileH("dirbecomesfile", 0o600), data: []byte("now a file")},
		{hdr: dirH("filebecomesdir", 0o711)},
		{hdr: fileH("filebecomesdir/inside", 0o644), data: []byte("in")},
		{hdr: fileH(".wh.gone", 0o644)},
		{hdr: fileH(".wh.linked", 0o644)},                         // one name of a hard-linked pair
		{hdr: fileH("merge/upper", 0o644), data: []byte("upper")}, // implicit parent: lower metadata stays
		{hdr: fileH(".wh.recreated", 0o644)},
		{hdr: dirH("recreated", 0o755)},
		{hdr: fileH("recreated/new", 0o644), data: []byte("new")},
	})
	top := mkTar(t, []tarFile{
		{hdr: fileH("etc/keep", 0o600), data: []byte("changed")},
		{hdr: fileH("etc/delete-me", 0o644), data: []byte("back again")},
		{hdr: fileH("gone", 0o644), data: []byte("file where a dir was")},
	})
	layers := [][]byte{base, mid, top}
	img, err := buildLayers(t, layers, Options{Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	want := refApply(t, layers, true)
	if _, ok := want["linked2"]; !ok || want["linked2"].nlink != 1 {
		t.Fatalf("reference model broken: %+v", want["linked2"])
	}
	checkImage(t, img, want)
}

// Random layer stacks against the forward reference model.
func TestLayersRandom(t *testing.T) {
	t.Parallel()
	names := []string{"a", "b", "c", "a/x", "a/y", "b/x", "b/z", "a/x/q", "c/d/e"}
	for seed := uint64(0); seed < 25; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		var layers [][]byte
		for l := 0; l < 1+r.IntN(4); l++ {
			var files []tarFile
			for i := 0; i < 1+r.IntN(8); i++ {
				n := names[r.IntN(len(names))]
				switch r.IntN(6) {
				case 0, 1:
					files = append(files, tarFile{hdr: fileH(n, 0o644), data: []byte(fmt.Sprint(seed, l, i, n))})
				case 2:
					files = append(files, tarFile{hdr: dirH(n, 0o755)})
				case 3:
					dir, base := filepath.Split(n)
					files = append(files, tarFile{hdr: fileH(dir+".wh."+base, 0o644)})
				case 4:
					dir, _ := filepath.Split(n)
					files = append(files, tarFile{hdr: dirH(dir, 0o755)}, tarFile{hdr: fileH(dir+".wh..wh..opq", 0o644)})
				case 5:
					files = append(files, tarFile{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: n, Linkname: "t", ModTime: t0}})
				}
			}
			layers = append(layers, mkTar(t, files))
		}
		img, err := buildLayers(t, layers, Options{Size: 16 << 20})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		fsck(t, img)
		compareTree(t, fmt.Sprintf("seed %d", seed), refApply(t, layers, true), readWithReader(t, img))
	}
}

// Upper layers delete most of a lower layer: the image's used blocks are
// about the survivors, because deleted data is never written.
func TestLayersDeleteMost(t *testing.T) {
	t.Parallel()
	var lower, upper []tarFile
	lower = append(lower, tarFile{hdr: dirH("data", 0o755)})
	for i := 0; i < 100; i++ {
		lower = append(lower, tarFile{hdr: fileH(fmt.Sprintf("data/f%03d", i), 0o644), data: bytes.Repeat([]byte{byte(i)}, 1<<20)})
	}
	for i := 0; i < 95; i++ {
		upper = append(upper, tarFile{hdr: fileH(fmt.Sprintf("data/.wh.f%03d", i), 0o644)})
	}
	layers := [][]byte{mkTar(t, lower), mkTar(t, upper)}
	img, err := buildLayers(t, layers, Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, img, refApply(t, layers, true))
	// Same used-block count as an image of just the survivors.
	var survivors []tarFile
	survivors = append(survivors, lower[0])
	survivors = append(survivors, lower[96:]...)
	ref, err := build(t, mkTar(t, survivors), Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if u, r := usedBlocks(t, img), usedBlocks(t, ref); u != r {
		t.Errorf("layered image uses %d blocks, an image of the survivors alone %d", u, r)
	}
	f, _ := os.Open(img)
	defer f.Close()
	st, _ := f.Stat()
	if disk := blocksOnDisk(st); disk > 8<<20 {
		t.Errorf("image file occupies %d MiB on the host; want about 5", disk>>20)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	good := mkTar(t, []tarFile{{hdr: fileH("a", 0o644), data: bytes.Repeat([]byte("hello world"), 300)}})
	cases := []struct {
		name string
		tar  []byte
		opts Options
		want string
	}{
		{"truncated data", good[:2000], Options{}, "truncated"},
		{"garbage header", append(bytes.Repeat([]byte{0xFF}, 512), good...), Options{}, "read tar"},
		{"hard link to missing", mkTar(t, []tarFile{{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "l", Linkname: "nothere"}}}), Options{}, "not an earlier entry"},
		{"hard link to dir", mkTar(t, []tarFile{{hdr: dirH("d", 0o755)}, {hdr: tar.Header{Typeflag: tar.TypeLink, Name: "l", Linkname: "d"}}}), Options{}, "directory"},
		{"name too long", mkTar(t, []tarFile{{hdr: fileH(strings.Repeat("n", 256), 0o644)}}), Options{}, "ext4 allows 255"},
		{"more files than inodes", mkTar(t, manyFiles(200)), Options{Inodes: 64}, "inodes"},
		{"xattrs too large", mkTar(t, []tarFile{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "x", PAXRecords: map[string]string{
			"SCHILY.xattr.user.a": strings.Repeat("a", 3000), "SCHILY.xattr.user.b": strings.Repeat("b", 3000)}}}}), Options{}, "extended attributes"},
		{"image too small", mkTar(t, []tarFile{{hdr: fileH("big", 0o644), data: make([]byte, 2<<20)}}), Options{Size: 1 << 20}, "too small"},
	}
	for _, c := range cases {
		img, err := build(t, c.tar, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want error containing %q, got %v", c.name, c.want, err)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", c.name, err)
		}
		// A failed build never leaves something that looks like ext4.
		if f, err := os.Open(img); err == nil {
			if _, err := Open(f); err == nil {
				t.Errorf("%s: failed build left a readable superblock", c.name)
			}
			f.Close()
		}
	}
	// An empty tar is a valid (empty) image.
	img, err := build(t, mkTar(t, nil), Options{Size: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	fsck(t, img)
}

func manyFiles(n int) []tarFile {
	var fs []tarFile
	for i := 0; i < n; i++ {
		fs = append(fs, tarFile{hdr: fileH(fmt.Sprintf("f%d", i), 0o644)})
	}
	return fs
}

func TestExportRoundTrip(t *testing.T) {
	t.Parallel()
	data := everyType(t)
	img, err := build(t, data, Options{Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(img)
	defer f.Close()
	rd, err := Open(f)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := rd.WriteTar(&out); err != nil {
		t.Fatal(err)
	}
	// Rebuilding from the export gives the same tree as the original.
	img2, err := build(t, out.Bytes(), Options{Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	want := refApply(t, [][]byte{data}, false)
	compareTree(t, "re-imported export", want, readWithReader(t, img2))
}

func sha256sum(r io.Reader) [32]byte {
	h := newSHA()
	io.Copy(h, r)
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func usedBlocks(t testing.TB, img string) uint32 {
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		t.Fatal(err)
	}
	return le.Uint32(sb[sbBlocksCount:]) - le.Uint32(sb[sbFreeBlocks:])
}

// A file replaced later in the same tar leaves no used blocks in the image
// and (hole punched) no space on the host.
func TestReplacedDataIsFreed(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte{1}, 8<<20)
	data := mkTar(t, []tarFile{{hdr: fileH("f", 0o644), data: big}, {hdr: fileH("f", 0o644), data: []byte("small")}})
	img, err := build(t, data, Options{Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, img, refApply(t, [][]byte{data}, false))
	ref, err := build(t, mkTar(t, []tarFile{{hdr: fileH("f", 0o644), data: []byte("small")}}), Options{Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if u, r := usedBlocks(t, img), usedBlocks(t, ref); u != r {
		t.Errorf("image uses %d blocks; without the replaced file %d", u, r)
	}
	st, _ := os.Stat(img)
	if d := blocksOnDisk(st); d > 2<<20 {
		t.Errorf("image occupies %d KiB on the host; the replaced 8 MiB should be punched out", d>>10)
	}
}
