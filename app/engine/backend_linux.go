//go:build linux

package engine

import (
	"github.com/berth-dev/berth/runtime/vmm"
	"github.com/berth-dev/berth/runtime/vmm/qemu"
)

func platformBackend() vmm.Backend { return qemu.New() }

// killStale kills a QEMU that a crashed engine left running for a container.
func killStale(pid int, stateDir string) error {
	_, err := qemu.KillStale(stateDir)
	return err
}
