//go:build !darwin

package image

import "runtime"

// hostArch is the CPU's architecture (see arch_darwin.go for Rosetta).
func hostArch() string { return runtime.GOARCH }
