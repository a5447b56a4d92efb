// Package vz is the macOS VM backend: one Virtualization.framework VM per
// container, through github.com/Code-Hex/vz/v3.
//
// Only the files named *_darwin*.go touch vz (they need cgo and the macOS SDK
// and are type-checked on Linux by packaging/darwincheck). Everything that can
// be decided without the framework — validating and clamping the VM shape,
// the kernel format check, the kernel command line, the share list, the vsock dial retry
// policy, and turning the framework's state notifications into vmm.Machine's
// Done/Err — lives in portable files and is tested on Linux against a fake
// hypervisor.
package vz
