// Package build compiles the guest agent and packs it into the base
// initramfs. packaging/build-guest.sh (via guest/cmd/mkinitramfs) and the
// shared test fixtures (internal/testenv) both use it, so tests boot exactly
// what `make build` ships.
package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/guest/initramfs"
)

// AgentPackage is the import path of the agent's main package.
const AgentPackage = "github.com/berth-dev/berth/guest/cmd/berth-agent"

// Names of the files Dir writes.
const (
	AgentFile     = "berth-agent"
	InitramfsFile = "initramfs.cpio.gz"
)

// Agent compiles the agent for linux/arch into out: static (CGO_ENABLED=0),
// stripped, with reproducible paths. moduleRoot is the directory holding
// Berth's go.mod.
// $BERTH_VERSION, when set, becomes the version Health reports.
func Agent(ctx context.Context, moduleRoot, arch, out string) error {
	ldflags := "-s -w -buildid="
	if v := os.Getenv("BERTH_VERSION"); v != "" {
		ldflags += " -X github.com/berth-dev/berth/guest/agent.Version=" + v
	}
	// grpcnotrace drops golang.org/x/net/trace and the html/template
	// machinery it drags in: 3.3 MB of binary the agent never uses, and
	// most of a binary's pages end up resident (the idle-RSS target).
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-tags", "grpcnotrace", "-ldflags", ldflags, "-o", out, AgentPackage)
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building the guest agent for linux/%s: %v: %s", arch, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Dir builds dir/berth-agent and dir/initramfs.cpio.gz (the base archive)
// for arch. Files are written to temporaries and renamed into place.
func Dir(ctx context.Context, moduleRoot, arch, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	agentTmp := filepath.Join(dir, "."+AgentFile+".tmp")
	if err := Agent(ctx, moduleRoot, arch, agentTmp); err != nil {
		return err
	}
	defer os.Remove(agentTmp)
	if err := Initramfs(agentTmp, filepath.Join(dir, InitramfsFile)); err != nil {
		return err
	}
	return os.Rename(agentTmp, filepath.Join(dir, AgentFile))
}

// Initramfs writes the base initramfs for agent to out (temp file + rename).
func Initramfs(agent, out string) error {
	return writeAtomic(out, func(f *os.File) error { return initramfs.WriteBase(f, agent) })
}

// Modules writes a modules archive for the kernel modules in modulesDir.
func Modules(modulesDir, out string) error {
	return writeAtomic(out, func(f *os.File) error {
		return initramfs.WriteModules(f, modulesDir, initramfs.DefaultModules)
	})
}

func writeAtomic(out string, fill func(*os.File) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := fill(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// ModuleRoot finds the directory holding go.mod, starting at dir and going up.
func ModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the current directory: run this inside the Berth source tree")
		}
		dir = parent
	}
}
