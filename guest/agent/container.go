//go:build linux

package agent

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-dev/berth/guest/api"
)

// container is the one container root of this VM.
//
// Mount layout: the root filesystem is mounted at <state>/rootfs in the
// agent's mount namespace and marked shared, with /dev, /sys, /dev/pts,
// /dev/shm and the /etc files mounted beneath it there. The container's init
// gets its own mount namespace (a copy) and mounts /proc inside its PID
// namespace; that mount propagates back here, so processes exec'd later
// (which cannot join a mount namespace from a multi-threaded agent) see the
// same tree by chrooting into <state>/rootfs.
type container struct {
	root   string
	device string // "" when the root is a bind-mounted directory
}

func (a *Agent) CreateContainer(_ ctxT, req *api.CreateContainerRequest) (*api.Empty, error) {
	a.mu.Lock()
	busy := a.container != nil || a.creating
	a.creating = !busy
	a.mu.Unlock()
	if busy {
		return nil, status.Error(codes.AlreadyExists, "a container is already set up in this VM")
	}
	var c *container
	defer func() {
		a.mu.Lock()
		a.creating = false
		if c != nil {
			a.container = c
		}
		a.mu.Unlock()
	}()
	if req.Device == "" && req.Path == "" {
		return nil, status.Error(codes.InvalidArgument, "create container: give the root filesystem's device (e.g. /dev/vda) or a directory path")
	}
	if !a.cfg.PID1 {
		if err := requireOwnMountNamespace(); err != nil {
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
		// Our namespace is a copy of the host's: keep our mounts from
		// propagating back into it.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return nil, status.Errorf(codes.Internal, "making mounts private: %v", err)
		}
	}
	root := filepath.Join(a.cfg.StateDir, "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, status.Errorf(codes.Internal, "create container: %v", err)
	}
	cont := &container{root: root, device: req.Device}
	var flags uintptr
	if req.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if req.Device != "" {
		fstype := req.Fstype
		if fstype == "" {
			fstype = "ext4"
		}
		if err := unix.Mount(req.Device, root, fstype, flags, ""); err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "mounting the container root %s (%s): %v", req.Device, fstype, err)
		}
	} else {
		if st, err := os.Stat(req.Path); err != nil || !st.IsDir() {
			return nil, status.Errorf(codes.NotFound, "container root directory %s: not a directory", req.Path)
		}
		if err := unix.Mount(req.Path, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "bind-mounting the container root %s: %v", req.Path, err)
		}
	}
	if err := unix.Mount("", root, "", unix.MS_SHARED, ""); err != nil {
		unix.Unmount(root, unix.MNT_DETACH)
		return nil, status.Errorf(codes.Internal, "making the container root shared: %v", err)
	}
	if err := a.populate(cont); err != nil {
		unmountTree(root)
		return nil, status.Errorf(codes.Internal, "preparing the container root: %v", err)
	}
	c = cont
	return &api.Empty{}, nil
}

// populate mounts the kernel filesystems and the /etc files into the root.
func (a *Agent) populate(c *container) error {
	mountIn := func(target, source, fstype string, flags uintptr, data string) error {
		d, err := mkdirAllInRoot(c.root, target, 0o755)
		if err != nil {
			return err
		}
		defer d.Close()
		if err := unix.Mount(source, fdPath(d), fstype, flags, data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", fstype, target, err)
		}
		return nil
	}
	// /proc is mounted by the container's init (it must be in the new PID
	// namespace); make sure the mount point exists.
	if d, err := mkdirAllInRoot(c.root, "proc", 0o555); err == nil {
		d.Close()
	} else {
		return err
	}
	if err := mountIn("dev", "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=65536k"); err != nil {
		return err
	}
	dev, err := openInRoot(c.root, "dev", unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer dev.Close()
	dfd := int(dev.Fd())
	for _, n := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
		if err := unix.Mknodat(dfd, n.name, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return fmt.Errorf("mknod /dev/%s: %w", n.name, err)
		}
		unix.Fchmodat(dfd, n.name, 0o666, 0)
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx", "core": "/proc/kcore"} {
		if err := unix.Symlinkat(target, dfd, name); err != nil {
			return fmt.Errorf("symlink /dev/%s: %w", name, err)
		}
	}
	// The agent's devpts: pty slaves the agent opens for tty processes are
	// then visible under the same name inside the container.
	if err := mountIn("dev/pts", "/dev/pts", "", unix.MS_BIND, ""); err != nil {
		return err
	}
	if err := mountIn("dev/shm", "shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k"); err != nil {
		return err
	}
	if err := mountIn("dev/mqueue", "mqueue", "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		a.warn("container /dev/mqueue: %v", err)
	}
	if err := mountIn("sys", "sysfs", "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	if a.cfg.PID1 {
		if err := mountIn("sys/fs/cgroup", "cgroup2", "cgroup2", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			a.warn("container cgroup2: %v", err)
		}
	}
	// /etc/hosts, hostname, resolv.conf: the agent's copies, bind-mounted so
	// later SetupSystem calls show through.
	if err := a.writeEtc(); err != nil {
		return err
	}
	for _, name := range []string{"hosts", "hostname", "resolv.conf"} {
		if err := bindEtcFile(c.root, filepath.Join(a.cfg.StateDir, "etc", name), "etc/"+name); err != nil {
			return err
		}
	}
	return nil
}

// bindEtcFile bind-mounts src over the file rel inside root, creating it
// (and /etc) when the image lacks it. A symlink in the image (resolv.conf ->
// ../run/systemd/...) is resolved inside the root; a dangling one is
// replaced by a plain file.
func bindEtcFile(root, src, rel string) error {
	d, err := mkdirAllInRoot(root, filepath.Dir(rel), 0o755)
	if err != nil {
		return err
	}
	d.Close()
	f, err := openInRoot(root, rel, unix.O_RDONLY|unix.O_CREAT, 0o644)
	if err != nil {
		dir, derr := openInRoot(root, filepath.Dir(rel), unix.O_PATH|unix.O_DIRECTORY, 0)
		if derr != nil {
			return err
		}
		unix.Unlinkat(int(dir.Fd()), filepath.Base(rel), 0)
		dir.Close()
		if f, err = openInRoot(root, rel, unix.O_RDONLY|unix.O_CREAT, 0o644); err != nil {
			return err
		}
	}
	defer f.Close()
	if err := unix.Mount(src, fdPath(f), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting /%s: %w", rel, err)
	}
	return nil
}

// requireOwnMountNamespace keeps a test agent from mounting into the host's
// namespace.
func requireOwnMountNamespace() error {
	self, err1 := os.Readlink("/proc/self/ns/mnt")
	parent, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid()))
	if err1 != nil || err2 != nil || self == parent {
		return fmt.Errorf("the agent is not PID 1 and shares the host's mount namespace: run it in its own (unshare -m)")
	}
	return nil
}

// unmountTree unmounts root and everything below it, deepest first.
func unmountTree(root string) error {
	points, err := mountPointsUnder(root)
	if err != nil {
		return err
	}
	var first error
	for _, p := range points {
		if err := unix.Unmount(p, 0); err != nil {
			if err2 := unix.Unmount(p, unix.MNT_DETACH); err2 != nil && first == nil {
				first = fmt.Errorf("unmount %s: %w", p, err)
			}
		}
	}
	return first
}

func mountPointsUnder(root string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == root || strings.HasPrefix(mp, root+"/") {
			out = append(out, mp)
		}
	}
	// Deepest (longest) first; the same point mounted twice appears twice.
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, sc.Err()
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
