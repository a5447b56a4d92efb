// Command mkinitramfs builds the guest agent for one architecture and writes
// the base initramfs (agent as /init), and optionally a modules archive for a
// kernel's modules directory.
//
//	go run ./guest/cmd/mkinitramfs -arch arm64 -o build/guest/arm64/initramfs.cpio.gz
//	go run ./guest/cmd/mkinitramfs -modules /lib/modules/$(uname -r) -o modules.cpio.gz
//
// The agent binary is kept next to the initramfs as berth-agent.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/berth-dev/berth/guest/build"
)

func main() {
	arch := flag.String("arch", runtime.GOARCH, "guest architecture (amd64, arm64)")
	out := flag.String("o", "", "output file")
	modules := flag.String("modules", "", "write a modules archive for this kernel modules directory (e.g. /lib/modules/VERSION) instead of the base initramfs")
	flag.Parse()
	if err := run(*arch, *out, *modules); err != nil {
		fmt.Fprintln(os.Stderr, "mkinitramfs:", err)
		os.Exit(1)
	}
}

func run(arch, out, modules string) error {
	if out == "" {
		return fmt.Errorf("no output file: pass -o PATH")
	}
	if modules != "" {
		return build.Modules(modules, out)
	}
	if arch != "amd64" && arch != "arm64" {
		return fmt.Errorf("unsupported -arch %q: use amd64 or arm64", arch)
	}
	root, err := build.ModuleRoot(".")
	if err != nil {
		return err
	}
	dir := filepath.Dir(out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	agent := filepath.Join(dir, build.AgentFile)
	if err := build.Agent(context.Background(), root, arch, agent); err != nil {
		return err
	}
	return build.Initramfs(agent, out)
}
