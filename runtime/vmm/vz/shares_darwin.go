//go:build darwin

package vz

import (
	"fmt"

	vzf "github.com/Code-Hex/vz/v3"
)

// directoryShares builds the virtiofs devices makePlan listed. The returned
// objects must stay reachable as long as the VM (their finalizers release
// the Objective-C objects).
func directoryShares(devs []shareDevice) ([]vzf.DirectorySharingDeviceConfiguration, []any, error) {
	var out []vzf.DirectorySharingDeviceConfiguration
	var keep []any
	for _, d := range devs {
		if d.Rosetta {
			fs, err := rosettaShare()
			if err != nil {
				return nil, nil, err
			}
			out, keep = append(out, fs), append(keep, fs)
			continue
		}
		// Read-only is enforced by the framework on the host side, not
		// only by the guest's mount options.
		dir, err := vzf.NewSharedDirectory(d.Path, d.ReadOnly)
		if err != nil {
			return nil, nil, fmt.Errorf("vz: share %q (%s): %w", d.Tag, d.Path, err)
		}
		share, err := vzf.NewSingleDirectoryShare(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("vz: share %q: %w", d.Tag, err)
		}
		fs, err := vzf.NewVirtioFileSystemDeviceConfiguration(d.Tag) // the framework validates the tag
		if err != nil {
			return nil, nil, fmt.Errorf("vz: share %q: %w", d.Tag, err)
		}
		fs.SetDirectoryShare(share)
		out, keep = append(out, fs), append(keep, dir, share, fs)
	}
	return out, keep, nil
}
