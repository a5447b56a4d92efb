package ext4

import (
	"fmt"
	"path"
	"strings"
)

// inode is one file's metadata kept in memory until Close.
type inode struct {
	num                        uint32 // assigned at Close
	mode                       uint16 // type and permission bits
	uid, gid                   uint32
	atime, mtime, ctime, crtim timespec
	size                       uint64
	start, nblocks             uint64 // contiguous data run (regular files, data written)
	link                       string // symlink target
	devMajor, devMinor         uint32
	xattrs                     []xattr

	// Filled at Close.
	nlink   uint32
	reached bool

	// ghost data: a regular file whose content was skipped while streaming
	// (its path was shadowed by an upper layer) but that a surviving hard link
	// needs; its data is fetched by a second read of its layer.
	needData bool
	ghostOf  string // path inside its layer
	ghostIdx int    // entry index inside its layer
	linked   bool   // a surviving hard link refers to this ghost
}

func (i *inode) isDir() bool { return i.mode&sIFMT == sIFDIR }

// node is a name in the in-memory directory tree.
type node struct {
	name     string
	ino      *inode
	children map[string]*node // directories only
	layer    int              // layer that decided this name (higher = upper)
	whiteout bool             // deleted by a whiteout in layer `layer`
	implicit bool             // directory created for a child; metadata may come from a lower layer
	woOnly   bool             // implicit directory that only holds whiteouts (a whiteout never creates anything): not emitted
	opaque   int              // children from layers below this are hidden (-1: none)
}

func (n *node) isDir() bool { return !n.whiteout && n.ino != nil && n.ino.isDir() }

// cleanPath normalises a tar name to components inside the image: leading
// "/" and "./" are dropped and ".." can never climb above the root (the
// documented normalisation for hostile archives). It returns nil for the root.
func cleanPath(name string) ([]string, error) {
	p := path.Clean("/" + name)
	if p == "/" {
		return nil, nil
	}
	parts := strings.Split(p[1:], "/")
	for _, c := range parts {
		if len(c) > maxNameLen {
			return nil, fmt.Errorf("name component %.40q… is %d bytes; ext4 allows %d", c, len(c), maxNameLen)
		}
	}
	return parts, nil
}
