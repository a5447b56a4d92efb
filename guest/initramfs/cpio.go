// Package initramfs writes the gzip'd cpio (newc) archives a Linux kernel
// unpacks as its initial root filesystem.
//
// Berth ships two archives per VM, concatenated: a base archive (the agent as
// /init and a /dev/console node) that is the same for every kernel, and a
// modules archive holding the kernel modules one particular kernel needs. The
// kernel accepts concatenated archives, so the engine writes the base once and
// appends the modules for whichever kernel it boots.
//
// Output is reproducible: the same inputs give the same bytes (fixed mtimes,
// owners and inode numbers, sorted entries, no gzip name or timestamp).
package initramfs

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// cpio newc mode bits (see Linux's init/initramfs.c and cpio(5)).
const (
	modeDir  = 0o040000
	modeReg  = 0o100000
	modeChr  = 0o020000
	modeLink = 0o120000
)

// Writer emits cpio newc records (uncompressed; wrap w in gzip for a
// compressed archive). Entries are written in call order; parents of a path
// are added when missing.
type Writer = cpioWriter

// NewWriter starts an archive on w.
func NewWriter(w io.Writer) *Writer { return newCpioWriter(w, 0) }

type cpioWriter struct {
	w    *bufio.Writer
	ino  uint32
	off  int64
	dirs map[string]bool
}

func newCpioWriter(w io.Writer, firstIno uint32) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 64<<10), ino: firstIno, dirs: map[string]bool{}}
}

type header struct {
	name       string
	mode       uint32
	nlink      uint32
	size       int64
	rmaj, rmin uint32
}

func (c *cpioWriter) writeHeader(h header) error {
	if h.size > 0xFFFFFFFF {
		return fmt.Errorf("initramfs: %s is %d bytes, over the 4 GiB cpio newc limit", h.name, h.size)
	}
	c.ino++
	name := h.name + "\x00"
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, h.mode, 0, 0, h.nlink, 0, uint32(h.size), 0, 0, h.rmaj, h.rmin, len(name), 0)
	if _, err := c.w.WriteString(hdr); err != nil {
		return err
	}
	if _, err := c.w.WriteString(name); err != nil {
		return err
	}
	c.off += int64(len(hdr) + len(name))
	return c.pad()
}

func (c *cpioWriter) pad() error {
	n := (4 - c.off%4) % 4
	c.off += n
	_, err := c.w.Write(make([]byte, n))
	return err
}

// mkdirAll writes directory entries for every missing parent of name.
func (c *cpioWriter) mkdirAll(dir string) error {
	if dir == "." || dir == "/" || dir == "" || c.dirs[dir] {
		return nil
	}
	if err := c.mkdirAll(path.Dir(dir)); err != nil {
		return err
	}
	c.dirs[dir] = true
	return c.writeHeader(header{name: dir, mode: modeDir | 0o755, nlink: 2})
}

func clean(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// Dir adds a directory (and its parents).
func (c *cpioWriter) Dir(name string, perm uint32) error {
	name = clean(name)
	if err := c.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	c.dirs[name] = true
	return c.writeHeader(header{name: name, mode: modeDir | perm, nlink: 2})
}

// File adds a regular file of the given size, read from r.
func (c *cpioWriter) File(name string, perm uint32, size int64, r io.Reader) error {
	name = clean(name)
	if err := c.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	if err := c.writeHeader(header{name: name, mode: modeReg | perm, nlink: 1, size: size}); err != nil {
		return err
	}
	n, err := io.CopyN(c.w, r, size)
	c.off += n
	if err != nil {
		return fmt.Errorf("initramfs: %s: %w", name, err)
	}
	return c.pad()
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(name string, perm, major, minor uint32) error {
	name = clean(name)
	if err := c.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	return c.writeHeader(header{name: name, mode: modeChr | perm, nlink: 1, rmaj: major, rmin: minor})
}

// Symlink adds a symbolic link.
func (c *cpioWriter) Symlink(name, target string) error {
	name = clean(name)
	if err := c.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	if err := c.writeHeader(header{name: name, mode: modeLink | 0o777, nlink: 1, size: int64(len(target))}); err != nil {
		return err
	}
	n, err := c.w.WriteString(target)
	c.off += int64(n)
	if err != nil {
		return err
	}
	return c.pad()
}

// Close writes the trailer and flushes; the underlying writer stays open.
func (c *cpioWriter) Close() error {
	if err := c.writeHeader(header{name: "TRAILER!!!", nlink: 1}); err != nil {
		return err
	}
	return c.w.Flush()
}
