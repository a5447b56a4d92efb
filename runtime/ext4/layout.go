package ext4

import (
	"errors"
	"fmt"
	"sort"
)

// Close lays out all metadata after the file data and writes it: directory
// blocks, extent tree leaves, xattr blocks, slow symlinks, then every group's
// block bitmap, inode bitmap and inode table, then the group descriptors and
// the superblock last. It does not fsync; callers that publish the image
// should f.Sync() first.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		w.dw.close()
		return w.err
	}
	if err := w.finish(); err != nil {
		w.dw.close()
		w.err = err
		return err
	}
	return nil
}

func (w *Writer) finish() error {
	// lost+found must exist for e2fsck.
	lf := w.root.children["lost+found"]
	if lf == nil || lf.whiteout || lf.woOnly {
		lf = &node{name: "lost+found", ino: w.newInode(sIFDIR|0o700, w.nowTS()), children: map[string]*node{}, opaque: -1}
		w.root.children["lost+found"] = lf
	}

	// Number inodes in tree order and count links.
	order := []*inode{w.root.ino}
	w.root.ino.num = rootIno
	w.root.ino.reached = true
	lf.ino.num = firstIno
	lf.ino.reached = true
	order = append(order, lf.ino)
	next := uint32(firstIno + 1)
	var overflow bool
	var walk func(d *node, parent *inode)
	walk = func(d *node, parent *inode) {
		subdirs := uint32(0)
		for _, ch := range d.children {
			if ch.whiteout || ch.woOnly {
				continue
			}
			if !ch.ino.reached {
				ch.ino.reached = true
				if ch.ino.num == 0 {
					if next == 0 {
						overflow = true
					}
					ch.ino.num = next
					next++
					order = append(order, ch.ino)
				}
			}
			if ch.isDir() {
				subdirs++
				walk(ch, d.ino)
			} else {
				ch.ino.nlink++
			}
		}
		d.ino.nlink = 2 + subdirs
		if d.ino.nlink > maxLinks {
			d.ino.nlink = 1 // dir_nlink: "many"
		}
	}
	walk(w.root, w.root.ino)
	if overflow {
		return errors.New("more than 2^32 files")
	}
	for _, ino := range order {
		if !ino.isDir() && ino.nlink > maxLinks {
			return fmt.Errorf("a file has %d hard links; ext4 allows %d", ino.nlink, maxLinks)
		}
		if ino.needData {
			return fmt.Errorf("hard link target %q: its data was never read", ino.ghostOf)
		}
	}
	usedInodes := uint64(next - 1)

	// Inode count and table geometry.
	want := uint64(w.opts.Inodes)
	if want == 0 {
		want = max(w.blocks*blockSize/(64<<10), usedInodes+min(65536, w.blocks*blockSize/(16<<10)))
	}
	if usedInodes > want {
		return fmt.Errorf("the tree has %d files but the image has %d inodes (raise the inode count)", usedInodes-firstIno+1, want)
	}
	ipg := (want + w.groups - 1) / w.groups
	ipg = (ipg + 15) &^ 15 // whole inode-table blocks, bitmap bytes
	if ipg > maxInodesPG {
		ipg = maxInodesPG
	}
	if ipg*w.groups > 1<<32-1 {
		ipg = ((1<<32 - 1) / w.groups) &^ 15
	}
	if usedInodes > ipg*w.groups {
		return fmt.Errorf("the tree has %d files but an image of %d MiB holds at most %d (raise --size)", usedInodes-firstIno+1, w.blocks>>8, ipg*w.groups)
	}
	totalInodes := ipg * w.groups

	// Metadata blocks: directories, extent leaves, xattr blocks, long symlinks.
	var buildDir func(d *node, parent *inode) error
	buildDir = func(d *node, parent *inode) error {
		b := buildDirBlocks(d, parent)
		if err := w.placeBlocks(d.ino, b); err != nil {
			return err
		}
		names := make([]string, 0, len(d.children))
		for name, ch := range d.children {
			if ch.isDir() && !ch.woOnly {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		for _, name := range names {
			if err := buildDir(d.children[name], d.ino); err != nil {
				return err
			}
		}
		return nil
	}
	if err := buildDir(w.root, w.root.ino); err != nil {
		return err
	}
	for _, ino := range order {
		if ino.mode&sIFMT == sIFLNK && len(ino.link) >= fastSymlinkMax {
			b := make([]byte, blockSize)
			copy(b, ino.link)
			if err := w.placeBlocks(ino, b); err != nil {
				return err
			}
		}
	}
	xattrBlk := make(map[*inode]uint32)
	extentLeaves := make(map[*inode][]uint32)
	for _, ino := range order {
		if ino.nblocks > 0 {
			leaves, err := w.writeExtentLeaves(ino)
			if err != nil {
				return err
			}
			if leaves != nil {
				extentLeaves[ino] = leaves
			}
		}
		if len(ino.xattrs) > 0 {
			_, blk, err := splitXattrs(ino.xattrs)
			if err != nil {
				return err
			}
			if len(blk) > 0 {
				start, err := w.dw.writeBlocks(buildXattrBlock(blk))
				if err != nil {
					return err
				}
				xattrBlk[ino] = uint32(start)
			}
		}
	}

	// Bitmaps and inode tables after everything else.
	itBlocks := ipg * inodeSize / blockSize
	bbStart := w.dw.cursor
	ibStart := bbStart + w.groups
	itStart := ibStart + w.groups
	end := itStart + w.groups*itBlocks
	if end > w.blocks {
		return fmt.Errorf("image too small: the tree and its metadata need %d MiB (raise --size)", (end+255)>>8)
	}
	if err := w.dw.close(); err != nil {
		return fmt.Errorf("write image: %w", err)
	}

	// Which blocks are in use: everything below `end`, except the data of
	// inodes that later entries replaced.
	var dead [][2]uint64
	for _, ino := range w.all {
		if !ino.reached && ino.nblocks > 0 {
			dead = append(dead, [2]uint64{ino.start, ino.start + ino.nblocks})
		}
	}
	sort.Slice(dead, func(i, j int) bool { return dead[i][0] < dead[j][0] })
	w.punch(dead)

	// Inode tables, written group by group (only groups with used inodes).
	// order is sorted by inode number (root 2, lost+found 11, then 12, 13, …).
	usedDirs := make([]uint32, w.groups)
	buf := make([]byte, itBlocks*blockSize)
	k := 0
	for g := uint64(0); g*ipg < usedInodes; g++ {
		clear(buf)
		first := g*ipg + 1
		for ; k < len(order) && uint64(order[k].num) < first+ipg; k++ {
			ino := order[k]
			n := uint64(ino.num)
			w.encodeInode(buf[(n-first)*inodeSize:(n-first+1)*inodeSize], ino, extentLeaves[ino], xattrBlk[ino])
			if ino.isDir() {
				usedDirs[g]++
			}
		}
		// Only write up to the last used inode's block: the rest is a hole.
		lastOff := (min(first+ipg, usedInodes+1) - first) * inodeSize
		lastOff = (lastOff + blockSize - 1) &^ (blockSize - 1)
		if _, err := w.f.WriteAt(buf[:lastOff], int64(itStart+g*itBlocks)<<blockShift); err != nil {
			return fmt.Errorf("write inode table: %w", err)
		}
	}

	// Inode bitmaps: used inodes 1..usedInodes, padding bits set. Groups
	// without used inodes are flagged INODE_UNINIT (uninit_bg): their bitmap
	// is never read, so it stays a hole.
	freeInodes := make([]uint32, w.groups)
	usedInGroup := make([]uint64, w.groups)
	const batch = 256
	ib := make([]byte, 0, batch*blockSize)
	var ibAt uint64
	for g := uint64(0); g < w.groups && g*ipg < usedInodes; g++ {
		blk := make([]byte, blockSize)
		n := min(usedInodes-g*ipg, ipg)
		usedInGroup[g] = n
		setBits(blk, 0, n)
		setBits(blk, ipg, blockSize*8)
		if len(ib) == 0 {
			ibAt = ibStart + g
		}
		ib = append(ib, blk...)
		if len(ib) == cap(ib) {
			if _, err := w.f.WriteAt(ib, int64(ibAt)<<blockShift); err != nil {
				return fmt.Errorf("write inode bitmaps: %w", err)
			}
			ib = ib[:0]
		}
	}
	if len(ib) > 0 {
		if _, err := w.f.WriteAt(ib, int64(ibAt)<<blockShift); err != nil {
			return fmt.Errorf("write inode bitmaps: %w", err)
		}
	}
	for g := range freeInodes {
		freeInodes[g] = uint32(ipg - usedInGroup[g])
	}

	// Block bitmaps: write only groups that have a bit set.
	freeBlocks := make([]uint32, w.groups)
	var totalFree uint64
	blk := make([]byte, blockSize)
	di := 0
	for g := uint64(0); g < w.groups; g++ {
		lo := g * blocksPerGroup
		hi := min(lo+blocksPerGroup, w.blocks)
		clear(blk)
		if lo < end {
			setBits(blk, 0, min(end, hi)-lo)
		}
		for di < len(dead) && dead[di][1] <= lo {
			di++
		}
		for k := di; k < len(dead) && dead[k][0] < hi; k++ {
			clearBits(blk, max(dead[k][0], lo)-lo, min(dead[k][1], hi)-lo)
		}
		nused := countBits(blk)
		if hi-lo < blocksPerGroup {
			setBits(blk, hi-lo, blocksPerGroup) // padding past the end
		}
		freeBlocks[g] = uint32(hi - lo - nused)
		totalFree += hi - lo - nused
		if hi-lo < blocksPerGroup || nused > 0 {
			if _, err := w.f.WriteAt(blk, int64(bbStart+g)<<blockShift); err != nil {
				return fmt.Errorf("write block bitmap: %w", err)
			}
		}
	}

	// Group descriptors.
	gdt := make([]byte, w.gdtBlk*blockSize)
	for g := uint64(0); g < w.groups; g++ {
		d := gdt[g*descSize:]
		le.PutUint32(d[gdBlockBitmap:], uint32(bbStart+g))
		le.PutUint32(d[gdInodeBitmap:], uint32(ibStart+g))
		le.PutUint32(d[gdInodeTable:], uint32(itStart+g*itBlocks))
		le.PutUint16(d[gdFreeBlocks:], uint16(freeBlocks[g]))
		le.PutUint16(d[gdFreeInodes:], uint16(freeInodes[g]))
		le.PutUint16(d[gdUsedDirs:], uint16(usedDirs[g]))
		// Inode tables are holes, i.e. zeroed: the kernel must not lazily
		// zero them (that would fill the sparse file).
		flags := uint16(bgItableZeroed)
		if usedInGroup[g] == 0 {
			flags |= bgInodeUninit
		}
		le.PutUint16(d[gdFlags:], flags)
		le.PutUint16(d[gdItableUnused:], uint16(ipg-usedInGroup[g]))
		le.PutUint16(d[gdChecksum:], groupDescCsum(w.uuid, uint32(g), d[:descSize]))
	}
	if _, err := w.f.WriteAt(gdt, blockSize); err != nil {
		return fmt.Errorf("write group descriptors: %w", err)
	}

	sb := w.superblock(totalInodes, ipg, totalFree, totalInodes-usedInodes)
	if _, err := w.f.WriteAt(sb, 1024); err != nil {
		return fmt.Errorf("write superblock: %w", err)
	}
	return nil
}

// placeBlocks writes b (a block multiple) as ino's contiguous data.
func (w *Writer) placeBlocks(ino *inode, b []byte) error {
	start, err := w.dw.writeBlocks(b)
	if err != nil {
		return err
	}
	ino.start, ino.nblocks = start, uint64(len(b))>>blockShift
	if ino.isDir() {
		ino.size = uint64(len(b))
	}
	return nil
}

// buildDirBlocks serialises a linear directory: ".", "..", then the children
// sorted by name. The last entry of each block stretches to the block's end.
func buildDirBlocks(d *node, parent *inode) []byte {
	names := make([]string, 0, len(d.children))
	for name, ch := range d.children {
		if !ch.whiteout && !ch.woOnly {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	out := make([]byte, blockSize)
	blk := out
	off, lastOff := 0, -1
	add := func(num uint32, name string, ft uint8) {
		rl := (8 + len(name) + 3) &^ 3
		if off+rl > blockSize {
			le.PutUint16(blk[lastOff+4:], uint16(blockSize-lastOff))
			out = append(out, make([]byte, blockSize)...)
			blk = out[len(out)-blockSize:]
			off = 0
		}
		e := blk[off:]
		le.PutUint32(e, num)
		le.PutUint16(e[4:], uint16(rl))
		e[6] = uint8(len(name))
		e[7] = ft
		copy(e[8:], name)
		lastOff = off
		off += rl
	}
	add(d.ino.num, ".", ftDir)
	add(parent.num, "..", ftDir)
	for _, name := range names {
		ch := d.children[name]
		add(ch.ino.num, name, fileType(ch.ino.mode))
	}
	le.PutUint16(blk[lastOff+4:], uint16(blockSize-lastOff))
	return out
}

// extentLimit is the longest extent the writer emits (a variable so tests
// can force deep trees with small files).
var extentLimit uint64 = maxExtentLen

// extents splits an inode's contiguous run into extents of at most 32768 blocks.
func (ino *inode) extents() [][3]uint64 { // logical, physical, length
	var ex [][3]uint64
	for done := uint64(0); done < ino.nblocks; {
		n := min(ino.nblocks-done, extentLimit)
		ex = append(ex, [3]uint64{done, ino.start + done, n})
		done += n
	}
	return ex
}

// writeExtentLeaves writes leaf blocks for inodes with more than four
// extents (a depth-1 tree) and returns their block numbers.
func (w *Writer) writeExtentLeaves(ino *inode) ([]uint32, error) {
	ex := ino.extents()
	if len(ex) <= extentsInInode {
		return nil, nil
	}
	nleaves := (len(ex) + extentsInBlock - 1) / extentsInBlock
	if nleaves > extentsInInode {
		return nil, fmt.Errorf("file of %d MiB is too large (max %d MiB)", ino.size>>20, extentsInInode*extentsInBlock*extentLimit/256)
	}
	buf := make([]byte, nleaves*blockSize)
	for l := 0; l < nleaves; l++ {
		part := ex[l*extentsInBlock : min((l+1)*extentsInBlock, len(ex))]
		b := buf[l*blockSize:]
		putExtentHeader(b, len(part), extentsInBlock, 0)
		for i, e := range part {
			putExtent(b[12+12*i:], e)
		}
	}
	start, err := w.dw.writeBlocks(buf)
	if err != nil {
		return nil, err
	}
	leaves := make([]uint32, nleaves)
	for i := range leaves {
		leaves[i] = uint32(start) + uint32(i)
	}
	return leaves, nil
}

func putExtentHeader(b []byte, entries, maxEntries, depth int) {
	le.PutUint16(b[0:], extentMagic)
	le.PutUint16(b[2:], uint16(entries))
	le.PutUint16(b[4:], uint16(maxEntries))
	le.PutUint16(b[6:], uint16(depth))
	le.PutUint32(b[8:], 0)
}

func putExtent(b []byte, e [3]uint64) {
	le.PutUint32(b[0:], uint32(e[0]))
	le.PutUint16(b[4:], uint16(e[2]))
	le.PutUint16(b[6:], uint16(e[1]>>32))
	le.PutUint32(b[8:], uint32(e[1]))
}

func (w *Writer) encodeInode(b []byte, ino *inode, leaves []uint32, xblk uint32) {
	le.PutUint16(b[inMode:], ino.mode)
	le.PutUint16(b[inUID:], uint16(ino.uid))
	le.PutUint16(b[inUIDHi:], uint16(ino.uid>>16))
	le.PutUint16(b[inGID:], uint16(ino.gid))
	le.PutUint16(b[inGIDHi:], uint16(ino.gid>>16))
	le.PutUint32(b[inSizeLo:], uint32(ino.size))
	le.PutUint32(b[inSizeHi:], uint32(ino.size>>32))
	le.PutUint16(b[inLinks:], uint16(ino.nlink))
	for _, t := range []struct {
		ts       timespec
		lo, extr int
	}{{ino.atime, inAtime, inAtimeExtra}, {ino.mtime, inMtime, inMtimeExtra}, {ino.ctime, inCtime, inCtimeExtra}, {ino.crtim, inCrtime, inCrtimeExt}} {
		lo, ex := t.ts.encode()
		le.PutUint32(b[t.lo:], lo)
		le.PutUint32(b[t.extr:], ex)
	}
	le.PutUint16(b[inExtraIsize:], extraIsize)

	blocks := ino.nblocks + uint64(len(leaves))
	if xblk != 0 {
		blocks++
		le.PutUint32(b[inFileACL:], xblk)
	}
	sectors := blocks * (blockSize / 512)
	le.PutUint32(b[inBlocksLo:], uint32(sectors))
	le.PutUint16(b[inBlocksHi:], uint16(sectors>>32))

	ib := b[inBlock : inBlock+60]
	switch ino.mode & sIFMT {
	case sIFREG, sIFDIR:
		w.putExtentRoot(b, ib, ino, leaves)
	case sIFLNK:
		if len(ino.link) < fastSymlinkMax {
			copy(ib, ino.link)
		} else {
			w.putExtentRoot(b, ib, ino, nil)
		}
	case sIFCHR, sIFBLK:
		ma, mi := ino.devMajor, ino.devMinor
		if ma < 256 && mi < 256 {
			le.PutUint32(ib[0:], ma<<8|mi)
		} else {
			le.PutUint32(ib[4:], mi&0xFF|ma<<8|(mi&^0xFF)<<12)
		}
	}

	if len(ino.xattrs) > 0 {
		inline, _, _ := splitXattrs(ino.xattrs)
		if len(inline) > 0 {
			region := b[inXattrStart:]
			le.PutUint32(region, xattrMagic)
			packXattrs(region[4:], 0, 0, inline)
		}
	}
}

func (w *Writer) putExtentRoot(b, ib []byte, ino *inode, leaves []uint32) {
	le.PutUint32(b[inFlags:], inodeFlagExtents)
	if leaves != nil {
		putExtentHeader(ib, len(leaves), extentsInInode, 1)
		ex := ino.extents()
		for i, leaf := range leaves {
			e := ib[12+12*i:]
			le.PutUint32(e[0:], uint32(ex[i*extentsInBlock][0]))
			le.PutUint32(e[4:], leaf)
			le.PutUint16(e[8:], 0)
		}
		return
	}
	ex := ino.extents()
	putExtentHeader(ib, len(ex), extentsInInode, 0)
	for i, e := range ex {
		putExtent(ib[12+12*i:], e)
	}
}

func (w *Writer) superblock(inodes, ipg, freeBlocks, freeInodes uint64) []byte {
	sb := make([]byte, 1024)
	now := uint32(w.now.Unix())
	le.PutUint32(sb[sbInodesCount:], uint32(inodes))
	le.PutUint32(sb[sbBlocksCount:], uint32(w.blocks))
	le.PutUint32(sb[sbRBlocksCount:], 0)
	le.PutUint32(sb[sbFreeBlocks:], uint32(freeBlocks))
	le.PutUint32(sb[sbFreeInodes:], uint32(freeInodes))
	le.PutUint32(sb[sbFirstDataBlock:], 0)
	le.PutUint32(sb[sbLogBlockSize:], blockShift-10)
	le.PutUint32(sb[sbLogClusterSize:], blockShift-10)
	le.PutUint32(sb[sbBlocksPerGroup:], blocksPerGroup)
	le.PutUint32(sb[sbClustersPerGroup:], blocksPerGroup)
	le.PutUint32(sb[sbInodesPerGroup:], uint32(ipg))
	le.PutUint32(sb[sbWtime:], now)
	le.PutUint16(sb[sbMaxMntCount:], 0xFFFF)
	le.PutUint16(sb[sbMagic:], 0xEF53)
	le.PutUint16(sb[sbState:], 1)  // cleanly unmounted
	le.PutUint16(sb[sbErrors:], 1) // continue
	le.PutUint32(sb[sbLastCheck:], now)
	le.PutUint32(sb[sbCreatorOS:], 0) // Linux
	le.PutUint32(sb[sbRevLevel:], 1)  // dynamic inode sizes
	le.PutUint32(sb[sbFirstIno:], firstIno)
	le.PutUint16(sb[sbInodeSize:], inodeSize)
	le.PutUint32(sb[sbFeatureCompat:], compatExtAttr|compatSparseSuper2)
	le.PutUint32(sb[sbFeatureIncompat:], incompatFiletype|incompatExtents|incompatFlexBG)
	le.PutUint32(sb[sbFeatureROCompat:], roCompatLargeFile|roCompatHugeFile|roCompatGdtCsum|roCompatDirNlink|roCompatExtraIsize)
	copy(sb[sbUUID:], w.uuid[:])
	h := uuid4()
	copy(sb[sbHashSeed:], h[:])
	sb[sbDefHashVersion] = 1 // half_md4, should dir_index be enabled later
	le.PutUint32(sb[sbMkfsTime:], now)
	le.PutUint16(sb[sbMinExtraIsize:], extraIsize)
	le.PutUint16(sb[sbWantExtraIsize:], extraIsize)
	le.PutUint32(sb[sbFlags:], 2) // unsigned directory hash
	sb[sbLogGroupsPerFlex] = 4
	// sparse_super2 with both backup groups 0: no superblock backups, so the
	// data area is one contiguous run.
	return sb
}

func setBits(b []byte, lo, hi uint64) {
	for ; lo < hi && lo&7 != 0; lo++ {
		b[lo>>3] |= 1 << (lo & 7)
	}
	for ; lo+8 <= hi; lo += 8 {
		b[lo>>3] = 0xFF
	}
	for ; lo < hi; lo++ {
		b[lo>>3] |= 1 << (lo & 7)
	}
}

func clearBits(b []byte, lo, hi uint64) {
	for ; lo < hi && lo&7 != 0; lo++ {
		b[lo>>3] &^= 1 << (lo & 7)
	}
	for ; lo+8 <= hi; lo += 8 {
		b[lo>>3] = 0
	}
	for ; lo < hi; lo++ {
		b[lo>>3] &^= 1 << (lo & 7)
	}
}

func countBits(b []byte) uint64 {
	var n uint64
	for _, x := range b {
		for ; x != 0; x &= x - 1 {
			n++
		}
	}
	return n
}
