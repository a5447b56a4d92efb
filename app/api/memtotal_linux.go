package api

import "golang.org/x/sys/unix"

// memTotal is the host's physical memory in bytes (0 if unknown).
func memTotal() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}
