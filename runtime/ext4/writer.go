package ext4

import (
	"archive/tar"
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// DefaultSize is the apparent size of an image when Options.Size is zero. The
// file is sparse, so unused space costs nothing on the host.
const DefaultSize = 64 << 30

// Options tune a Writer.
type Options struct {
	// Size is the image's apparent size in bytes (rounded down to 4 KiB);
	// 0 means DefaultSize. Capped at 16 TiB (32-bit block numbers).
	Size int64
	// Inodes is the total number of inodes. 0 means one per 64 KiB of Size,
	// and never fewer than the tree needs plus min(64Ki, one per 16 KiB) spare.
	Inodes uint32
	// Warn receives one line for every entry that is skipped or normalised.
	Warn func(msg string)
}

// Writer builds one ext4 image. Add content with AddTar or AddLayers, then
// Close. A Writer is not safe for concurrent use.
type Writer struct {
	f      *os.File
	opts   Options
	blocks uint64 // total blocks
	groups uint64
	gdtBlk uint64 // group descriptor table blocks (after the superblock block)

	dw     *dataWriter
	root   *node
	all    []*inode // every inode ever created (dead ones free their blocks at Close)
	err    error    // sticky: a failed Writer only closes
	closed bool
	now    time.Time
	uuid   [16]byte
}

// NewWriter starts an image in f, which it truncates to the image size (a
// sparse file). f should be empty.
func NewWriter(f *os.File, opts Options) (*Writer, error) {
	size := opts.Size
	if size == 0 {
		size = DefaultSize
	}
	blocks := uint64(size) >> blockShift
	if blocks > 1<<32-1 {
		return nil, fmt.Errorf("image size %d bytes is over ext4's 16 TiB limit without the 64bit feature", size)
	}
	groups := (blocks + blocksPerGroup - 1) / blocksPerGroup
	// Drop a runt last group (the kernel and e2fsck dislike tiny groups).
	if groups > 1 && blocks%blocksPerGroup != 0 && blocks%blocksPerGroup < 256 {
		groups--
		blocks = groups * blocksPerGroup
	}
	gdtBlk := (groups*descSize + blockSize - 1) / blockSize
	if blocks < 64 {
		return nil, fmt.Errorf("image size %d bytes is too small (minimum 256 KiB)", size)
	}
	if err := f.Truncate(int64(blocks) << blockShift); err != nil {
		return nil, fmt.Errorf("size image file: %w", err)
	}
	w := &Writer{
		f: f, opts: opts, blocks: blocks, groups: groups, gdtBlk: gdtBlk,
		now: time.Now(), uuid: uuid4(),
	}
	w.dw = newDataWriter(f, 1+gdtBlk, blocks)
	w.root = &node{ino: w.newInode(sIFDIR|0o755, w.nowTS()), children: map[string]*node{}, implicit: true, layer: 1 << 30, opaque: -1}
	return w, nil
}

func (w *Writer) nowTS() timespec {
	return timespec{sec: w.now.Unix(), nsec: uint32(w.now.Nanosecond())}
}

func (w *Writer) warn(format string, args ...any) {
	if w.opts.Warn != nil {
		w.opts.Warn(fmt.Sprintf(format, args...))
	}
}

func (w *Writer) newInode(mode uint16, t timespec) *inode {
	ino := &inode{mode: mode, atime: t, mtime: t, ctime: t, crtim: t}
	w.all = append(w.all, ino)
	return ino
}

// AddTar adds every entry of one tar stream. Later entries replace earlier
// ones at the same path; whiteout names are ordinary files here.
func (w *Writer) AddTar(r io.Reader) error {
	if w.err != nil {
		return w.err
	}
	_, err := w.applyTar(0, r, false, nil)
	if err != nil {
		w.err = err
	}
	return err
}

// LayerOpener returns one layer's uncompressed tar stream. It may be called
// twice for the same layer (to fetch data for a hard link whose first name
// an upper layer deleted).
type LayerOpener func() (io.ReadCloser, error)

// AddLayers applies an image's layers (layers[0] is the bottom) with OCI
// whiteout semantics. Layers are read top-down, so the data of files that an
// upper layer deletes or replaces is never written: the image holds only the
// merged tree's data.
func (w *Writer) AddLayers(layers []LayerOpener) error {
	if w.err != nil {
		return w.err
	}
	for i := len(layers) - 1; i >= 0; i-- {
		if err := w.addLayer(i, layers[i]); err != nil {
			w.err = fmt.Errorf("layer %d: %w", i+1, err)
			return w.err
		}
	}
	return nil
}

func (w *Writer) addLayer(layer int, open LayerOpener) error {
	rc, err := open()
	if err != nil {
		return err
	}
	needed, err := w.applyTar(layer, rc, true, nil)
	rc.Close()
	if err != nil || len(needed) == 0 {
		return err
	}
	// Second read: fill in ghost files that a surviving hard link refers to.
	rc, err = open()
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = w.applyTar(layer, rc, true, needed)
	return err
}

// applyTar reads one tar stream as layer `layer`. With fill != nil it only
// copies the data of the entries (by index) listed in fill.
func (w *Writer) applyTar(layer int, r io.Reader, whiteouts bool, fill map[int]*inode) (map[int]*inode, error) {
	// Buffered: tar headers are read 512 bytes at a time; large file
	// bodies bypass the buffer.
	tr := tar.NewReader(bufio.NewReaderSize(r, 256<<10))
	st := &layerState{layer: layer, whiteouts: whiteouts, ghosts: map[string]*inode{}, needed: map[int]*inode{}}
	for idx := 0; ; idx++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w", err)
		}
		if fill != nil {
			if ino := fill[idx]; ino != nil && ino.needData {
				if err := w.writeData(ino, tr, hdr.Size, hdr.Name); err != nil {
					return nil, err
				}
				ino.needData = false
			}
			continue
		}
		st.idx = idx
		if err := w.applyEntry(st, hdr, tr); err != nil {
			return nil, fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
	}
	if fill != nil {
		for _, ino := range fill {
			if ino.needData {
				return nil, fmt.Errorf("hard link target %q vanished on the second read of its layer", ino.ghostOf)
			}
		}
	}
	return st.needed, nil
}

type layerState struct {
	layer     int
	whiteouts bool
	idx       int
	ghosts    map[string]*inode // this layer's entries hidden by upper layers, for hard links
	needed    map[int]*inode    // ghost files a surviving hard link needs (by entry index)
}

func (w *Writer) writeData(ino *inode, r io.Reader, size int64, name string) error {
	start, n, err := w.dw.copyFile(r, size)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("tar entry %q: data truncated (%d bytes expected)", name, size)
		}
		return err
	}
	ino.start, ino.nblocks, ino.size = start, n, uint64(size)
	return nil
}

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// lookupDir walks to the directory at parts on behalf of layer `layer`,
// creating implicit directories. It returns nil when an upper layer hides
// that path (a whiteout, a non-directory, or an opaque directory above it).
func (w *Writer) lookupDir(layer int, parts []string, hdr *tar.Header, forWhiteout bool) *node {
	n := w.root
	for _, c := range parts {
		if !forWhiteout {
			n.woOnly = false // real content lives below: the directory is visible
		}
		if n.opaque > layer {
			return nil
		}
		ch := n.children[c]
		switch {
		case ch == nil:
		case ch.layer > layer:
			if !ch.isDir() {
				return nil
			}
			n = ch
			continue
		case ch.isDir():
			n = ch
			continue
		case forWhiteout && !ch.whiteout:
			// A whiteout under a non-directory of its own layer: that
			// non-directory already hides everything below it.
			return nil
		default:
			// A non-directory of this layer becomes a directory because a
			// later entry of the same layer lives under it (tar extraction
			// semantics; symlinks are never followed inside the image).
			w.warn("%q: replaced %q with a directory to hold later entries", hdr.Name, c)
		}
		t := timespec{sec: hdr.ModTime.Unix(), nsec: uint32(hdr.ModTime.Nanosecond())}
		nd := &node{name: c, ino: w.newInode(sIFDIR|0o755, t), children: map[string]*node{}, layer: layer, implicit: true, opaque: -1, woOnly: forWhiteout}
		if ch != nil {
			nd.opaque = layer // replaces a whiteout or non-directory of this layer
		}
		n.children[c] = nd
		n = nd
	}
	if !forWhiteout {
		n.woOnly = false
	}
	return n
}

func (w *Writer) applyEntry(st *layerState, hdr *tar.Header, tr *tar.Reader) error {
	parts, err := cleanPath(hdr.Name)
	if err != nil {
		return err
	}
	layer := st.layer
	if st.whiteouts && len(parts) > 0 {
		base := parts[len(parts)-1]
		if base == opaqueMarker {
			if d := w.lookupDir(layer, parts[:len(parts)-1], hdr, true); d != nil && d.opaque < layer {
				d.opaque = layer
				dropWhiteoutDirs(d, layer)
			}
			return nil
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			name := base[len(whiteoutPrefix):]
			if name == "" || name == "." || name == ".." || strings.HasPrefix(name, whiteoutPrefix) {
				w.warn("%q: ignored unknown whiteout", hdr.Name)
				return nil
			}
			d := w.lookupDir(layer, parts[:len(parts)-1], hdr, true)
			if d == nil || d.opaque > layer {
				return nil
			}
			switch ch := d.children[name]; {
			case ch == nil, ch.layer == layer && ch.isDir() && ch.woOnly:
				// (a directory that only this layer's whiteouts implied goes too)
				d.children[name] = &node{name: name, layer: layer, whiteout: true, opaque: -1}
			case ch.isDir() && ch.opaque < layer:
				// A directory of this or an upper layer stays, but what lower
				// layers put in it is deleted.
				ch.opaque = layer
				dropWhiteoutDirs(ch, layer)
			}
			return nil
		}
	}

	isDir := hdr.Typeflag == tar.TypeDir
	if len(parts) == 0 {
		if !isDir {
			w.warn("%q: the root can only be a directory; entry skipped", hdr.Name)
			return nil
		}
		if w.root.implicit || w.root.layer == layer {
			if err := w.setMeta(w.root.ino, hdr, sIFDIR); err != nil {
				return err
			}
			w.root.implicit = false
		}
		return nil
	}
	if len(parts) == 1 && parts[0] == "lost+found" && !isDir {
		w.warn("%q: /lost+found must be a directory (e2fsck needs it); entry skipped", hdr.Name)
		return nil
	}
	key := strings.Join(parts, "/")
	name := parts[len(parts)-1]
	parent := w.lookupDir(layer, parts[:len(parts)-1], hdr, false)
	var cur *node
	hidden := parent == nil || parent.opaque > layer
	if !hidden {
		cur = parent.children[name]
		if cur != nil && cur.layer > layer && cur.woOnly && !isDir {
			// Upper layers only put whiteouts under this name; this layer
			// has a non-directory here, which they do not touch.
			cur = nil
		}
		if cur != nil && cur.layer > layer {
			if cur.isDir() && cur.implicit && isDir {
				// An upper layer only implied this directory: take this
				// layer's metadata for it.
				cur.implicit, cur.woOnly = false, false
				return w.setMeta(cur.ino, hdr, sIFDIR)
			}
			hidden = true
			if !isDir && cur.isDir() {
				// This layer replaces the directory with a non-directory
				// (which the upper layer's directory hides): what this layer
				// put in the directory before is gone too.
				purgeLayer(cur, layer)
			}
		}
	}

	if hidden {
		return w.addGhost(st, hdr, key)
	}

	// Same-layer directory re-declared: update metadata, keep children.
	if cur != nil && isDir && cur.isDir() {
		cur.implicit, cur.woOnly = false, false
		return w.setMeta(cur.ino, hdr, sIFDIR)
	}

	nd := &node{name: name, layer: layer, opaque: -1}
	switch hdr.Typeflag {
	case tar.TypeDir:
		nd.ino = w.newInode(sIFDIR, timespec{})
		nd.children = map[string]*node{}
		if cur != nil {
			// It replaces a whiteout or non-directory of this layer, which
			// already deleted the lower content: a fresh directory.
			nd.opaque = layer
		}
		if err := w.setMeta(nd.ino, hdr, sIFDIR); err != nil {
			return err
		}
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse:
		nd.ino = w.newInode(sIFREG, timespec{})
		if err := w.setMeta(nd.ino, hdr, sIFREG); err != nil {
			return err
		}
		if err := w.writeData(nd.ino, tr, hdr.Size, hdr.Name); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if hdr.Linkname == "" {
			w.warn("%q: symlink with an empty target skipped", hdr.Name)
			return nil
		}
		if len(hdr.Linkname) >= blockSize {
			return fmt.Errorf("symlink target is %d bytes; the limit is %d", len(hdr.Linkname), blockSize-1)
		}
		nd.ino = w.newInode(sIFLNK, timespec{})
		if err := w.setMeta(nd.ino, hdr, sIFLNK); err != nil {
			return err
		}
		nd.ino.mode = sIFLNK | 0o777
		nd.ino.link = hdr.Linkname
		nd.ino.size = uint64(len(hdr.Linkname))
	case tar.TypeLink:
		target, err := w.linkTarget(st, hdr)
		if err != nil {
			return err
		}
		nd.ino = target
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		typ := map[byte]uint16{tar.TypeChar: sIFCHR, tar.TypeBlock: sIFBLK, tar.TypeFifo: sIFIFO}[hdr.Typeflag]
		nd.ino = w.newInode(typ, timespec{})
		if err := w.setMeta(nd.ino, hdr, typ); err != nil {
			return err
		}
		if typ != sIFIFO {
			if hdr.Devmajor < 0 || hdr.Devminor < 0 || hdr.Devmajor > 0xFFF || hdr.Devminor > 0xFFFFF {
				return fmt.Errorf("device number %d:%d out of range", hdr.Devmajor, hdr.Devminor)
			}
			nd.ino.devMajor, nd.ino.devMinor = uint32(hdr.Devmajor), uint32(hdr.Devminor)
		}
	default:
		w.warn("%q: tar entry type %q is not a file, directory, link, device or FIFO (sockets cannot live in an image); skipped", hdr.Name, hdr.Typeflag)
		return nil
	}
	parent.children[name] = nd
	return nil
}

// dropWhiteoutDirs removes d's children that only earlier whiteouts of
// layer implied: they are not the layer's content, so a whiteout of d (or an
// opaque marker in d) deletes them like any lower content.
func dropWhiteoutDirs(d *node, layer int) {
	for name, ch := range d.children {
		switch {
		case ch.layer == layer && ch.woOnly:
			delete(d.children, name)
		case ch.isDir():
			dropWhiteoutDirs(ch, layer)
		}
	}
}

// purgeLayer removes every descendant of d that layer put there.
func purgeLayer(d *node, layer int) {
	for name, ch := range d.children {
		switch {
		case ch.layer == layer:
			delete(d.children, name)
		case ch.isDir():
			purgeLayer(ch, layer)
		}
	}
}

// addGhost remembers an entry hidden by an upper layer, in case a later hard
// link of the same layer refers to it.
func (w *Writer) addGhost(st *layerState, hdr *tar.Header, key string) error {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse:
		ino := &inode{mode: sIFREG}
		if err := w.setMeta(ino, hdr, sIFREG); err != nil {
			return err
		}
		ino.size = uint64(hdr.Size)
		ino.needData = hdr.Size > 0
		ino.ghostOf = key
		ino.ghostIdx = st.idx
		st.ghosts[key] = ino
	case tar.TypeLink:
		if t, err := w.linkTarget(st, hdr); err == nil {
			st.ghosts[key] = t
		}
	default:
		delete(st.ghosts, key)
	}
	return nil
}

func (w *Writer) linkTarget(st *layerState, hdr *tar.Header) (*inode, error) {
	tparts, err := cleanPath(hdr.Linkname)
	if err != nil || len(tparts) == 0 {
		return nil, fmt.Errorf("hard link to %q: not a file", hdr.Linkname)
	}
	key := strings.Join(tparts, "/")
	n := w.root
	for _, c := range tparts {
		if n == nil || n.children == nil {
			n = nil
			break
		}
		n = n.children[c]
	}
	var ino *inode
	if n != nil && n.layer == st.layer && !n.whiteout && !n.isDir() {
		ino = n.ino
	} else if g := st.ghosts[key]; g != nil {
		ino = g
		if !g.linked {
			g.linked = true
			if g.needData {
				st.needed[g.ghostIdx] = g
			}
			w.all = append(w.all, g)
		}
	}
	if ino == nil {
		if n != nil && n.isDir() {
			return nil, fmt.Errorf("hard link to directory %q is not allowed", hdr.Linkname)
		}
		return nil, fmt.Errorf("hard link to %q, which is not an earlier entry of this archive", hdr.Linkname)
	}
	return ino, nil
}

// setMeta copies a header's ownership, permissions, times and xattrs.
func (w *Writer) setMeta(ino *inode, hdr *tar.Header, typ uint16) error {
	if hdr.Uid < 0 || int64(hdr.Uid) > 0xFFFFFFFF || hdr.Gid < 0 || int64(hdr.Gid) > 0xFFFFFFFF {
		return fmt.Errorf("uid/gid %d/%d out of the 32-bit range", hdr.Uid, hdr.Gid)
	}
	ino.mode = typ | uint16(hdr.Mode&0o7777)
	ino.uid, ino.gid = uint32(hdr.Uid), uint32(hdr.Gid)
	ino.mtime = toTS(hdr.ModTime)
	ino.atime, ino.ctime = ino.mtime, ino.mtime
	if !hdr.AccessTime.IsZero() {
		ino.atime = toTS(hdr.AccessTime)
	}
	if !hdr.ChangeTime.IsZero() {
		ino.ctime = toTS(hdr.ChangeTime)
	}
	ino.crtim = ino.mtime
	ino.xattrs = ino.xattrs[:0]
	var keys []string
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		full := k[len("SCHILY.xattr."):]
		idx, name, ok := splitXattrName(full)
		if !ok || len(name) > 255 {
			w.warn("%q: xattr %q has no ext4 namespace; dropped", hdr.Name, full)
			continue
		}
		val := []byte(hdr.PAXRecords[k])
		if idx == 2 || idx == 3 {
			d, err := aclToDisk(val)
			if err != nil {
				w.warn("%q: xattr %q: %v; dropped", hdr.Name, full, err)
				continue
			}
			val = d
		}
		ino.xattrs = append(ino.xattrs, xattr{index: idx, name: name, value: val})
	}
	if _, _, err := splitXattrs(ino.xattrs); err != nil {
		return err
	}
	return nil
}

func toTS(t time.Time) timespec {
	if t.IsZero() {
		return timespec{}
	}
	sec := t.Unix()
	// ext4 with 256-byte inodes covers 1901..2446.
	const minSec, maxSec = -1 << 31, 1<<31 - 1 + 3<<32
	if sec < minSec {
		return timespec{sec: minSec}
	}
	if sec > maxSec {
		return timespec{sec: maxSec}
	}
	return timespec{sec: sec, nsec: uint32(t.Nanosecond())}
}

// uuid4 returns a random RFC 4122 version 4 UUID.
func uuid4() [16]byte {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0F | 0x40
	u[8] = u[8]&0x3F | 0x80
	return u
}
