package image

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// hostArch is the CPU's architecture: an amd64 build running under
// Rosetta on Apple silicon still wants arm64 guests (VMs there are arm64).
func hostArch() string {
	if runtime.GOARCH == "amd64" {
		if v, err := unix.SysctlUint32("sysctl.proc_translated"); err == nil && v == 1 {
			return "arm64"
		}
	}
	return runtime.GOARCH
}
