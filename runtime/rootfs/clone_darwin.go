package rootfs

import (
	"os"

	"golang.org/x/sys/unix"
)

// cloneFile uses APFS clonefile (O(1) copy-on-write), else a sparse copy.
func cloneFile(src, dst string) error {
	if err := unix.Clonefile(src, dst, unix.CLONE_NOFOLLOW); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := sparseCopy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func copyRange(dst, src *os.File, off, n int64, buf []byte) error {
	return preadCopy(dst, src, off, n, buf)
}
