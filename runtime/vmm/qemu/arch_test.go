//go:build linux

package qemu

import "runtime"

func runtimeArch() string { return runtime.GOARCH }
