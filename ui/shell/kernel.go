package shell

import (
	"context"
	"net/http"

	"github.com/berth-dev/berth/runtime/kernel"
)

// KernelFetch is the first-launch download of the default guest kernel (the
// pinned Kata Containers release on macOS). The app asks the user before
// running it and shows its progress; the engine itself never downloads.
type KernelFetch struct {
	KernelsDir string
	Source     kernel.Source
	Client     *http.Client // nil: http.DefaultClient
}

// Needed reports whether the kernel is missing.
func (k KernelFetch) Needed() bool {
	_, ok := kernel.Installed(k.KernelsDir, k.Source)
	return !ok
}

// Question is what the app asks before downloading.
func (k KernelFetch) Question() string {
	return "Berth needs a Linux kernel to run containers. Download the Kata Containers " + k.Source.Release +
		" kernel (verified by its SHA-256) from github.com now?"
}

// Run downloads, verifies and installs the kernel, reporting bytes.
func (k KernelFetch) Run(ctx context.Context, progress func(done, total int64)) error {
	_, err := kernel.Download(ctx, k.KernelsDir, k.Source, k.Client, kernel.Progress(progress))
	return err
}
