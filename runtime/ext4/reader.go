package ext4

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

// Reader reads an ext4 image: enough to walk the tree, read files, links
// and xattrs (tests, and `berth export`). It understands extent-mapped and
// classic block-mapped inodes, linear and hashed directories, inline data,
// 32- and 64-byte group descriptors; it ignores the journal.
type Reader struct {
	r           io.ReaderAt
	bs          uint64
	ipg         uint32
	inodeSize   uint32
	descSize    uint32
	groups      uint32
	incompat    uint32
	inodeTables []uint64
	usage       Usage
}

// Usage is what the superblock says about space and inodes.
type Usage struct {
	Blocks, FreeBlocks uint64
	BlockSize          uint64
	Inodes, FreeInodes uint64
}

// Usage returns the filesystem's size and free space (from the superblock).
func (rd *Reader) Usage() Usage { return rd.usage }

// Entry is one file in the image.
type Entry struct {
	Path     string // slash separated, no leading slash; "" for the root
	Ino      uint32
	Mode     fs.FileMode // Go mode bits (type, permissions, setuid/setgid/sticky)
	Uid, Gid uint32
	Size     int64
	Nlink    uint32
	Atime    time.Time
	Mtime    time.Time
	Ctime    time.Time
	Link     string // symlink target
	Major    uint32 // devices
	Minor    uint32
	Xattrs   map[string][]byte // full names ("user.foo"); ACLs in the getxattr form
	raw      []byte
}

// Open reads the superblock and group descriptors of the image in r.
func Open(r io.ReaderAt) (*Reader, error) {
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, 1024); err != nil {
		return nil, fmt.Errorf("read superblock: %w", err)
	}
	if le.Uint16(sb[sbMagic:]) != 0xEF53 {
		return nil, errors.New("not an ext2/3/4 filesystem (bad superblock magic)")
	}
	rd := &Reader{r: r}
	logbs := le.Uint32(sb[sbLogBlockSize:])
	if logbs > 6 {
		return nil, fmt.Errorf("unsupported block size 2^%d", 10+logbs)
	}
	rd.bs = 1024 << logbs
	rd.ipg = le.Uint32(sb[sbInodesPerGroup:])
	rd.inodeSize = 128
	if le.Uint32(sb[sbRevLevel:]) >= 1 {
		rd.inodeSize = uint32(le.Uint16(sb[sbInodeSize:]))
	}
	rd.incompat = le.Uint32(sb[sbFeatureIncompat:])
	rd.descSize = 32
	if rd.incompat&0x80 != 0 { // 64bit
		rd.descSize = uint32(le.Uint16(sb[sbDescSize:]))
		if rd.descSize < 32 {
			rd.descSize = 32
		}
	}
	bpg := le.Uint32(sb[sbBlocksPerGroup:])
	blocks := uint64(le.Uint32(sb[sbBlocksCount:]))
	if rd.incompat&0x80 != 0 {
		blocks |= uint64(le.Uint32(sb[0x150:])) << 32
	}
	first := uint64(le.Uint32(sb[sbFirstDataBlock:]))
	if bpg == 0 || rd.ipg == 0 || rd.inodeSize < 128 || uint64(rd.inodeSize) > rd.bs || rd.inodeSize&(rd.inodeSize-1) != 0 || rd.descSize > 1024 || blocks <= first {
		return nil, errors.New("corrupt superblock (impossible geometry)")
	}
	groups := (blocks - first + uint64(bpg) - 1) / uint64(bpg)
	if groups > 1<<20 {
		return nil, fmt.Errorf("corrupt or unsupported superblock: %d block groups", groups)
	}
	rd.groups = uint32(groups)
	rd.usage = Usage{Blocks: blocks, FreeBlocks: uint64(le.Uint32(sb[sbFreeBlocks:])), BlockSize: rd.bs,
		Inodes: uint64(le.Uint32(sb[sbInodesCount:])), FreeInodes: uint64(le.Uint32(sb[sbFreeInodes:]))}
	if rd.incompat&0x80 != 0 {
		rd.usage.FreeBlocks |= uint64(le.Uint32(sb[0x158:])) << 32
	}
	gdt := make([]byte, uint64(rd.groups)*uint64(rd.descSize))
	if _, err := r.ReadAt(gdt, int64((first+1)*rd.bs)); err != nil {
		return nil, fmt.Errorf("read group descriptors: %w", err)
	}
	rd.inodeTables = make([]uint64, rd.groups)
	for g := range rd.groups {
		d := gdt[g*rd.descSize:]
		t := uint64(le.Uint32(d[gdInodeTable:]))
		if rd.descSize >= 64 {
			t |= uint64(le.Uint32(d[0x28:])) << 32
		}
		rd.inodeTables[g] = t
	}
	return rd, nil
}

func (rd *Reader) readInode(num uint32) ([]byte, error) {
	if num == 0 {
		return nil, errors.New("inode 0")
	}
	g := (num - 1) / rd.ipg
	if g >= rd.groups {
		return nil, fmt.Errorf("inode %d out of range", num)
	}
	idx := uint64((num - 1) % rd.ipg)
	b := make([]byte, rd.inodeSize)
	off := rd.inodeTables[g]*rd.bs + idx*uint64(rd.inodeSize)
	if _, err := rd.r.ReadAt(b, int64(off)); err != nil {
		return nil, fmt.Errorf("read inode %d: %w", num, err)
	}
	return b, nil
}

// Stat returns the entry for an inode (Path left empty).
func (rd *Reader) Stat(num uint32) (*Entry, error) {
	b, err := rd.readInode(num)
	if err != nil {
		return nil, err
	}
	e := &Entry{Ino: num, raw: b}
	mode := le.Uint16(b[inMode:])
	e.Uid = uint32(le.Uint16(b[inUID:])) | uint32(le.Uint16(b[inUIDHi:]))<<16
	e.Gid = uint32(le.Uint16(b[inGID:])) | uint32(le.Uint16(b[inGIDHi:]))<<16
	e.Size = int64(uint64(le.Uint32(b[inSizeLo:])) | uint64(le.Uint32(b[inSizeHi:]))<<32)
	e.Nlink = uint32(le.Uint16(b[inLinks:]))
	extra := 0
	if rd.inodeSize > 128 {
		extra = int(le.Uint16(b[inExtraIsize:]))
		if 128+extra > int(rd.inodeSize) {
			return nil, fmt.Errorf("inode %d: corrupt i_extra_isize %d", num, extra)
		}
	}
	tm := func(lo, ex int) time.Time {
		ts := decodeTime(le.Uint32(b[lo:]), 0, false)
		if 128+extra >= ex+4 {
			ts = decodeTime(le.Uint32(b[lo:]), le.Uint32(b[ex:]), true)
		}
		return time.Unix(ts.sec, int64(ts.nsec))
	}
	e.Atime = tm(inAtime, inAtimeExtra)
	e.Mtime = tm(inMtime, inMtimeExtra)
	e.Ctime = tm(inCtime, inCtimeExtra)
	e.Mode = fs.FileMode(mode & 0o777)
	if mode&0o4000 != 0 {
		e.Mode |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		e.Mode |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		e.Mode |= fs.ModeSticky
	}
	switch mode & sIFMT {
	case sIFDIR:
		e.Mode |= fs.ModeDir
	case sIFLNK:
		e.Mode |= fs.ModeSymlink
		t, err := rd.readLink(b, e.Size)
		if err != nil {
			return nil, err
		}
		e.Link = t
	case sIFCHR, sIFBLK:
		if mode&sIFMT == sIFCHR {
			e.Mode |= fs.ModeDevice | fs.ModeCharDevice
		} else {
			e.Mode |= fs.ModeDevice
		}
		old, nw := le.Uint32(b[inBlock:]), le.Uint32(b[inBlock+4:])
		if old != 0 {
			e.Major, e.Minor = old>>8&0xFF, old&0xFF
		} else {
			e.Major, e.Minor = nw>>8&0xFFF, nw&0xFF|nw>>12&0xFFF00
		}
	case sIFIFO:
		e.Mode |= fs.ModeNamedPipe
	case sIFSOCK:
		e.Mode |= fs.ModeSocket
	}
	x, err := rd.readXattrs(b, extra)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", num, err)
	}
	e.Xattrs = x
	return e, nil
}

func (rd *Reader) readLink(b []byte, size int64) (string, error) {
	flags := le.Uint32(b[inFlags:])
	blocks := uint64(le.Uint32(b[inBlocksLo:]))
	acl := le.Uint32(b[inFileACL:])
	if acl != 0 {
		blocks -= rd.bs / 512
	}
	if size < 0 || size > maxLinkSize {
		return "", fmt.Errorf("symlink target of %d bytes (max %d)", size, maxLinkSize)
	}
	if size < 60 && flags&inodeFlagExtents == 0 && (blocks == 0 || flags&inodeFlagInline != 0) {
		return string(b[inBlock : inBlock+size]), nil
	}
	data, err := rd.readAll(b, size)
	return string(data), err
}

func (rd *Reader) readXattrs(b []byte, extra int) (map[string][]byte, error) {
	var xs []xattr
	if start := 128 + extra; extra > 0 && start+4 <= len(b) && le.Uint32(b[start:]) == xattrMagic {
		in, err := parseXattrs(b[start+4:], 0, 0)
		if err != nil {
			return nil, err
		}
		xs = append(xs, in...)
	}
	if blk := uint64(le.Uint32(b[inFileACL:])) | uint64(le.Uint16(b[inFileACLHi:]))<<32; blk != 0 {
		buf := make([]byte, rd.bs)
		if _, err := rd.r.ReadAt(buf, int64(blk*rd.bs)); err != nil {
			return nil, fmt.Errorf("read xattr block: %w", err)
		}
		if le.Uint32(buf) != xattrMagic {
			return nil, errors.New("bad xattr block magic")
		}
		in, err := parseXattrs(buf, 32, 0)
		if err != nil {
			return nil, err
		}
		xs = append(xs, in...)
	}
	if len(xs) == 0 {
		return nil, nil
	}
	m := make(map[string][]byte, len(xs))
	for _, x := range xs {
		if x.index == 7 && x.name == "data" {
			continue // inline-data bookkeeping, not a user attribute
		}
		v := x.value
		if x.index == 2 || x.index == 3 {
			if c, err := aclFromDisk(v); err == nil {
				v = c
			}
		}
		m[joinXattrName(x.index, x.name)] = v
	}
	return m, nil
}

// mapping is one run of a file's blocks.
type mapping struct{ logical, physical, length uint64 }

// blockMap returns a file's block runs (extents or classic block maps) up
// to its size. The image may come from a guest (container export), so every
// walk is bounded: at most as many tree nodes and mapped blocks as the size
// needs, whatever loops or fan-out a corrupt tree has.
func (rd *Reader) blockMap(b []byte, size int64) ([]mapping, error) {
	if size < 0 {
		return nil, errors.New("negative file size")
	}
	maxBlocks := (uint64(size) + rd.bs - 1) / rd.bs
	flags := le.Uint32(b[inFlags:])
	ib := b[inBlock : inBlock+60]
	if flags&inodeFlagExtents != 0 {
		var out []mapping
		w := &extentWalk{rd: rd, out: &out, maxBlocks: maxBlocks, budget: min(maxBlocks+8, maxMapNodes)}
		err := w.walk(ib, 0)
		return out, err
	}
	// Classic direct/indirect block map.
	var out []mapping
	add := func(l, p uint64) {
		if p == 0 || l >= maxBlocks {
			return
		}
		if n := len(out); n > 0 && out[n-1].logical+out[n-1].length == l && out[n-1].physical+out[n-1].length == p {
			out[n-1].length++
			return
		}
		out = append(out, mapping{l, p, 1})
	}
	per := rd.bs / 4
	budget := uint64(maxMapNodes)
	var indirect func(blk uint64, level int, logical uint64) (uint64, error)
	indirect = func(blk uint64, level int, logical uint64) (uint64, error) {
		span := uint64(1)
		for i := 0; i < level; i++ {
			span *= per
		}
		if blk == 0 || logical >= maxBlocks {
			return logical + span*per, nil
		}
		if budget == 0 {
			return 0, errors.New("corrupt block map (more indirect blocks than any file has)")
		}
		budget--
		buf := make([]byte, rd.bs)
		if _, err := rd.r.ReadAt(buf, int64(blk*rd.bs)); err != nil {
			return 0, err
		}
		for i := uint64(0); i < per; i++ {
			p := uint64(le.Uint32(buf[i*4:]))
			if level == 0 {
				add(logical, p)
				logical++
				continue
			}
			var err error
			if logical, err = indirect(p, level-1, logical); err != nil {
				return 0, err
			}
		}
		return logical, nil
	}
	for i := 0; i < 12; i++ {
		add(uint64(i), uint64(le.Uint32(ib[i*4:])))
	}
	logical := uint64(12)
	for lvl := 0; lvl < 3; lvl++ {
		var err error
		if logical, err = indirect(uint64(le.Uint32(ib[(12+lvl)*4:])), lvl, logical); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type extentWalk struct {
	rd        *Reader
	out       *[]mapping
	maxBlocks uint64
	budget    uint64 // tree nodes left to visit
}

func (w *extentWalk) walk(node []byte, depth int) error {
	if depth > 5 || len(node) < 12 || le.Uint16(node) != extentMagic {
		return errors.New("corrupt extent tree")
	}
	if w.budget == 0 {
		return errors.New("corrupt extent tree (more nodes than the file size allows)")
	}
	w.budget--
	n := int(le.Uint16(node[2:]))
	d := le.Uint16(node[6:])
	if 12+12*n > len(node) {
		return errors.New("corrupt extent header")
	}
	for i := 0; i < n; i++ {
		e := node[12+12*i:]
		if d == 0 {
			l := uint64(le.Uint32(e))
			length := uint64(le.Uint16(e[4:]))
			if length > maxExtentLen { // uninitialized extent: reads as zeros
				continue
			}
			if l >= w.maxBlocks {
				continue
			}
			length = min(length, w.maxBlocks-l)
			p := uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))
			*w.out = append(*w.out, mapping{l, p, length})
			continue
		}
		p := uint64(le.Uint16(e[8:]))<<32 | uint64(le.Uint32(e[4:]))
		child := make([]byte, w.rd.bs)
		if _, err := w.rd.r.ReadAt(child, int64(p*w.rd.bs)); err != nil {
			return fmt.Errorf("read extent block: %w", err)
		}
		if err := w.walk(child, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// fileReader reads a file's content; holes read as zeros.
type fileReader struct {
	rd   *Reader
	m    []mapping
	size int64
	off  int64
}

func (f *fileReader) Read(p []byte) (int, error) {
	if f.off >= f.size {
		return 0, io.EOF
	}
	if int64(len(p)) > f.size-f.off {
		p = p[:f.size-f.off]
	}
	lb := uint64(f.off) / f.rd.bs
	within := uint64(f.off) % f.rd.bs
	for _, m := range f.m {
		if lb >= m.logical && lb < m.logical+m.length {
			avail := (m.logical+m.length-lb)*f.rd.bs - within
			if uint64(len(p)) > avail {
				p = p[:avail]
			}
			n, err := f.rd.r.ReadAt(p, int64((m.physical+lb-m.logical)*f.rd.bs+within))
			f.off += int64(n)
			if err == io.EOF && n == len(p) {
				err = nil
			}
			return n, err
		}
	}
	// A hole: zeros up to the next mapped block.
	next := uint64(f.size)
	for _, m := range f.m {
		if s := m.logical * f.rd.bs; s > uint64(f.off) && s < next {
			next = s
		}
	}
	if uint64(len(p)) > next-uint64(f.off) {
		p = p[:next-uint64(f.off)]
	}
	clear(p)
	f.off += int64(len(p))
	return len(p), nil
}

// OpenFile returns a reader of a regular file's content.
func (rd *Reader) OpenFile(e *Entry) (io.Reader, error) {
	b := e.raw
	if b == nil {
		var err error
		if b, err = rd.readInode(e.Ino); err != nil {
			return nil, err
		}
	}
	if le.Uint32(b[inFlags:])&inodeFlagInline != 0 {
		return nil, errors.New("inline-data files are not supported")
	}
	m, err := rd.blockMap(b, e.Size)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", e.Ino, err)
	}
	sort.Slice(m, func(i, j int) bool { return m[i].logical < m[j].logical })
	return &fileReader{rd: rd, m: m, size: e.Size}, nil
}

// Limits for metadata read whole into memory (directories, symlinks), and
// for the index blocks one file's map may have (a corrupt tree can loop).
const (
	maxMapNodes = 1 << 16
	maxDirSize  = 256 << 20
	maxLinkSize = 4096
)

func (rd *Reader) readAll(b []byte, size int64) ([]byte, error) {
	m, err := rd.blockMap(b, size)
	if err != nil {
		return nil, err
	}
	out := make([]byte, size)
	_, err = io.ReadFull(&fileReader{rd: rd, m: m, size: size}, out)
	return out, err
}

// dirent is one directory entry.
type dirent struct {
	ino  uint32
	name string
}

func (rd *Reader) readDir(e *Entry) ([]dirent, error) {
	b := e.raw
	if le.Uint32(b[inFlags:])&inodeFlagInline != 0 {
		return nil, errors.New("inline-data directories are not supported")
	}
	if e.Size > maxDirSize {
		return nil, fmt.Errorf("directory inode %d of %d bytes is over the %d MiB limit", e.Ino, e.Size, maxDirSize>>20)
	}
	data, err := rd.readAll(b, e.Size)
	if err != nil {
		return nil, err
	}
	var out []dirent
	for blk := uint64(0); blk*rd.bs < uint64(len(data)); blk++ {
		bb := data[blk*rd.bs : min((blk+1)*rd.bs, uint64(len(data)))]
		for off := 0; off+8 <= len(bb); {
			ino := le.Uint32(bb[off:])
			rl := int(le.Uint16(bb[off+4:]))
			nl := int(bb[off+6])
			if rl < 8 || off+rl > len(bb) || 8+nl > rl {
				return nil, fmt.Errorf("directory inode %d: corrupt entry", e.Ino)
			}
			if ino != 0 {
				name := string(bb[off+8 : off+8+nl])
				// Names with "/" or NUL cannot exist on Linux: a corrupt
				// (or hostile) image; skip them so exports stay inside their root.
				if name != "." && name != ".." && name != "" && !strings.ContainsAny(name, "/\x00") {
					out = append(out, dirent{ino, name})
				}
			}
			off += rl
		}
	}
	return out, nil
}

// Walk calls fn for every entry, parents before children, names sorted.
// The root comes first with Path "".
func (rd *Reader) Walk(fn func(e *Entry) error) error {
	root, err := rd.Stat(rootIno)
	if err != nil {
		return err
	}
	seen := map[uint32]bool{}
	var walk func(dir *Entry) error
	walk = func(dir *Entry) error {
		if seen[dir.Ino] {
			return fmt.Errorf("directory loop at %q", dir.Path)
		}
		seen[dir.Ino] = true
		if err := fn(dir); err != nil {
			return err
		}
		ents, err := rd.readDir(dir)
		if err != nil {
			return err
		}
		sort.Slice(ents, func(i, j int) bool { return ents[i].name < ents[j].name })
		for _, d := range ents {
			e, err := rd.Stat(d.ino)
			if err != nil {
				return err
			}
			e.Path = path.Join(dir.Path, d.name)
			if e.Mode.IsDir() {
				if err := walk(e); err != nil {
					return err
				}
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root)
}
