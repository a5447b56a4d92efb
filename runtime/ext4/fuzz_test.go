//go:build linux

package ext4

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// FuzzTar feeds raw bytes to the writer as a tar. Whatever it accepts must be
// e2fsck-clean and readable; whatever it refuses must not look like ext4.
func FuzzTar(f *testing.F) {
	// Small seeds: the mutator is slow on inputs of 100 KB.
	f.Add(mkTar(f, []tarFile{
		{hdr: dirH("d", 0o755)},
		{hdr: fileH("d/f", 0o4755), data: []byte("data")},
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "s", Linkname: "d/f"}},
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "d/f"}},
		{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "c", Devmajor: 1, Devminor: 3}},
		{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "p"}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "x", PAXRecords: map[string]string{"SCHILY.xattr.user.a": "b"}}},
	}))
	f.Add(mkTar(f, []tarFile{{hdr: fileH("a", 0o644), data: []byte("x")}}))
	f.Add(mkTar(f, []tarFile{{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "l", Linkname: "a"}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := build(t, data, Options{Size: 16 << 20})
		checkOutcome(t, img, err)
	})
}

// FuzzLayers builds layer stacks from a compact op encoding (so the fuzzer
// explores tree shapes, not tar syntax) and checks e2fsck, and the tree
// against the forward reference model.
func FuzzLayers(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{0x10, 0x21, 0x32, 0xF3, 0x44, 0x55, 0x66, 0x77, 0xF8, 0x99})
	f.Add(bytes.Repeat([]byte{0x13, 0x57, 0x9B, 0xDF}, 8))
	f.Fuzz(func(t *testing.T, ops []byte) {
		layers := opsToLayers(t, ops)
		img, err := buildLayers(t, layers, Options{Size: 16 << 20})
		if err != nil {
			checkOutcome(t, img, err)
			return
		}
		fsck(t, img)
		compareTree(t, "fuzzed layers", refApply(t, layers, true), readWithReader(t, img))
	})
}

var fuzzNames = []string{"a", "b", "a/b", "a/c", "b/a", "a/b/c", "c/d/e", "d"}

// opsToLayers: each op byte picks an action (high nibble) and a name (low
// bits); 0xF? starts a new layer.
func opsToLayers(t testing.TB, ops []byte) [][]byte {
	var layers [][]byte
	var cur []tarFile
	flush := func() {
		layers = append(layers, mkTar(t, cur))
		cur = nil
	}
	for i, op := range ops {
		if len(layers) > 6 || len(cur) > 40 {
			break
		}
		n := fuzzNames[int(op)%len(fuzzNames)]
		dir, base := "", n
		if j := strings.LastIndex(n, "/"); j >= 0 {
			dir, base = n[:j+1], n[j+1:]
		}
		switch op >> 4 {
		case 0, 1, 2:
			cur = append(cur, tarFile{hdr: fileH(n, int64(0o600+i%8)), data: bytes.Repeat([]byte{op}, int(op)*37)})
		case 3, 4:
			cur = append(cur, tarFile{hdr: dirH(n, 0o755)})
		case 5:
			cur = append(cur, tarFile{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: n, Linkname: strings.Repeat("t", int(op)*5), ModTime: t0}})
		case 6:
			// hard link to an earlier regular file of this layer, if any
			for k := len(cur) - 1; k >= 0; k-- {
				if cur[k].hdr.Typeflag == tar.TypeReg && !strings.Contains(cur[k].hdr.Name, ".wh.") && refNorm(cur[k].hdr.Name) != refNorm(n) && !strings.HasPrefix(refNorm(n)+"/", refNorm(cur[k].hdr.Name)+"/") && !strings.HasPrefix(refNorm(cur[k].hdr.Name)+"/", refNorm(n)+"/") && laterIsFile(cur, k) {
					cur = append(cur, tarFile{hdr: tar.Header{Typeflag: tar.TypeLink, Name: n, Linkname: cur[k].hdr.Name, ModTime: t0}})
					break
				}
			}
		case 7, 8:
			cur = append(cur, tarFile{hdr: fileH(dir+".wh."+base, 0o644)})
		case 9:
			cur = append(cur, tarFile{hdr: fileH(dir+".wh..wh..opq", 0o644)})
		case 10:
			cur = append(cur, tarFile{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: n, Mode: 0o644, ModTime: t0}})
		case 11:
			cur = append(cur, tarFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, ModTime: t0, PAXRecords: map[string]string{
				"SCHILY.xattr.user.k" + fmt.Sprint(op&3): strings.Repeat("v", int(op)*9)}}, data: []byte{op}})
		case 12, 13, 14:
			cur = append(cur, tarFile{hdr: fileH(n, 0o644), data: []byte(fmt.Sprint(i))})
		case 15:
			flush()
		}
	}
	flush()
	return layers
}

// laterIsFile: the entry at k is still the last word on its path (and no
// later entry turned one of its parents into something else).
func laterIsFile(cur []tarFile, k int) bool {
	p := refNorm(cur[k].hdr.Name)
	for _, c := range cur[k+1:] {
		q := refNorm(c.hdr.Name)
		if q == p || strings.HasPrefix(p, q+"/") || strings.HasPrefix(q, p+"/") || strings.Contains(q, ".wh.") {
			return false
		}
	}
	return true
}

// checkOutcome: a successful build must pass e2fsck and read back; a failed
// one must not leave a mountable-looking image behind.
func checkOutcome(t *testing.T, img string, err error) {
	t.Helper()
	if err != nil {
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("multi-line error: %q", err)
		}
		if f, e := os.Open(img); e == nil {
			defer f.Close()
			if _, e := Open(f); e == nil {
				t.Errorf("failed build (%v) left a valid superblock", err)
			}
		}
		return
	}
	fsck(t, img)
	f, e := os.Open(img)
	if e != nil {
		t.Fatal(e)
	}
	defer f.Close()
	rd, e := Open(f)
	if e != nil {
		t.Fatal(e)
	}
	if e := rd.Walk(func(en *Entry) error {
		if en.Mode.IsRegular() {
			r, err := rd.OpenFile(en)
			if err != nil {
				return err
			}
			_, err = bytes.NewBuffer(nil).ReadFrom(r)
			return err
		}
		return nil
	}); e != nil {
		t.Fatalf("reading back: %v", e)
	}
}

// FuzzReader corrupts a valid image (the fuzz input is a list of 4-byte
// patches: 3 bytes of offset into the used area, 1 byte of value) and reads
// it all back, as `berth export` reads a disk a guest may have scribbled
// on: errors are fine, panics, hangs and huge allocations are not.
func FuzzReader(f *testing.F) {
	data := mkTar(f, []tarFile{
		{hdr: dirH("d", 0o755)},
		{hdr: fileH("d/f", 0o644), data: bytes.Repeat([]byte("x"), 5000)},
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "s", Linkname: strings.Repeat("l", 70)}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "x", PAXRecords: map[string]string{"SCHILY.xattr.user.a": strings.Repeat("b", 200)}}},
		{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "c", Devmajor: 1, Devminor: 3}},
	})
	img, err := build(f, data, Options{Size: 1 << 20, Inodes: 64})
	if err != nil {
		f.Fatal(err)
	}
	base, err := os.ReadFile(img)
	if err != nil {
		f.Fatal(err)
	}
	used := len(base)
	for used > 0 && base[used-1] == 0 {
		used--
	}
	f.Add([]byte{0, 4, 0x38, 0})          // superblock magic
	f.Add([]byte{0, 0x10, 0x00, 0xFF})    // group descriptors
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}) // data
	f.Fuzz(func(t *testing.T, patches []byte) {
		b := bytes.Clone(base)
		for i := 0; i+4 <= len(patches); i += 4 {
			off := (int(patches[i])<<16 | int(patches[i+1])<<8 | int(patches[i+2])) % used
			b[off] = patches[i+3]
		}
		rd, err := Open(bytes.NewReader(b))
		if err != nil {
			return
		}
		// A corrupt size can make a file a huge sparse one: stop after 64 MiB.
		_ = rd.WriteTar(&cappedWriter{n: 64 << 20})
	})
}

type cappedWriter struct{ n int }

func (c *cappedWriter) Write(p []byte) (int, error) {
	if len(p) > c.n {
		return 0, io.ErrShortWrite
	}
	c.n -= len(p)
	return len(p), nil
}
