package container

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/state"
	"github.com/berth-dev/berth/runtime/vmm"
	"github.com/berth-dev/berth/runtime/volume"
)

func TestParseBind(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want mountSpec
	}{
		{"/host:/data", mountSpec{Type: mount.TypeBind, Source: "/host", Target: "/data", FromBinds: true, CreateSource: true}},
		{"/host/../h2/:/data:ro", mountSpec{Type: mount.TypeBind, Source: "/h2", Target: "/data", ReadOnly: true, Mode: "ro", FromBinds: true, CreateSource: true}},
		{"/h:/d:ro,Z", mountSpec{Type: mount.TypeBind, Source: "/h", Target: "/d", ReadOnly: true, Mode: "ro,Z", FromBinds: true, CreateSource: true}},
		{"/h:/d:rw,z,rprivate", mountSpec{Type: mount.TypeBind, Source: "/h", Target: "/d", Mode: "rw,z,rprivate", FromBinds: true, CreateSource: true}},
		{"v1:/data", mountSpec{Type: mount.TypeVolume, Source: "v1", Target: "/data", FromBinds: true}},
		{"my_vol.2:/data:nocopy", mountSpec{Type: mount.TypeVolume, Source: "my_vol.2", Target: "/data", Mode: "nocopy", FromBinds: true, NoCopy: true}},
	} {
		got, err := parseBind(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseBind(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		kind error
		msg  string
	}{
		{"/only", ErrInvalid, "SOURCE:DESTINATION"},
		{"a:b:c:d", ErrInvalid, "SOURCE:DESTINATION"},
		{":/data", ErrInvalid, "source is empty"},
		{"/h:/d:rx", ErrInvalid, `unknown option "rx"`},
		{"/h:/d:ro,rw", ErrInvalid, "only one of ro and rw"},
		{"/h:/d:", ErrInvalid, `unknown option ""`},
		{"/h:/d:rshared", ErrNotImplemented, "propagation"},
		{"bad/name:/d", ErrInvalid, "neither an absolute host path nor a valid volume name"},
		{"x:/d", ErrInvalid, "valid volume name"},
		{"./rel:/d", ErrInvalid, "valid volume name"},
	} {
		_, err := parseBind(tc.in)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "-v") && tc.kind == ErrInvalid {
			t.Errorf("parseBind(%q) = %v; want %v containing %q", tc.in, err, tc.kind, tc.msg)
		}
	}
}

func TestParseMounts(t *testing.T) {
	ok := func(h container.HostConfig, vols map[string]struct{}) []mountSpec {
		t.Helper()
		ms, err := parseMounts(&h, vols)
		if err != nil {
			t.Fatalf("parseMounts(%+v): %v", h, err)
		}
		return ms
	}
	ms := ok(container.HostConfig{
		Binds: []string{"/a:/a"},
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: "/b", Target: "/b/", ReadOnly: true},
			{Type: mount.TypeVolume, Source: "vv", Target: "/v", VolumeOptions: &mount.VolumeOptions{Labels: map[string]string{"k": "v"}}},
			{Type: mount.TypeVolume, Target: "/anon"},
			{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 1 << 20, Mode: 0o777 | os.ModeSticky}},
		},
		Tmpfs: map[string]string{"/run": "size=64m,noexec", "/cache": ""},
	}, map[string]struct{}{"/anon2": {}, "/a": {}})
	want := []mountSpec{
		{Type: mount.TypeBind, Source: "/a", Target: "/a", FromBinds: true, CreateSource: true},
		{Type: mount.TypeBind, Source: "/b", Target: "/b", ReadOnly: true},
		{Type: mount.TypeVolume, Source: "vv", Target: "/v", VolumeLabels: map[string]string{"k": "v"}},
		{Type: mount.TypeVolume, Target: "/anon"},
		{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: []string{"size=1048576", "mode=1777"}},
		{Type: mount.TypeTmpfs, Target: "/cache", FromTmpfs: true},
		{Type: mount.TypeTmpfs, Target: "/run", FromTmpfs: true, TmpfsOptions: []string{"size=64m", "noexec"}},
		// Config.Volumes /a is already a bind: only /anon2 becomes anonymous.
		{Type: mount.TypeVolume, Target: "/anon2", FromBinds: true},
	}
	if !reflect.DeepEqual(ms, want) {
		t.Fatalf("got  %+v\nwant %+v", ms, want)
	}

	for _, tc := range []struct {
		name string
		h    container.HostConfig
		vols map[string]struct{}
		kind error
		msg  string
	}{
		{"relative dest -v", container.HostConfig{Binds: []string{"/h:data"}}, nil, ErrInvalid, `-v /h:data: destination "data" is not an absolute path`},
		{"root dest -v", container.HostConfig{Binds: []string{"/h:/"}}, nil, ErrInvalid, `cannot be "/"`},
		{"root dest --mount", container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeTmpfs, Target: "/."}}}, nil, ErrInvalid, `--mount type=tmpfs,target=/.: the destination cannot be "/"`},
		{"missing target", container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: "vv"}}}, nil, ErrInvalid, "destination (target) is missing"},
		{"duplicate", container.HostConfig{Binds: []string{"/a:/data"}, Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: "vv", Target: "/data/"}}}, nil, ErrInvalid, "duplicate mount point /data: used by -v /a:/data and --mount type=volume"},
		{"duplicate tmpfs", container.HostConfig{Binds: []string{"/a:/run"}, Tmpfs: map[string]string{"/run": ""}}, nil, ErrInvalid, "duplicate mount point /run"},
		{"bad volume name --mount", container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: "a/b", Target: "/d"}}}, nil, ErrInvalid, "invalid volume name"},
		{"unknown type", container.HostConfig{Mounts: []mount.Mount{{Type: "npipe", Source: "x", Target: "/d"}}}, nil, ErrNotImplemented, "--mount type=npipe is not supported"},
		{"no type", container.HostConfig{Mounts: []mount.Mount{{Source: "x", Target: "/d"}}}, nil, ErrInvalid, "mount type is missing"},
		{"bind without source", container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Target: "/d"}}}, nil, ErrInvalid, "needs source="},
		{"bind relative source", container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Source: "rel", Target: "/d"}}}, nil, ErrInvalid, "not an absolute path"},
		{"bind propagation", container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Source: "/h", Target: "/d", BindOptions: &mount.BindOptions{Propagation: mount.PropagationRShared}}}}, nil, ErrNotImplemented, "propagation"},
		{"tmpfs source", container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeTmpfs, Source: "x", Target: "/d"}}}, nil, ErrInvalid, "takes no source"},
		{"volume subpath", container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: "vv", Target: "/d", VolumeOptions: &mount.VolumeOptions{Subpath: "x"}}}}, nil, ErrNotImplemented, "volume-subpath"},
		{"volume driver", container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: "vv", Target: "/d", VolumeOptions: &mount.VolumeOptions{DriverConfig: &mount.Driver{Name: "nfs"}}}}}, nil, ErrNotImplemented, "volume drivers"},
		{"tmpfs bad option", container.HostConfig{Tmpfs: map[string]string{"/t": "size=1m,bogus"}}, nil, ErrInvalid, `--tmpfs /t:size=1m,bogus: unknown option "bogus"`},
		{"tmpfs relative", container.HostConfig{Tmpfs: map[string]string{"t": ""}}, nil, ErrInvalid, "--tmpfs t: destination"},
		{"anonymous relative", container.HostConfig{}, map[string]struct{}{"data": {}}, ErrInvalid, "-v data: an anonymous volume needs an absolute destination"},
	} {
		_, err := parseMounts(&tc.h, tc.vols)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v; want %v containing %q", tc.name, err, tc.kind, tc.msg)
		}
	}
}

func volumeStore(t *testing.T) *volume.Store {
	t.Helper()
	root, err := dataroot.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(root.StateDB())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := volume.Open(db, root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// prepareMounts and vmMounts against a real directory tree and volume
// store: sources created or refused the way Docker does, one share per
// directory, a file bind shares its parent, parents mount first.
func TestPrepareAndShare(t *testing.T) {
	vols := volumeStore(t)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "dir")
	os.Mkdir(dir, 0o755)
	file := filepath.Join(dir, "conf.txt")
	os.WriteFile(file, []byte("x"), 0o644)
	created := filepath.Join(tmp, "new", "deep")

	h := container.HostConfig{
		Binds: []string{dir + ":/data/sub:ro", created + ":/new", "v1:/vol"},
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: file, Target: "/etc/app.conf", ReadOnly: true},
			{Type: mount.TypeBind, Source: dir, Target: "/data"},
			{Type: mount.TypeTmpfs, Target: "/tmp/x"},
		},
	}
	specs, err := parseMounts(&h, map[string]struct{}{"/anon": {}})
	if err != nil {
		t.Fatal(err)
	}
	if err := prepareMounts(specs, vols); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(created); err != nil || !fi.IsDir() {
		t.Fatalf("-v did not create the missing source: %v", err)
	}
	if _, err := vols.Get("v1"); err != nil {
		t.Fatalf("-v v1 did not create the volume: %v", err)
	}
	anon := specs[len(specs)-1]
	if !anon.Anonymous || len(anon.Source) != 64 {
		t.Fatalf("anonymous volume: %+v", anon)
	}
	if v, err := vols.Get(anon.Source); err != nil || !v.Anonymous() {
		t.Fatalf("anonymous volume record: %+v %v", v, err)
	}
	shares, gms, err := vmMounts(specs, vols)
	if err != nil {
		t.Fatal(err)
	}
	wantShares := []vmm.Share{
		{Tag: "b0", Path: dir}, // ro once, rw once: the share is rw
		{Tag: "b1", Path: created},
		{Tag: "b2", Path: vols.Path("v1")},
		{Tag: "b3", Path: vols.Path(anon.Source)},
	}
	if !reflect.DeepEqual(shares, wantShares) {
		t.Fatalf("shares %+v\nwant   %+v", shares, wantShares)
	}
	wantMounts := []GuestMount{
		{Tag: "b1", Target: "/new", Source: created},
		{Tag: "b2", Target: "/vol", Source: "v1"},
		{Tag: "b0", Target: "/data", Source: dir},
		{Tag: "b3", Target: "/anon", Source: anon.Source},
		// deeper targets after /data, each group in the order given
		{Tag: "b0", Target: "/data/sub", ReadOnly: true, Source: dir},
		{Tag: "b0", Sub: "conf.txt", Target: "/etc/app.conf", ReadOnly: true, Source: file},
		{Target: "/tmp/x", Fstype: "tmpfs", Source: "tmpfs"},
	}
	if !reflect.DeepEqual(gms, wantMounts) {
		t.Fatalf("guest mounts %+v\nwant         %+v", gms, wantMounts)
	}
	for _, g := range gms {
		if g.Tag != "" && len(g.Tag) > vmm.MaxShareTag {
			t.Fatalf("tag too long: %q", g.Tag)
		}
	}
	mps := mountPoints(specs, vols)
	if mp := mps[2]; mp.Type != mount.TypeVolume || mp.Name != "v1" || mp.Driver != "local" || mp.Source != vols.Path("v1") || mp.Mode != "z" || !mp.RW {
		t.Fatalf("volume mount point %+v", mp)
	}
	if mp := mps[0]; mp.Type != mount.TypeBind || mp.Source != dir || mp.Mode != "ro" || mp.RW || mp.Propagation != mount.PropagationRPrivate {
		t.Fatalf("bind mount point %+v", mp)
	}

	// --mount bind with a missing source is an error, and creates nothing.
	missing := filepath.Join(tmp, "missing")
	specs, _ = parseMounts(&container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Source: missing, Target: "/d"}}}, nil)
	err = prepareMounts(specs, vols)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "bind source path does not exist: "+missing) {
		t.Fatalf("missing --mount source: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("--mount created its missing source: %v", err)
	}
}

// A create in progress holds its named volumes: `volume rm` between the
// volume's creation and the container's record must be refused.
func TestHoldVolumes(t *testing.T) {
	m := &Manager{byID: map[string]*ctr{}, creating: map[string]int{}}
	specs := []mountSpec{{Type: mount.TypeVolume, Source: "vv", Target: "/a"}, {Type: mount.TypeBind, Source: "/h", Target: "/b"}}
	r1, r2 := m.holdVolumes(specs), m.holdVolumes(specs)
	if got := m.VolumeUsers("vv"); len(got) != 1 {
		t.Fatalf("users while creating: %v", got)
	}
	r1()
	if got := m.VolumeUsers("vv"); len(got) != 1 {
		t.Fatalf("users while the second create runs: %v", got)
	}
	r2()
	if got := m.VolumeUsers("vv"); len(got) != 0 {
		t.Fatalf("users after both creates: %v", got)
	}
	m.byID["c1"] = &ctr{rec: record{ID: "c1", Mounts: specs}}
	if got := m.VolumeUsers("vv"); !reflect.DeepEqual(got, []string{"c1"}) {
		t.Fatalf("users with a record: %v", got)
	}
}
