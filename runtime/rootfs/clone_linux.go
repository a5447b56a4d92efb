package rootfs

import (
	"os"

	"golang.org/x/sys/unix"
)

// cloneFile reflinks src to dst with FICLONE where the filesystem supports it
// (btrfs, xfs, bcachefs, …), else falls back to a sparse copy.
func cloneFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		return out.Close()
	}
	if err := sparseCopy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// copyRange copies in the kernel (copy_file_range), falling back to pread/pwrite.
func copyRange(dst, src *os.File, off, n int64, buf []byte) error {
	for n > 0 {
		roff, woff := off, off
		c, err := unix.CopyFileRange(int(src.Fd()), &roff, int(dst.Fd()), &woff, int(min(n, 1<<30)), 0)
		if err != nil || c == 0 {
			return preadCopy(dst, src, off, n, buf)
		}
		off += int64(c)
		n -= int64(c)
	}
	return nil
}
