//go:build darwin

package engine

import (
	"github.com/berth-dev/berth/runtime/vmm"
	"github.com/berth-dev/berth/runtime/vmm/vz"
)

func platformBackend() vmm.Backend { return vz.New() }

// killStale: Virtualization.framework VMs live inside the engine process and
// die with it, so nothing can be left over.
func killStale(pid int, stateDir string) error { return nil }
