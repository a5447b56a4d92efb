package image

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to begin writing a range to disk without
// waiting for it (a hint: errors surface at the final fdatasync).
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// syncData makes a file's content durable (fdatasync: the size is covered,
// timestamps are not needed).
func syncData(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// syncFS flushes the filesystem holding path (benchmarks start each run
// with no dirty pages from the previous one).
func syncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
