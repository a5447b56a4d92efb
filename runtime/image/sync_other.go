//go:build !linux

package image

import (
	"os"
	"syscall"
)

func startWriteback(f *os.File, off, n int64) {}

// syncData makes a file's content durable (on darwin, Sync is F_FULLFSYNC).
func syncData(f *os.File) error { return f.Sync() }

// syncFS flushes dirty data (benchmarks start each run clean).
func syncFS(path string) error {
	syscall.Sync()
	return nil
}
