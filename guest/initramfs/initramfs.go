package initramfs

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Where the modules archive puts things inside the guest. The agent reads
// OrderFile and loads each listed module from ModulesDir, in order.
const (
	ModulesDir = "/lib/modules/berth"
	OrderFile  = ModulesDir + "/order"
)

// DefaultModules are the modules a Berth VM wants when the kernel has them as
// modules (Debian's cloud kernels do): disks, NIC, the agent channel (vsock
// or virtio-serial), entropy, memory balloon, and virtiofs for bind mounts
// and volumes. Names missing from a
// kernel's modules.dep are built in or absent and are skipped.
var DefaultModules = []string{
	"virtio_pci", "virtio_mmio", "virtio_blk", "virtio_net", "virtio_console",
	"vsock", "vmw_vsock_virtio_transport", "virtio_rng", "virtio_balloon",
	"ext4", "overlay", "binfmt_misc", "virtiofs",
}

// WriteBase writes the base archive: agentBinary as /init plus the nodes and
// directories the kernel and the agent need before anything is mounted.
func WriteBase(w io.Writer, agentBinary string) error {
	f, err := os.Open(agentBinary)
	if err != nil {
		return fmt.Errorf("initramfs: agent binary: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return writeGzip(w, 0, func(c *cpioWriter) error {
		for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "mnt", "etc", "lib/modules"} {
			if err := c.Dir(d, 0o755); err != nil {
				return err
			}
		}
		// The kernel opens /dev/console before running /init; devtmpfs is
		// mounted over /dev later by the agent.
		if err := c.CharDev("dev/console", 0o600, 5, 1); err != nil {
			return err
		}
		if err := c.CharDev("dev/null", 0o666, 1, 3); err != nil {
			return err
		}
		return c.File("init", 0o755, st.Size(), f)
	})
}

// WriteModules writes an archive holding names (and everything they depend
// on) from modulesDir (a kernel's /lib/modules/<version>), plus OrderFile
// listing them dependencies first. Names the kernel does not have as modules
// are skipped; an empty modulesDir writes an archive with no modules.
func WriteModules(w io.Writer, modulesDir string, names []string) error {
	var order []string
	if modulesDir != "" {
		var err error
		order, err = Resolve(modulesDir, names)
		if err != nil {
			return err
		}
	}
	return writeGzip(w, 1<<20, func(c *cpioWriter) error {
		var list strings.Builder
		for _, rel := range order {
			base := filepath.Base(rel)
			f, err := os.Open(filepath.Join(modulesDir, rel))
			if err != nil {
				return fmt.Errorf("initramfs: module listed in modules.dep: %w", err)
			}
			st, err := f.Stat()
			if err == nil {
				err = c.File(ModulesDir+"/"+base, 0o644, st.Size(), f)
			}
			f.Close()
			if err != nil {
				return err
			}
			list.WriteString(base + "\n")
		}
		return c.File(OrderFile, 0o644, int64(list.Len()), strings.NewReader(list.String()))
	})
}

// ForKernel writes a complete initramfs: the base archive at basePath
// followed by a modules archive for the kernel whose modules live in
// modulesDir (empty: none).
func ForKernel(w io.Writer, basePath, modulesDir string) error {
	f, err := os.Open(basePath)
	if err != nil {
		return fmt.Errorf("initramfs: base archive: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return err
	}
	return WriteModules(w, modulesDir, DefaultModules)
}

func writeGzip(w io.Writer, firstIno uint32, fill func(*cpioWriter) error) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	c := newCpioWriter(zw, firstIno)
	if err := fill(c); err != nil {
		return err
	}
	if err := c.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// ModuleName is the name a module file goes by: "virtio-rng.ko.xz" -> "virtio_rng".
func ModuleName(file string) string {
	base := filepath.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// Resolve returns the module files (paths relative to modulesDir) needed to
// load names, dependencies first, each once. It reads modulesDir/modules.dep.
func Resolve(modulesDir string, names []string) ([]string, error) {
	f, err := os.Open(filepath.Join(modulesDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("initramfs: kernel modules: %w (is the modules directory %s complete? run depmod)", err, modulesDir)
	}
	defer f.Close()
	deps := map[string][]string{} // module path -> dependency paths
	byName := map[string]string{} // module name -> path
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		mod = strings.TrimSpace(mod)
		deps[mod] = strings.Fields(rest)
		byName[ModuleName(mod)] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("initramfs: reading modules.dep: %w", err)
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(mod string) error {
		switch state[mod] {
		case 1:
			return fmt.Errorf("initramfs: dependency cycle at %s in modules.dep", mod)
		case 2:
			return nil
		}
		state[mod] = 1
		// modules.dep lists a module's dependencies; sort for determinism.
		ds := append([]string(nil), deps[mod]...)
		sort.Strings(ds)
		for _, d := range ds {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[mod] = 2
		order = append(order, mod)
		return nil
	}
	for _, n := range names {
		mod, ok := byName[ModuleName(n)]
		if !ok {
			continue // built in, or not in this kernel
		}
		if err := visit(mod); err != nil {
			return nil, err
		}
	}
	return order, nil
}
