//go:build darwin && amd64

package vz

import (
	"errors"

	vzf "github.com/Code-Hex/vz/v3"
)

// rosettaShare: Intel Macs run linux/amd64 natively and have no Rosetta for
// Linux (makePlan already refuses Rosetta there; this keeps the build whole).
func rosettaShare() (vzf.DirectorySharingDeviceConfiguration, error) {
	return nil, errors.New("vz: Rosetta is only available on Apple silicon")
}

// InstallRosetta is not available on Intel Macs.
func InstallRosetta() error { return errors.New("vz: Rosetta is only available on Apple silicon") }
