package ext4

import "golang.org/x/sys/unix"

// punch frees the host disk space of dead data runs (files that later
// entries of the same tar replaced): their blocks are free in the image,
// and a hole keeps the sparse file small.
func (w *Writer) punch(runs [][2]uint64) {
	for _, r := range runs {
		_ = unix.Fallocate(int(w.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE,
			int64(r[0])<<blockShift, int64(r[1]-r[0])<<blockShift)
	}
}
