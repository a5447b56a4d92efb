//go:build darwin && arm64

package vz

import (
	"errors"
	"fmt"

	vzf "github.com/Code-Hex/vz/v3"
)

// rosettaShare exposes Rosetta to the guest as the virtiofs tag RosettaTag.
// It does not install Rosetta: that shows a system dialog, which the app asks
// for explicitly (see InstallRosetta), never the engine in the middle of a run.
func rosettaShare() (vzf.DirectorySharingDeviceConfiguration, error) {
	switch vzf.LinuxRosettaDirectoryShareAvailability() {
	case vzf.LinuxRosettaAvailabilityNotSupported:
		return nil, errors.New("vz: Rosetta for Linux is not supported on this Mac")
	case vzf.LinuxRosettaAvailabilityNotInstalled:
		return nil, errors.New("vz: Rosetta is not installed; install it with `softwareupdate --install-rosetta --agree-to-license` and retry")
	}
	share, err := vzf.NewLinuxRosettaDirectoryShare()
	if err != nil {
		return nil, fmt.Errorf("vz: Rosetta share: %w", err)
	}
	fs, err := vzf.NewVirtioFileSystemDeviceConfiguration(RosettaTag)
	if err != nil {
		return nil, fmt.Errorf("vz: Rosetta share: %w", err)
	}
	fs.SetDirectoryShare(share)
	return fs, nil
}

// InstallRosetta asks macOS to install Rosetta (blocking; shows a system
// prompt). The app calls it after asking the user.
func InstallRosetta() error { return vzf.LinuxRosettaDirectoryShareInstallRosetta() }
