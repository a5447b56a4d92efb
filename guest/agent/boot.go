//go:build linux

package agent

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/guest/initramfs"
)

// InitStart is the kernel uptime when Boot had /proc (≈ when /init began).
var InitStart float64

// CgroupDir is the cgroup the container's processes run in (PID 1 only).
const CgroupDir = "/sys/fs/cgroup/berth"

// Boot prepares the VM as its init: kernel filesystems, cgroups, limits,
// signals and kernel modules. Failures that leave the agent able to serve
// are warnings (reported by Health), not fatal: PID 1 must not exit.
func Boot() (warnings, modules []string) {
	warn := func(format string, err error) {
		warnings = append(warnings, strings.Replace(format, "%v", err.Error(), 1))
	}
	type m struct {
		source, target, fstype string
		flags                  uintptr
		data                   string
	}
	// devtmpfs is not mounted automatically when booting from an initramfs.
	for _, x := range []m{
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		{"shm", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	} {
		os.MkdirAll(x.target, 0o755)
		if err := unix.Mount(x.source, x.target, x.fstype, x.flags, x.data); err != nil && !errors.Is(err, unix.EBUSY) {
			warn("mount "+x.target+": %v", err)
		}
	}
	InitStart = uptime()
	os.Remove("/dev/ptmx")
	os.Symlink("pts/ptmx", "/dev/ptmx")
	for name, target := range map[string]string{"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2"} {
		os.Symlink(target, name)
	}
	// PID 1 gets only the signals it handles; a broken pipe must never kill it.
	signal.Ignore(syscall.SIGPIPE)
	// Up to the kernel's ceiling (fs.nr_open), for the agent and what it starts.
	limit := uint64(1 << 20)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		var n uint64
		if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &n); err == nil && n > 0 {
			limit = n
		}
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}); err != nil {
		warn("RLIMIT_NOFILE: %v", err)
	}
	modules, modWarn := loadModules()
	warnings = append(warnings, modWarn...)
	// Controllers for the container cgroup (the root cgroup is exempt from
	// the no-internal-processes rule, so the agent can stay there).
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		var enable []string
		for _, c := range strings.Fields(string(b)) {
			switch c {
			case "cpu", "cpuset", "io", "memory", "pids":
				enable = append(enable, "+"+c)
			}
		}
		if err := os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte(strings.Join(enable, " ")), 0); err != nil {
			warn("enabling cgroup controllers: %v", err)
		}
	}
	unix.Sethostname([]byte("berth"))
	return warnings, modules
}

// loadModules loads the modules the initramfs carries, in the order the
// builder resolved from modules.dep (dependencies first).
func loadModules() (loaded, warnings []string) {
	f, err := os.Open(initramfs.OrderFile)
	if err != nil {
		return nil, nil // a kernel with everything built in needs none
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" || strings.Contains(name, "/") {
			continue
		}
		if err := loadModule(filepath.Join(initramfs.ModulesDir, name)); err != nil {
			warnings = append(warnings, "module "+name+": "+err.Error())
			continue
		}
		loaded = append(loaded, initramfs.ModuleName(name))
	}
	return loaded, warnings
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if strings.HasSuffix(path, ".xz") || strings.HasSuffix(path, ".zst") || strings.HasSuffix(path, ".gz") {
		flags |= unix.MODULE_INIT_COMPRESSED_FILE
	}
	err = unix.FinitModule(int(f.Fd()), "", flags)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// PowerOff syncs and powers the machine off (PID 1 only).
func PowerOff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
