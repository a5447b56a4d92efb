package container

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/berth-dev/berth/runtime/vmm"
	"github.com/berth-dev/berth/runtime/volume"
)

// How a container's mounts reach it. Each container is its own VM, so a host
// directory cannot simply be bind-mounted: every distinct host directory a
// container uses becomes one virtiofs share of its VM (vmm.Share, tag "b0",
// "b1", …), the agent mounts each share at /run/berth/shares/<tag> in the VM,
// then bind-mounts it (or a file inside it) at the destination in the
// container. A single-file bind shares the file's parent directory: the VM
// sees the siblings, the container only the file.

// mountSpec is one mount as the user asked for it (-v, --mount, --tmpfs or
// an anonymous -v /path), kept in the record for inspect and restarts.
type mountSpec struct {
	Type     mount.Type `json:"type"`             // bind, volume, tmpfs
	Source   string     `json:"source,omitempty"` // host path (bind) or volume name
	Target   string     `json:"target"`
	ReadOnly bool       `json:"readOnly,omitempty"`
	// Mode is the -v mode string as given ("ro,z"), shown by inspect.
	Mode string `json:"mode,omitempty"`
	// FromBinds: from -v (a missing bind source is created, as Docker does).
	FromBinds bool `json:"fromBinds,omitempty"`
	// CreateSource: a missing bind source directory is created
	// (-v, or --mount bind-create-mountpoint).
	CreateSource bool `json:"createSource,omitempty"`
	// FromTmpfs: from --tmpfs (for messages).
	FromTmpfs bool `json:"fromTmpfs,omitempty"`
	// Anonymous: a volume made for this container (-v /path), removed by
	// `docker rm -v`.
	Anonymous bool `json:"anonymous,omitempty"`
	// TmpfsOptions are the tmpfs mount's options ("size=65536k", "mode=1777").
	TmpfsOptions []string `json:"tmpfsOptions,omitempty"`
	// NoCopy: an empty volume is not filled from the image (-v …:nocopy,
	// --mount volume-nocopy); see copyUpVolumes.
	NoCopy bool `json:"noCopy,omitempty"`
	// VolumeLabels label a volume that --mount creates.
	VolumeLabels map[string]string `json:"-"`
}

// Volumes is the volume store as containers use it (runtime/volume.Store).
type Volumes interface {
	// Create makes the volume if it does not exist (idempotent).
	Create(name string, o volume.CreateOptions) (volume.Volume, bool, error)
	// Path is the volume's host directory.
	Path(name string) string
	Remove(name string, force bool) error
}

// bindModes are the -v mode words Berth accepts. SELinux relabelling (z, Z)
// and consistency hints mean nothing inside a VM and are accepted as no-ops;
// nocopy keeps an empty volume empty (see copyUpVolumes).
var bindModes = map[string]bool{
	"ro": true, "rw": true, "z": true, "Z": true, "nocopy": true,
	"consistent": true, "cached": true, "delegated": true, "private": true, "rprivate": true,
}

// parseBind parses one -v "src:dst[:mode]". A source that is an absolute
// path is a bind mount; anything else names a volume.
func parseBind(spec string) (mountSpec, error) {
	bad := func(why string) (mountSpec, error) {
		return mountSpec{}, errf(ErrInvalid, "invalid volume specification %q (-v): %s", spec, why)
	}
	parts := strings.Split(spec, ":")
	var m mountSpec
	switch len(parts) {
	case 2:
		m.Source, m.Target = parts[0], parts[1]
	case 3:
		m.Source, m.Target, m.Mode = parts[0], parts[1], parts[2]
	default:
		return bad("use SOURCE:DESTINATION[:OPTIONS], e.g. /host/dir:/data:ro or myvolume:/data")
	}
	if m.Source == "" {
		return bad("the source is empty: give a host path or a volume name before the ':'")
	}
	if m.Mode != "" || len(parts) == 3 {
		rw := 0
		for _, w := range strings.Split(m.Mode, ",") {
			switch {
			case w == "ro":
				m.ReadOnly = true
				rw++
			case w == "rw":
				rw++
			case w == "nocopy":
				m.NoCopy = true
			case w == "shared" || w == "rshared" || w == "slave" || w == "rslave":
				return mountSpec{}, errf(ErrNotImplemented, "mount propagation %q (-v %s) is not supported by Berth: each container is its own VM, so mounts are always private", w, spec)
			case bindModes[w]:
			default:
				return bad(fmt.Sprintf("unknown option %q (use ro, rw, z, Z, nocopy)", w))
			}
		}
		if rw > 1 {
			return bad("give only one of ro and rw")
		}
	}
	m.FromBinds = true
	if filepath.IsAbs(m.Source) {
		m.Type, m.CreateSource = mount.TypeBind, true
		m.Source = filepath.Clean(m.Source)
	} else {
		m.Type = mount.TypeVolume
		if err := volume.CheckName(m.Source); err != nil {
			return bad(fmt.Sprintf("%q is neither an absolute host path nor a valid volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)", m.Source))
		}
	}
	return m, nil
}

// parseMount converts one --mount.
func parseMount(mt mount.Mount) (mountSpec, error) {
	flag := fmt.Sprintf("--mount type=%s,target=%s", mt.Type, mt.Target)
	m := mountSpec{Type: mt.Type, Source: mt.Source, Target: mt.Target, ReadOnly: mt.ReadOnly}
	if mt.ClusterOptions != nil || mt.ImageOptions != nil {
		return mountSpec{}, errf(ErrNotImplemented, "%s: cluster and image options are not supported by Berth", flag)
	}
	switch mt.Type {
	case mount.TypeBind:
		if mt.VolumeOptions != nil || mt.TmpfsOptions != nil {
			return mountSpec{}, errf(ErrInvalid, "%s: volume and tmpfs options do not apply to a bind mount", flag)
		}
		if mt.Source == "" {
			return mountSpec{}, errf(ErrInvalid, "%s: a bind mount needs source=/host/path", flag)
		}
		if !filepath.IsAbs(mt.Source) {
			return mountSpec{}, errf(ErrInvalid, "%s: bind source %q is not an absolute path", flag, mt.Source)
		}
		m.Source = filepath.Clean(mt.Source)
		if o := mt.BindOptions; o != nil {
			switch o.Propagation {
			case "", mount.PropagationPrivate, mount.PropagationRPrivate:
			default:
				return mountSpec{}, errf(ErrNotImplemented, "%s: bind propagation %q is not supported by Berth: each container is its own VM, so mounts are always private", flag, o.Propagation)
			}
			m.CreateSource = o.CreateMountpoint
		}
	case mount.TypeVolume:
		if mt.BindOptions != nil || mt.TmpfsOptions != nil {
			return mountSpec{}, errf(ErrInvalid, "%s: bind and tmpfs options do not apply to a volume", flag)
		}
		if mt.Source != "" {
			if err := volume.CheckName(mt.Source); err != nil {
				return mountSpec{}, errf(ErrInvalid, "%s: %v", flag, err)
			}
		}
		if o := mt.VolumeOptions; o != nil {
			if o.Subpath != "" {
				return mountSpec{}, errf(ErrNotImplemented, "%s: volume-subpath is not supported by Berth yet: mount the whole volume", flag)
			}
			if d := o.DriverConfig; d != nil && ((d.Name != "" && d.Name != volume.Driver) || len(d.Options) > 0) {
				return mountSpec{}, errf(ErrNotImplemented, "%s: volume drivers and driver options are not supported by Berth (only %q)", flag, volume.Driver)
			}
			m.VolumeLabels = o.Labels
			m.NoCopy = o.NoCopy
		}
	case mount.TypeTmpfs:
		if mt.Source != "" {
			return mountSpec{}, errf(ErrInvalid, "%s: a tmpfs mount takes no source", flag)
		}
		if mt.BindOptions != nil || mt.VolumeOptions != nil {
			return mountSpec{}, errf(ErrInvalid, "%s: bind and volume options do not apply to a tmpfs mount", flag)
		}
		if o := mt.TmpfsOptions; o != nil {
			if o.SizeBytes < 0 {
				return mountSpec{}, errf(ErrInvalid, "%s: tmpfs-size cannot be negative", flag)
			}
			if o.SizeBytes > 0 {
				m.TmpfsOptions = append(m.TmpfsOptions, "size="+strconv.FormatInt(o.SizeBytes, 10))
			}
			if o.Mode != 0 {
				perm := uint64(o.Mode.Perm())
				if o.Mode&fs.ModeSticky != 0 { // Go keeps the sticky bit outside Perm
					perm |= 0o1000
				}
				m.TmpfsOptions = append(m.TmpfsOptions, "mode="+strconv.FormatUint(perm, 8))
			}
			if len(o.Options) > 0 {
				return mountSpec{}, errf(ErrNotImplemented, "%s: extra tmpfs options are not supported by Berth (use tmpfs-size and tmpfs-mode)", flag)
			}
		}
	case "":
		return mountSpec{}, errf(ErrInvalid, "--mount target=%s: the mount type is missing (type=bind, volume or tmpfs)", mt.Target)
	default:
		return mountSpec{}, errf(ErrNotImplemented, "--mount type=%s is not supported by Berth (bind, volume, tmpfs)", mt.Type)
	}
	return m, nil
}

// tmpfsOptionWords are the --tmpfs options passed to the mount; the rest of
// Docker's list (exec, suid, dev and their no- forms) are mount flags the
// agent understands by name.
var tmpfsOptionWords = map[string]bool{
	"ro": true, "rw": true, "exec": true, "noexec": true, "suid": true, "nosuid": true,
	"dev": true, "nodev": true, "sync": true, "async": true, "atime": true, "noatime": true,
	"diratime": true, "nodiratime": true, "relatime": true, "norelatime": true,
	"strictatime": true, "nostrictatime": true,
}

// parseTmpfs converts one --tmpfs DST[:OPTIONS].
func parseTmpfs(target, opts string) (mountSpec, error) {
	m := mountSpec{Type: mount.TypeTmpfs, Target: target, FromTmpfs: true}
	if opts == "" {
		return m, nil
	}
	for _, o := range strings.Split(opts, ",") {
		k, _, hasVal := strings.Cut(o, "=")
		switch {
		case o == "ro":
			m.ReadOnly = true
		case o == "rw":
		case hasVal && (k == "size" || k == "mode" || k == "nr_inodes" || k == "uid" || k == "gid"):
			m.TmpfsOptions = append(m.TmpfsOptions, o)
		case !hasVal && tmpfsOptionWords[o]:
			m.TmpfsOptions = append(m.TmpfsOptions, o)
		default:
			return mountSpec{}, errf(ErrInvalid, "--tmpfs %s:%s: unknown option %q (size=, mode=, uid=, gid=, nr_inodes=, ro, noexec, nosuid, nodev, …)", target, opts, o)
		}
	}
	return m, nil
}

// parseMounts collects every mount of a create request and checks the
// destinations: absolute, not "/", each used once. It touches nothing on
// disk (prepareMounts does that).
func parseMounts(h *container.HostConfig, cfgVolumes map[string]struct{}) ([]mountSpec, error) {
	var out []mountSpec
	for _, b := range h.Binds {
		m, err := parseBind(b)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	for _, mt := range h.Mounts {
		m, err := parseMount(mt)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	tmpfs := make([]string, 0, len(h.Tmpfs))
	for dst := range h.Tmpfs {
		tmpfs = append(tmpfs, dst)
	}
	sort.Strings(tmpfs) // map order is random; mounts are made in order
	for _, dst := range tmpfs {
		m, err := parseTmpfs(dst, h.Tmpfs[dst])
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	seen := map[string]string{}
	for i := range out {
		m := &out[i]
		what := describeMount(*m)
		if m.Target == "" {
			return nil, errf(ErrInvalid, "%s: the destination (target) is missing", what)
		}
		if !path.IsAbs(m.Target) {
			return nil, errf(ErrInvalid, "%s: destination %q is not an absolute path (use e.g. /data)", what, m.Target)
		}
		m.Target = path.Clean(m.Target)
		if m.Target == "/" {
			return nil, errf(ErrInvalid, "%s: the destination cannot be \"/\" (the container's root disk): pick a directory such as /data", what)
		}
		if prev, dup := seen[m.Target]; dup {
			return nil, errf(ErrInvalid, "duplicate mount point %s: used by %s and %s", m.Target, prev, what)
		}
		seen[m.Target] = what
	}
	// -v /path (no source) reaches the API as Config.Volumes: an anonymous
	// volume, unless -v or --mount already put something there.
	anon := make([]string, 0, len(cfgVolumes))
	for dst := range cfgVolumes {
		anon = append(anon, dst)
	}
	sort.Strings(anon)
	for _, dst := range anon {
		if !path.IsAbs(dst) || path.Clean(dst) == "/" {
			return nil, errf(ErrInvalid, "-v %s: an anonymous volume needs an absolute destination other than \"/\"", dst)
		}
		if _, dup := seen[path.Clean(dst)]; dup {
			continue
		}
		seen[path.Clean(dst)] = "-v " + dst
		out = append(out, mountSpec{Type: mount.TypeVolume, Target: path.Clean(dst), FromBinds: true})
	}
	return out, nil
}

func describeMount(m mountSpec) string {
	switch {
	case m.FromTmpfs:
		return "--tmpfs " + m.Target
	case m.FromBinds:
		return "-v " + m.Source + ":" + m.Target
	}
	return fmt.Sprintf("--mount type=%s,target=%s", m.Type, m.Target)
}

// prepareMounts makes what the mounts need on the host, at create: missing
// -v bind sources (as Docker does), volumes (named ones if missing,
// anonymous ones with a fresh name). It fills in anonymous volume names.
func prepareMounts(specs []mountSpec, vols Volumes) error {
	for i := range specs {
		m := &specs[i]
		switch m.Type {
		case mount.TypeBind:
			fi, err := os.Stat(m.Source)
			switch {
			case err == nil:
				if !fi.IsDir() && !fi.Mode().IsRegular() {
					return errf(ErrInvalid, "%s: bind source %s is neither a directory nor a regular file", describeMount(*m), m.Source)
				}
			case errors.Is(err, fs.ErrNotExist) && m.CreateSource:
				if err := os.MkdirAll(m.Source, 0o755); err != nil {
					return errf(ErrInvalid, "%s: create the missing bind source: %v", describeMount(*m), err)
				}
			case errors.Is(err, fs.ErrNotExist):
				return errf(ErrInvalid, "invalid mount config for type \"bind\": bind source path does not exist: %s (create it first, or use -v, which creates it)", m.Source)
			default:
				return errf(ErrInvalid, "%s: %v", describeMount(*m), err)
			}
		case mount.TypeVolume:
			if vols == nil {
				return errf(ErrNotImplemented, "%s: this engine has no volume store", describeMount(*m))
			}
			labels := m.VolumeLabels
			if m.Source == "" {
				var b [32]byte
				rand.Read(b[:])
				m.Source, m.Anonymous = hex.EncodeToString(b[:]), true
				labels = map[string]string{volume.AnonymousLabel: ""}
			}
			if _, _, err := vols.Create(m.Source, volume.CreateOptions{Labels: labels}); err != nil {
				return err
			}
		}
	}
	return nil
}

// hostPath is where a bind or volume mount's data lives on the host.
func hostPath(m mountSpec, vols Volumes) string {
	if m.Type == mount.TypeVolume && vols != nil {
		return vols.Path(m.Source)
	}
	return m.Source
}

// vmMounts turns the mounts into the VM's virtiofs shares (one per
// distinct host directory, read-only when every mount of it is) and the
// agent's mounts, parents before children so /data/sub lands inside /data.
func vmMounts(specs []mountSpec, vols Volumes) ([]vmm.Share, []GuestMount, error) {
	var shares []vmm.Share
	byDir := map[string]int{}
	var gms []GuestMount
	for _, m := range specs {
		if m.Type == mount.TypeTmpfs {
			gms = append(gms, GuestMount{Fstype: "tmpfs", Target: m.Target, ReadOnly: m.ReadOnly, Options: m.TmpfsOptions, Source: "tmpfs"})
			continue
		}
		src := hostPath(m, vols)
		fi, err := os.Stat(src)
		if err != nil {
			return nil, nil, errf(ErrInvalid, "%s: %v", describeMount(m), err)
		}
		dir, sub := src, ""
		if !fi.IsDir() {
			dir, sub = filepath.Dir(src), filepath.Base(src)
		}
		i, ok := byDir[dir]
		if !ok {
			i = len(shares)
			byDir[dir] = i
			shares = append(shares, vmm.Share{Tag: "b" + strconv.Itoa(i), Path: dir, ReadOnly: m.ReadOnly})
		} else if !m.ReadOnly {
			shares[i].ReadOnly = false
		}
		what := m.Source
		gms = append(gms, GuestMount{Tag: shares[i].Tag, Sub: sub, Target: m.Target, ReadOnly: m.ReadOnly, Source: what})
	}
	sort.SliceStable(gms, func(a, b int) bool { return depth(gms[a].Target) < depth(gms[b].Target) })
	return shares, gms, nil
}

func depth(p string) int { return strings.Count(path.Clean(p), "/") }

// mountPoints is inspect's (and ps's) view of the mounts, Docker's way.
func mountPoints(specs []mountSpec, vols Volumes) []container.MountPoint {
	out := []container.MountPoint{}
	for _, m := range specs {
		mp := container.MountPoint{Type: m.Type, Destination: m.Target, RW: !m.ReadOnly}
		switch m.Type {
		case mount.TypeBind:
			mp.Source, mp.Mode, mp.Propagation = m.Source, m.Mode, mount.PropagationRPrivate
		case mount.TypeVolume:
			mp.Name, mp.Source, mp.Driver = m.Source, hostPath(m, vols), volume.Driver
			mp.Mode = m.Mode
			if m.FromBinds && mp.Mode == "" {
				mp.Mode = "z" // what dockerd shows for -v name:/dst
			}
		case mount.TypeTmpfs:
		}
		out = append(out, mp)
	}
	return out
}

// removeAnonymousVolumes removes the volumes made for a container's
// unnamed -v /path (docker rm -v, --rm). Named volumes always stay.
func (m *Manager) removeAnonymousVolumes(specs []mountSpec) {
	if m.cfg.Volumes == nil {
		return
	}
	for _, s := range specs {
		if s.Type == mount.TypeVolume && s.Anonymous && s.Source != "" {
			if err := m.cfg.Volumes.Remove(s.Source, true); err != nil {
				m.log.Warn("remove anonymous volume", "volume", s.Source, "err", err)
			}
		}
	}
}

// ensureMountSources makes sure, before a VM boots, that what its shares
// point at still exists: a volume is made again if it went missing (it
// cannot be removed while a container uses it, but a crash may interrupt),
// a bind source that is gone is a clear error.
func (m *Manager) ensureMountSources(specs []mountSpec) error {
	for _, s := range specs {
		switch s.Type {
		case mount.TypeVolume:
			if m.cfg.Volumes == nil {
				return errf(ErrNotImplemented, "%s: this engine has no volume store", describeMount(s))
			}
			var labels map[string]string
			if s.Anonymous {
				labels = map[string]string{volume.AnonymousLabel: ""}
			}
			if _, _, err := m.cfg.Volumes.Create(s.Source, volume.CreateOptions{Labels: labels}); err != nil {
				return fmt.Errorf("%s: %w", describeMount(s), err)
			}
		case mount.TypeBind:
			if _, err := os.Stat(s.Source); err != nil {
				return errf(ErrInvalid, "%s: bind source path is gone: %v (create it again, or remove the container)", describeMount(s), err)
			}
		}
	}
	return nil
}

// holdVolumes marks the named volumes of a create in progress as used
// until the returned release is called (after the record is written).
func (m *Manager) holdVolumes(specs []mountSpec) (release func()) {
	var names []string
	for _, s := range specs {
		if s.Type == mount.TypeVolume && s.Source != "" {
			names = append(names, s.Source)
		}
	}
	m.mu.Lock()
	for _, n := range names {
		m.creating[n]++
	}
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, n := range names {
			if m.creating[n]--; m.creating[n] <= 0 {
				delete(m.creating, n)
			}
		}
	}
}

// VolumeUsers names the containers (any state) whose mounts use the volume:
// the volume store refuses to remove it while there are any. A create in
// progress counts as "(being created)".
func (m *Manager) VolumeUsers(name string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	if m.creating[name] > 0 {
		ids = append(ids, "(being created)")
	}
	for id, c := range m.byID {
		for _, s := range c.rec.Mounts {
			if s.Type == mount.TypeVolume && s.Source == name {
				ids = append(ids, id)
				break
			}
		}
	}
	sort.Strings(ids)
	return ids
}
