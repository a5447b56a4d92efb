//go:build linux

package ext4

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ---- building test tars ----

type tarFile struct {
	hdr  tar.Header
	data []byte
	// stream, when set, supplies data of hdr.Size bytes instead of data.
	stream func() io.Reader
}

func mkTar(t testing.TB, files []tarFile) []byte {
	t.Helper()
	var b bytes.Buffer
	writeTar(t, &b, files)
	return b.Bytes()
}

func writeTar(t testing.TB, w io.Writer, files []tarFile) {
	t.Helper()
	tw := tar.NewWriter(w)
	for _, f := range files {
		h := f.hdr
		if h.Format == tar.FormatUnknown {
			h.Format = tar.FormatPAX
		}
		if f.data != nil && h.Size == 0 {
			h.Size = int64(len(f.data))
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %s: %v", h.Name, err)
		}
		if f.stream != nil {
			if _, err := io.CopyN(tw, f.stream(), h.Size); err != nil {
				t.Fatal(err)
			}
		} else if len(f.data) > 0 {
			if _, err := tw.Write(f.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// ---- the reference model: what the image must contain ----

type refEntry struct {
	typ      byte // tar typeflag class: '0' file, '5' dir, '2' symlink, '3','4','6'
	mode     int64
	uid, gid int
	mtime    time.Time
	atime    time.Time
	ctime    time.Time
	size     int64
	sum      [32]byte
	link     string
	major    int64
	minor    int64
	xattrs   map[string]string
	implicit bool
	id       *refEntry // hard-link identity (shared object)
	nlink    int
}

type refTree map[string]*refEntry

func refNorm(name string) string {
	p := path.Clean("/" + name)
	return strings.TrimPrefix(p, "/")
}

// refApply computes the merged tree of layers (bottom first) the simple
// forward way: per layer, whiteouts first (they only affect lower layers),
// then the entries in order.
func refApply(t testing.TB, layers [][]byte, whiteouts bool) refTree {
	t.Helper()
	tree := refTree{"": {typ: '5', mode: 0o755, implicit: true}}
	removeTree := func(p string) {
		if cur, ok := tree[p]; !ok || cur.typ != '5' {
			delete(tree, p)
			return
		}
		for k := range tree {
			if k == p || strings.HasPrefix(k, p+"/") {
				delete(tree, k)
			}
		}
	}
	for _, layer := range layers {
		type ent struct {
			hdr  *tar.Header
			data []byte
		}
		var ents []ent
		tr := tar.NewReader(bytes.NewReader(layer))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("reference: %v", err)
			}
			d, _ := io.ReadAll(tr)
			ents = append(ents, ent{h, d})
		}
		if whiteouts {
			for _, e := range ents {
				p := refNorm(e.hdr.Name)
				dir, base := path.Split(p)
				dir = strings.TrimSuffix(dir, "/")
				if base == ".wh..wh..opq" {
					for k := range tree {
						if dir == "" && k != "" || strings.HasPrefix(k, dir+"/") {
							delete(tree, k)
						}
					}
				} else if strings.HasPrefix(base, ".wh.") {
					removeTree(path.Join(dir, base[4:]))
				}
			}
		}
		for _, e := range ents {
			h := e.hdr
			p := refNorm(h.Name)
			if whiteouts && strings.HasPrefix(path.Base(p), ".wh.") {
				continue
			}
			// implicit parents
			parts := strings.Split(p, "/")
			for i := 1; i < len(parts); i++ {
				pp := strings.Join(parts[:i], "/")
				if cur, ok := tree[pp]; !ok || cur.typ != '5' {
					removeTree(pp)
					tree[pp] = &refEntry{typ: '5', mode: 0o755, mtime: h.ModTime, implicit: true}
				}
			}
			r := &refEntry{mode: h.Mode & 0o7777, uid: h.Uid, gid: h.Gid, mtime: h.ModTime, atime: h.AccessTime, ctime: h.ChangeTime}
			if r.atime.IsZero() {
				r.atime = r.mtime
			}
			if r.ctime.IsZero() {
				r.ctime = r.mtime
			}
			for k, v := range h.PAXRecords {
				if strings.HasPrefix(k, "SCHILY.xattr.") {
					if r.xattrs == nil {
						r.xattrs = map[string]string{}
					}
					r.xattrs[k[len("SCHILY.xattr."):]] = v
				}
			}
			switch h.Typeflag {
			case tar.TypeDir:
				if cur, ok := tree[p]; ok && cur.typ == '5' {
					*cur = *r
					cur.typ = '5'
					continue
				}
				r.typ = '5'
			case tar.TypeReg:
				r.typ = '0'
				r.size = int64(len(e.data))
				r.sum = sha256.Sum256(e.data)
			case tar.TypeSymlink:
				r.typ = '2'
				r.link = h.Linkname
				r.mode = 0o777
				r.size = int64(len(h.Linkname))
			case tar.TypeLink:
				tgt, ok := tree[refNorm(h.Linkname)]
				if !ok {
					t.Fatalf("reference: hard link to missing %s", h.Linkname)
				}
				removeTree(p)
				tree[p] = tgt
				continue
			case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
				r.typ = h.Typeflag
				r.major, r.minor = h.Devmajor, h.Devminor
			default:
				continue
			}
			if p == "" {
				if r.typ == '5' {
					*tree[""] = *r
				}
				continue
			}
			removeTree(p)
			tree[p] = r
		}
	}
	if _, ok := tree["lost+found"]; !ok {
		tree["lost+found"] = &refEntry{typ: '5', mode: 0o700, implicit: true}
	}
	// link counts
	for p, e := range tree {
		if e.typ == '5' {
			e.nlink = 2
			continue
		}
		_ = p
		e.nlink++
	}
	for p, e := range tree {
		if e.typ == '5' && p != "" {
			tree[path.Dir("/" + p)[1:]].nlink++
		}
	}
	return tree
}

// ---- reading the image back ----

type gotEntry struct {
	typ      byte
	mode     int64
	uid, gid int
	mtime    time.Time
	atime    time.Time
	ctime    time.Time
	size     int64
	sum      [32]byte
	link     string
	major    int64
	minor    int64
	xattrs   map[string]string
	nlink    int
}

// readMounted loop-mounts the image read-only and reads the tree as the
// kernel sees it.
func readMounted(t testing.TB, img string) map[string]*gotEntry {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test loop-mounts ext4 images and must run as root (CI does)")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "ext4", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v: %s", img, err, out)
	}
	defer func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	}()
	got := map[string]*gotEntry{}
	err := filepath.WalkDir(mnt, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(mnt, p)
		if rel == "." {
			rel = ""
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		g := &gotEntry{mode: int64(st.Mode & 0o7777), uid: int(st.Uid), gid: int(st.Gid), nlink: int(st.Nlink),
			mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec), atime: time.Unix(st.Atim.Sec, st.Atim.Nsec), ctime: time.Unix(st.Ctim.Sec, st.Ctim.Nsec)}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			g.typ = '5'
		case syscall.S_IFREG:
			g.typ = '0'
			g.size = st.Size
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			copy(g.sum[:], h.Sum(nil))
		case syscall.S_IFLNK:
			g.typ = '2'
			g.size = st.Size
			g.link, _ = os.Readlink(p)
		case syscall.S_IFCHR:
			g.typ = '3'
			g.major, g.minor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		case syscall.S_IFBLK:
			g.typ = '4'
			g.major, g.minor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		case syscall.S_IFIFO:
			g.typ = '6'
		}
		buf := make([]byte, 64<<10)
		n, err := unix.Llistxattr(p, buf)
		if err == nil && n > 0 {
			g.xattrs = map[string]string{}
			for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
				v := make([]byte, 64<<10)
				vn, err := unix.Lgetxattr(p, name, v)
				if err != nil {
					return fmt.Errorf("getxattr %s %s: %w", p, name, err)
				}
				g.xattrs[name] = string(v[:vn])
			}
		}
		got[rel] = g
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// readWithReader reads the tree with this package's Reader.
func readWithReader(t testing.TB, img string) map[string]*gotEntry {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := Open(f)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*gotEntry{}
	err = rd.Walk(func(e *Entry) error {
		g := &gotEntry{mode: int64(e.Mode.Perm()) | modeBits(e), uid: int(e.Uid), gid: int(e.Gid), nlink: int(e.Nlink),
			mtime: e.Mtime, atime: e.Atime, ctime: e.Ctime, link: e.Link, major: int64(e.Major), minor: int64(e.Minor)}
		switch {
		case e.Mode.IsDir():
			g.typ = '5'
		case e.Mode.IsRegular():
			g.typ = '0'
			g.size = e.Size
			r, err := rd.OpenFile(e)
			if err != nil {
				return err
			}
			h := sha256.New()
			if _, err := io.Copy(h, r); err != nil {
				return err
			}
			copy(g.sum[:], h.Sum(nil))
		case e.Mode&os.ModeSymlink != 0:
			g.typ = '2'
			g.size = e.Size
		case e.Mode&os.ModeCharDevice != 0:
			g.typ = '3'
		case e.Mode&os.ModeDevice != 0:
			g.typ = '4'
		case e.Mode&os.ModeNamedPipe != 0:
			g.typ = '6'
		}
		if len(e.Xattrs) > 0 {
			g.xattrs = map[string]string{}
			for k, v := range e.Xattrs {
				g.xattrs[k] = string(v)
			}
		}
		got[e.Path] = g
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// compareTree reports every difference between the reference and the image.
func compareTree(t testing.TB, what string, want refTree, got map[string]*gotEntry) {
	t.Helper()
	var errs []string
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			errs = append(errs, fmt.Sprintf("%q missing", p))
			continue
		}
		diff := func(field string, a, b any) {
			if fmt.Sprint(a) != fmt.Sprint(b) {
				errs = append(errs, fmt.Sprintf("%q %s: want %v, got %v", p, field, a, b))
			}
		}
		diff("type", string(w.typ), string(g.typ))
		if w.implicit && p != "" {
			diff("mode", fmt.Sprintf("%o", w.mode), fmt.Sprintf("%o", g.mode))
			continue
		}
		if p == "" && w.implicit {
			continue
		}
		diff("mode", fmt.Sprintf("%o", w.mode), fmt.Sprintf("%o", g.mode))
		diff("uid", w.uid, g.uid)
		diff("gid", w.gid, g.gid)
		diff("nlink", w.nlink, g.nlink)
		diff("mtime", w.mtime.UnixNano(), g.mtime.UnixNano())
		diff("atime", w.atime.UnixNano(), g.atime.UnixNano())
		diff("ctime", w.ctime.UnixNano(), g.ctime.UnixNano())
		if w.typ == '0' || w.typ == '2' {
			diff("size", w.size, g.size)
		}
		if w.typ == '0' {
			diff("content", fmt.Sprintf("%x", w.sum[:6]), fmt.Sprintf("%x", g.sum[:6]))
		}
		diff("link", w.link, g.link)
		if w.typ == '3' || w.typ == '4' {
			diff("dev", fmt.Sprintf("%d:%d", w.major, w.minor), fmt.Sprintf("%d:%d", g.major, g.minor))
		}
		wx, gx := sortedMap(w.xattrs), sortedMap(g.xattrs)
		diff("xattrs", wx, gx)
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			errs = append(errs, fmt.Sprintf("%q unexpected", p))
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		if len(errs) > 30 {
			errs = append(errs[:30], fmt.Sprintf("… and %d more", len(errs)-30))
		}
		t.Errorf("%s: %d differences:\n%s", what, len(errs), strings.Join(errs, "\n"))
	}
}

func sortedMap(m map[string]string) string {
	var ks []string
	for k, v := range m {
		ks = append(ks, fmt.Sprintf("%s=%x", k, v))
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// fsck runs e2fsck -fn and fails the test unless it exits 0.
func fsck(t testing.TB, img string) {
	t.Helper()
	bin, err := exec.LookPath("e2fsck")
	if err != nil {
		for _, p := range []string{"/usr/sbin/e2fsck", "/sbin/e2fsck"} {
			if _, e := os.Stat(p); e == nil {
				bin = p
			}
		}
		if bin == "" {
			t.Fatal("e2fsck not found: install the e2fsprogs package")
		}
	}
	out, err := exec.Command(bin, "-fn", img).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn %s: %v\n%s", img, err, out)
	}
}

// build writes an image from one tar and returns its path.
func build(t testing.TB, tarData []byte, opts Options) (string, error) {
	t.Helper()
	return writeImage(t, opts, func(w *Writer) error { return w.AddTar(bytes.NewReader(tarData)) })
}

// buildLayers writes an image from layer tars (bottom first).
func buildLayers(t testing.TB, layers [][]byte, opts Options) (string, error) {
	t.Helper()
	var ops []LayerOpener
	for _, l := range layers {
		ops = append(ops, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(l)), nil })
	}
	return writeImage(t, opts, func(w *Writer) error { return w.AddLayers(ops) })
}

// writeImage creates a 1 GiB (unless opts says otherwise) image in a temp
// dir, lets fill add its content and closes the writer.
func writeImage(t testing.TB, opts Options, fill func(*Writer) error) (string, error) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "img.ext4")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if opts.Size == 0 {
		opts.Size = 1 << 30
	}
	w, err := NewWriter(f, opts)
	if err != nil {
		return img, err
	}
	if err := fill(w); err != nil {
		w.Close()
		return img, err
	}
	return img, w.Close()
}

// checkImage is the full correctness bar for one image: e2fsck clean, and
// both the kernel and our Reader see exactly the reference tree.
func checkImage(t testing.TB, img string, want refTree) {
	t.Helper()
	fsck(t, img)
	compareTree(t, "kernel mount", want, readMounted(t, img))
	compareTree(t, "ext4.Reader", want, readWithReader(t, img))
}
