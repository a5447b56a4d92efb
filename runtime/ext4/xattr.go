package ext4

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// xattr is one extended attribute, split into ext4's name index and suffix.
type xattr struct {
	index uint8
	name  string
	value []byte
}

// xattr name indexes (ext4 on-disk prefixes).
var xattrPrefixes = []struct {
	index  uint8
	prefix string
}{
	{2, "system.posix_acl_access"},
	{3, "system.posix_acl_default"},
	{1, "user."},
	{4, "trusted."},
	{6, "security."},
	{7, "system."},
}

func splitXattrName(full string) (uint8, string, bool) {
	for _, p := range xattrPrefixes {
		if p.index == 2 || p.index == 3 {
			if full == p.prefix {
				return p.index, "", true
			}
			continue
		}
		if strings.HasPrefix(full, p.prefix) && len(full) > len(p.prefix) {
			return p.index, full[len(p.prefix):], true
		}
	}
	return 0, "", false
}

func joinXattrName(index uint8, name string) string {
	for _, p := range xattrPrefixes {
		if p.index == index {
			return p.prefix + name
		}
	}
	return fmt.Sprintf("unknown%d.%s", index, name)
}

func entrySize(x xattr) int { return (16 + len(x.name) + 3) &^ 3 }
func valueSize(x xattr) int { return (len(x.value) + 3) &^ 3 }
func xattrLess(a, b xattr) bool {
	if a.index != b.index {
		return a.index < b.index
	}
	if len(a.name) != len(b.name) {
		return len(a.name) < len(b.name)
	}
	return a.name < b.name
}

// xattrHash is ext4_xattr_hash_entry (the unsigned-char variant that current
// kernels write; e2fsck accepts it).
func xattrHash(x xattr) uint32 {
	var h uint32
	for i := 0; i < len(x.name); i++ {
		h = (h << 5) ^ (h >> 27) ^ uint32(x.name[i])
	}
	v := x.value
	for len(v) > 0 {
		var w [4]byte
		n := copy(w[:], v)
		v = v[n:]
		h = (h << 16) ^ (h >> 16) ^ le.Uint32(w[:])
	}
	return h
}

// packXattrs writes entries at entries[...] and values downward from the end
// of region; valueBase is the offset that e_value_offs is relative to.
// region must be zeroed. It returns the entry hashes.
func packXattrs(region []byte, entryOff, valueBase int, xs []xattr) []uint32 {
	hashes := make([]uint32, len(xs))
	vend := len(region)
	for i, x := range xs {
		vs := valueSize(x)
		vend -= vs
		copy(region[vend:], x.value)
		e := region[entryOff:]
		e[0] = uint8(len(x.name))
		e[1] = x.index
		le.PutUint16(e[2:], uint16(vend-valueBase))
		le.PutUint32(e[4:], 0)
		le.PutUint32(e[8:], uint32(len(x.value)))
		hashes[i] = xattrHash(x)
		le.PutUint32(e[12:], hashes[i])
		copy(e[16:], x.name)
		entryOff += entrySize(x)
	}
	return hashes
}

const inlineXattrSpace = inodeSize - inXattrStart - 4 // after the magic

// splitXattrs decides which attributes go in the inode and which in an xattr
// block. Attributes are sorted (the kernel searches block entries in order).
// It fails if they cannot fit in the inode plus one block.
func splitXattrs(xs []xattr) (inline, block []xattr, err error) {
	sort.SliceStable(xs, func(i, j int) bool { return xattrLess(xs[i], xs[j]) })
	used := 4 // terminating zero entry
	for _, x := range xs {
		need := entrySize(x) + valueSize(x)
		if used+need <= inlineXattrSpace {
			inline = append(inline, x)
			used += need
		} else {
			block = append(block, x)
		}
	}
	bused := 32 + 4
	for _, x := range block {
		bused += entrySize(x) + valueSize(x)
	}
	if bused > blockSize {
		return nil, nil, fmt.Errorf("extended attributes need %d bytes; ext4 without ea_inode stores at most %d per file", bused, blockSize)
	}
	return inline, block, nil
}

// buildXattrBlock returns one 4 KiB xattr block holding xs.
func buildXattrBlock(xs []xattr) []byte {
	b := make([]byte, blockSize)
	le.PutUint32(b[0:], xattrMagic)
	le.PutUint32(b[4:], 1) // refcount
	le.PutUint32(b[8:], 1) // blocks
	hashes := packXattrs(b, 32, 0, xs)
	var h uint32
	for _, eh := range hashes {
		if eh == 0 {
			h = 0
			break
		}
		h = (h << 16) ^ (h >> 16) ^ eh
	}
	le.PutUint32(b[12:], h)
	return b
}

// parseXattrs reads entries starting at entryOff in region, with values
// relative to valueBase.
func parseXattrs(region []byte, entryOff, valueBase int) ([]xattr, error) {
	var out []xattr
	for {
		if entryOff+4 > len(region) {
			return out, errors.New("xattr entries run past their area")
		}
		if le.Uint32(region[entryOff:]) == 0 {
			return out, nil
		}
		if entryOff+16 > len(region) {
			return out, errors.New("truncated xattr entry")
		}
		e := region[entryOff:]
		nlen := int(e[0])
		idx := e[1]
		voff := int(le.Uint16(e[2:]))
		vinum := le.Uint32(e[4:])
		vsize := int(le.Uint32(e[8:]))
		if entryOff+16+nlen > len(region) {
			return out, errors.New("xattr name runs past its area")
		}
		name := string(e[16 : 16+nlen])
		if vinum != 0 {
			return out, fmt.Errorf("xattr %s stored in an inode (ea_inode) is not supported", joinXattrName(idx, name))
		}
		if valueBase+voff+vsize > len(region) || voff < 0 {
			return out, errors.New("xattr value runs past its area")
		}
		val := bytes.Clone(region[valueBase+voff : valueBase+voff+vsize])
		out = append(out, xattr{index: idx, name: name, value: val})
		entryOff += (16 + nlen + 3) &^ 3
	}
}

// POSIX ACLs: tar (and the getxattr API) carry the "xattr" form, version 2
// with 8-byte entries; ext4 stores version 1 with short entries for the
// entries that have no id.
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

func aclToDisk(v []byte) ([]byte, error) {
	if len(v) < 4 || le.Uint32(v) != 2 || (len(v)-4)%8 != 0 {
		return nil, errors.New("malformed POSIX ACL xattr")
	}
	out := make([]byte, 4, len(v))
	le.PutUint32(out, 1)
	for p := v[4:]; len(p) >= 8; p = p[8:] {
		tag, perm, id := le.Uint16(p), le.Uint16(p[2:]), le.Uint32(p[4:])
		switch tag {
		case aclUser, aclGroup:
			out = le.AppendUint16(out, tag)
			out = le.AppendUint16(out, perm)
			out = le.AppendUint32(out, id)
		case aclUserObj, aclGroupObj, aclMask, aclOther:
			out = le.AppendUint16(out, tag)
			out = le.AppendUint16(out, perm)
		default:
			return nil, fmt.Errorf("POSIX ACL entry with unknown tag %#x", tag)
		}
	}
	return out, nil
}

func aclFromDisk(v []byte) ([]byte, error) {
	if len(v) < 4 || le.Uint32(v) != 1 {
		return nil, errors.New("malformed on-disk POSIX ACL")
	}
	out := make([]byte, 4, 2*len(v))
	le.PutUint32(out, 2)
	for p := v[4:]; len(p) > 0; {
		if len(p) < 4 {
			return nil, errors.New("truncated on-disk POSIX ACL")
		}
		tag, perm := le.Uint16(p), le.Uint16(p[2:])
		id := uint32(0xFFFFFFFF)
		switch tag {
		case aclUser, aclGroup:
			if len(p) < 8 {
				return nil, errors.New("truncated on-disk POSIX ACL")
			}
			id = le.Uint32(p[4:])
			p = p[8:]
		default:
			p = p[4:]
		}
		out = le.AppendUint16(out, tag)
		out = le.AppendUint16(out, perm)
		out = le.AppendUint32(out, id)
	}
	return out, nil
}
