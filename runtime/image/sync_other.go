//go:build !linux

package image

import "os"

func startWriteback(f *os.File, off, n int64) {}

// syncData makes a file's content durable (on darwin, Sync is F_FULLFSYNC).
func syncData(f *os.File) error { return f.Sync() }
