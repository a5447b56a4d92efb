// Package ext4 writes and reads ext4 filesystem images in pure Go.
//
// The writer turns tar streams (one tarball, or an OCI image's layers) into a
// sparse ext4 image in one streaming pass: file data is written contiguously
// as it arrives, and all metadata (directories, extent trees, xattr blocks,
// bitmaps, inode tables) is laid out after the data when the writer closes.
// That layout is only legal with flex_bg, which lets a group's bitmaps and
// inode table live anywhere on the disk.
//
// The image is a plain, writable ext4 (no journal, no metadata_csum) that the
// Linux kernel mounts read-write and that e2fsck accepts without complaint.
// Layout facts come from the kernel's Documentation/filesystems/ext4.
package ext4

import "encoding/binary"

const (
	blockSize      = 4096
	blockShift     = 12
	inodeSize      = 256
	blocksPerGroup = blockSize * 8 // one block bitmap block per group
	maxInodesPG    = blockSize * 8 // one inode bitmap block per group
	descSize       = 32            // no 64bit feature: 32-byte group descriptors
	extraIsize     = 32            // i_extra_isize: room for ns times, crtime, projid
	firstIno       = 11            // first non-reserved inode
	rootIno        = 2
	maxExtentLen   = 32768 // longest initialized extent
	extentsInInode = 4
	extentsInBlock = (blockSize - 12) / 12 // 340
	maxNameLen     = 255
	maxLinks       = 65000 // beyond this a directory's link count is 1 (dir_nlink)
	fastSymlinkMax = 60    // targets shorter than this live in i_block
)

// Feature flags (superblock s_feature_*).
const (
	compatExtAttr      = 0x0008
	compatSparseSuper2 = 0x0200

	incompatFiletype = 0x0002
	incompatExtents  = 0x0040
	incompatFlexBG   = 0x0200

	roCompatLargeFile  = 0x0002
	roCompatHugeFile   = 0x0008
	roCompatGdtCsum    = 0x0010 // uninit_bg: group descriptor checksums, *_UNINIT flags
	roCompatDirNlink   = 0x0020
	roCompatExtraIsize = 0x0040
)

// Inode mode type bits and flags.
const (
	sIFMT   = 0xF000
	sIFSOCK = 0xC000
	sIFLNK  = 0xA000
	sIFREG  = 0x8000
	sIFBLK  = 0x6000
	sIFDIR  = 0x4000
	sIFCHR  = 0x2000
	sIFIFO  = 0x1000

	inodeFlagExtents = 0x80000
	inodeFlagHuge    = 0x40000
	inodeFlagIndex   = 0x1000
	inodeFlagInline  = 0x10000000

	extentMagic = 0xF30A
	xattrMagic  = 0xEA020000
)

// Directory entry file types (filetype feature).
const (
	ftUnknown = 0
	ftReg     = 1
	ftDir     = 2
	ftChr     = 3
	ftBlk     = 4
	ftFifo    = 5
	ftSock    = 6
	ftSymlink = 7
)

func fileType(mode uint16) uint8 {
	switch mode & sIFMT {
	case sIFREG:
		return ftReg
	case sIFDIR:
		return ftDir
	case sIFCHR:
		return ftChr
	case sIFBLK:
		return ftBlk
	case sIFIFO:
		return ftFifo
	case sIFSOCK:
		return ftSock
	case sIFLNK:
		return ftSymlink
	}
	return ftUnknown
}

var le = binary.LittleEndian

// Superblock field offsets (relative to the superblock, which starts at byte 1024).
const (
	sbInodesCount      = 0x00
	sbBlocksCount      = 0x04
	sbRBlocksCount     = 0x08
	sbFreeBlocks       = 0x0C
	sbFreeInodes       = 0x10
	sbFirstDataBlock   = 0x14
	sbLogBlockSize     = 0x18
	sbLogClusterSize   = 0x1C
	sbBlocksPerGroup   = 0x20
	sbClustersPerGroup = 0x24
	sbInodesPerGroup   = 0x28
	sbMtime            = 0x2C
	sbWtime            = 0x30
	sbMntCount         = 0x34
	sbMaxMntCount      = 0x36
	sbMagic            = 0x38
	sbState            = 0x3A
	sbErrors           = 0x3C
	sbLastCheck        = 0x40
	sbCreatorOS        = 0x48
	sbRevLevel         = 0x4C
	sbFirstIno         = 0x54
	sbInodeSize        = 0x58
	sbFeatureCompat    = 0x5C
	sbFeatureIncompat  = 0x60
	sbFeatureROCompat  = 0x64
	sbUUID             = 0x68
	sbVolumeName       = 0x78
	sbHashSeed         = 0xEC
	sbDefHashVersion   = 0xFC
	sbDescSize         = 0xFE
	sbMkfsTime         = 0x108
	sbMinExtraIsize    = 0x15C
	sbWantExtraIsize   = 0x15E
	sbFlags            = 0x160
	sbLogGroupsPerFlex = 0x174
	sbBackupBGs        = 0x24C
)

// Group descriptor offsets (32-byte form).
const (
	gdBlockBitmap  = 0x00
	gdInodeBitmap  = 0x04
	gdInodeTable   = 0x08
	gdFreeBlocks   = 0x0C
	gdFreeInodes   = 0x0E
	gdUsedDirs     = 0x10
	gdFlags        = 0x12
	gdItableUnused = 0x1C
	gdChecksum     = 0x1E

	bgInodeUninit  = 0x1
	bgItableZeroed = 0x4
)

// crc16Table is the reflected CRC-16 (poly 0x8005) table that ext4's
// uninit_bg group descriptor checksum uses (Linux lib/crc16.c).
var crc16Table = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i)
		for k := 0; k < 8; k++ {
			if c&1 != 0 {
				c = c>>1 ^ 0xA001
			} else {
				c >>= 1
			}
		}
		t[i] = c
	}
	return t
}()

func crc16(crc uint16, b []byte) uint16 {
	for _, x := range b {
		crc = crc>>8 ^ crc16Table[byte(crc)^x]
	}
	return crc
}

// groupDescCsum is bg_checksum: crc16 over the UUID, the group number and
// the descriptor up to the checksum field.
func groupDescCsum(uuid [16]byte, group uint32, desc []byte) uint16 {
	crc := crc16(0xFFFF, uuid[:])
	crc = crc16(crc, le.AppendUint32(nil, group))
	return crc16(crc, desc[:gdChecksum])
}

// Inode offsets.
const (
	inMode       = 0x00
	inUID        = 0x02
	inSizeLo     = 0x04
	inAtime      = 0x08
	inCtime      = 0x0C
	inMtime      = 0x10
	inGID        = 0x18
	inLinks      = 0x1A
	inBlocksLo   = 0x1C
	inFlags      = 0x20
	inBlock      = 0x28
	inGeneration = 0x64
	inFileACL    = 0x68
	inSizeHi     = 0x6C
	inBlocksHi   = 0x74
	inFileACLHi  = 0x76
	inUIDHi      = 0x78
	inGIDHi      = 0x7A
	inExtraIsize = 0x80
	inCtimeExtra = 0x84
	inMtimeExtra = 0x88
	inAtimeExtra = 0x8C
	inCrtime     = 0x90
	inCrtimeExt  = 0x94
	inXattrStart = 128 + extraIsize // in-inode xattr area (magic first)
)

// timespec is a file time as ext4 stores it: seconds (with two epoch bits
// beyond 32) and nanoseconds.
type timespec struct {
	sec  int64
	nsec uint32
}

// encode returns the 32-bit seconds field and the *_extra field.
func (t timespec) encode() (uint32, uint32) {
	lo := int32(t.sec)
	epoch := uint32((t.sec-int64(lo))>>32) & 3
	return uint32(lo), epoch | t.nsec<<2
}

func decodeTime(lo, extra uint32, hasExtra bool) timespec {
	sec := int64(int32(lo))
	if !hasExtra {
		return timespec{sec: sec}
	}
	sec += int64(extra&3) << 32
	return timespec{sec: sec, nsec: extra >> 2}
}
