//go:build linux

package ext4

import (
	"crypto/sha256"
	"hash"
	"os"
	"syscall"
)

func newSHA() hash.Hash { return sha256.New() }

func blocksOnDisk(st os.FileInfo) int64 { return st.Sys().(*syscall.Stat_t).Blocks * 512 }
