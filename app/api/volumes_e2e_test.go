package api

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/volume"
)

// TestDockerCLIVolumes drives bind mounts, named volumes and tmpfs with the
// real docker CLI against real QEMU VMs: the host sees what the container
// wrote, :ro and readonly hold, a single file can be bound, a named volume
// carries data from one container to the next, a restart mounts everything
// again, and `docker volume` manages the volumes. Three VM boots in all.
func TestDockerCLIVolumes(t *testing.T) {
	e, d := vmTest(t)
	sock, img := e.Sock, e.Image

	data, ro, rdonly := t.TempDir(), t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(data, "in"), []byte("from-the-host\n"), 0o644)
	os.WriteFile(filepath.Join(ro, "keep"), []byte("ro-data\n"), 0o644)
	os.WriteFile(filepath.Join(rdonly, "keep"), []byte("readonly-data\n"), 0o644)
	confDir := t.TempDir()
	conf := filepath.Join(confDir, "app.conf")
	os.WriteFile(conf, []byte("setting=1\n"), 0o644)
	os.WriteFile(filepath.Join(confDir, "secret"), []byte("sibling\n"), 0o644)
	created := filepath.Join(t.TempDir(), "made", "by", "run")

	if out := d("volume", "create", "--label", "app=test", "v1"); strings.TrimSpace(out) != "v1" {
		t.Fatalf("volume create printed %q", out)
	}
	d("volume", "create", "v1") // idempotent, as in Docker
	if out := d("volume", "ls", "--format", "{{.Name}} {{.Driver}}"); strings.TrimSpace(out) != "v1 local" {
		t.Fatalf("volume ls:\n%s", out)
	}
	var vi []volume.Volume
	if err := json.Unmarshal([]byte(d("volume", "inspect", "v1")), &vi); err != nil || len(vi) != 1 ||
		vi[0].Labels["app"] != "test" || vi[0].Mountpoint != filepath.Join(e.Root.Volumes(), "v1", "_data") {
		t.Fatalf("volume inspect: %+v %v", vi, err)
	}

	// One container exercises every mount kind; its script is idempotent so
	// `docker start -a` can run it again after the restart.
	script := strings.Join([]string{
		"cat /data/in",
		"echo hi >> /data/out",
		"cat /ro/keep",
		"echo x > /ro/new 2>/dev/null && echo RO-WRITABLE",
		"cat /etc/app.conf",
		"echo x >> /etc/app.conf 2>/dev/null && echo FILE-WRITABLE",
		"ls /etc/secret 2>/dev/null && echo SIBLING-VISIBLE",
		"cat /rd/keep",
		"touch /rd/new 2>/dev/null && echo READONLY-WRITABLE",
		"echo tmp > /scratch/t && cat /scratch/t",
		"grep -q ' /scratch tmpfs ' /proc/mounts && echo scratch-is-tmpfs",
		"echo made > /made/f",
		"echo shared-data > /vol/v",
		"echo anon > /anon/a",
		"echo done",
	}, "; ")
	r := docker(t, sock, nil, "run", "--name", "m1",
		"-v", data+":/data",
		"-v", ro+":/ro:ro",
		"-v", conf+":/etc/app.conf:ro",
		"--mount", "type=bind,source="+rdonly+",target=/rd,readonly",
		"--mount", "type=tmpfs,destination=/scratch",
		"-v", created+":/made",
		"-v", "v1:/vol",
		"-v", "/anon",
		img, "sh", "-c", script)
	want := "from-the-host\nro-data\nsetting=1\nreadonly-data\ntmp\nscratch-is-tmpfs\ndone\n"
	if r.Code != 0 || r.Stdout != want {
		t.Fatalf("docker run with mounts: exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", r.Code, r.Stdout, want, r.Stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "out")); string(b) != "hi\n" {
		t.Fatalf("the host sees /data/out = %q, want hi", b)
	}
	if _, err := os.Stat(filepath.Join(ro, "new")); err == nil {
		t.Fatal("a :ro bind was written to")
	}
	if b, _ := os.ReadFile(conf); string(b) != "setting=1\n" {
		t.Fatalf("a :ro file bind changed: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(created, "f")); string(b) != "made\n" {
		t.Fatalf("-v with a missing source: the host sees %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(e.Root.Volumes(), "v1", "_data", "v")); string(b) != "shared-data\n" {
		t.Fatalf("volume v1 holds %q", b)
	}

	var mounts []container.MountPoint
	if err := json.Unmarshal([]byte(d("inspect", "--format", "{{json .Mounts}}", "m1")), &mounts); err != nil {
		t.Fatal(err)
	}
	byDst := map[string]container.MountPoint{}
	for _, m := range mounts {
		byDst[m.Destination] = m
	}
	var anon string
	for _, c := range []struct {
		dst, typ, src string
		rw            bool
	}{
		{"/data", "bind", data, true}, {"/ro", "bind", ro, false}, {"/etc/app.conf", "bind", conf, false},
		{"/rd", "bind", rdonly, false}, {"/scratch", "tmpfs", "", true}, {"/made", "bind", created, true},
		{"/vol", "volume", filepath.Join(e.Root.Volumes(), "v1", "_data"), true},
	} {
		m, ok := byDst[c.dst]
		if !ok || string(m.Type) != c.typ || m.Source != c.src || m.RW != c.rw {
			t.Errorf("inspect Mounts %s = %+v; want type %s source %s rw %v", c.dst, m, c.typ, c.src, c.rw)
		}
	}
	if m := byDst["/vol"]; m.Name != "v1" || m.Driver != "local" {
		t.Errorf("volume mount point %+v", m)
	}
	if m := byDst["/anon"]; m.Type != "volume" || len(m.Name) != 64 {
		t.Errorf("anonymous volume mount point %+v", m)
	} else {
		anon = m.Name
	}
	if len(mounts) != 8 {
		t.Errorf("inspect shows %d mounts, want 8: %+v", len(mounts), mounts)
	}

	// A volume a container uses cannot go, even with -f (as in Docker).
	for _, args := range [][]string{{"volume", "rm", "v1"}, {"volume", "rm", "-f", "v1"}} {
		if r := docker(t, sock, nil, args...); r.Code == 0 || !strings.Contains(r.Stderr, "volume is in use") {
			t.Fatalf("docker %s while m1 uses it: exit %d %q", strings.Join(args, " "), r.Code, r.Stderr)
		}
	}

	// The restart mounts everything again from the record.
	r = docker(t, sock, nil, "start", "-a", "m1")
	if r.Code != 0 || r.Stdout != want {
		t.Fatalf("docker start -a m1: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "out")); string(b) != "hi\nhi\n" {
		t.Fatalf("after the restart the host sees /data/out = %q", b)
	}

	d("rm", "-v", "m1")
	if out := d("volume", "ls", "-q"); strings.Contains(out, anon) || !strings.Contains(out, "v1") {
		t.Fatalf("after rm -v: volume ls:\n%s (anonymous %s should be gone, v1 kept)", out, anon)
	}

	// A second container reads what the first left in v1.
	if out := d("run", "--rm", "-v", "v1:/data:ro", img, "cat", "/data/v"); out != "shared-data\n" {
		t.Fatalf("second container reads %q from v1", out)
	}
	if out := d("volume", "ls", "-q", "--filter", "dangling=true"); !slices.Contains(strings.Fields(out), "v1") {
		t.Fatalf("v1 should be dangling now: %q", out)
	}
	d("volume", "rm", "v1")
	if _, err := os.Stat(filepath.Join(e.Root.Volumes(), "v1")); !os.IsNotExist(err) {
		t.Fatalf("volume rm left the directory: %v", err)
	}
	if r := docker(t, sock, nil, "volume", "inspect", "v1"); r.Code == 0 || !strings.Contains(r.Stderr, "no such volume") {
		t.Fatalf("inspect a removed volume: exit %d %q", r.Code, r.Stderr)
	}
}

// Bad mount requests are refused before any VM boots, in one line naming
// the flag, and leave nothing behind.
func TestDockerCLIVolumesBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the engine")
	}
	e := startEngine(t)
	sock, img := e.Sock, e.Image
	mustDocker(t, sock, "pull", img)
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"volume", "create", "a/b"}, "invalid volume name"},
		{[]string{"volume", "create", "--driver", "nfs", "vv"}, `volume driver "nfs" is not supported`},
		{[]string{"volume", "rm", "nosuch"}, "no such volume: nosuch"},
		{[]string{"run", "--mount", "type=bind,source=" + dir + "/missing,target=/d", img, "true"}, "bind source path does not exist"},
		{[]string{"run", "-v", dir + ":/d", "-v", "/tmp:/d/", img, "true"}, "duplicate mount point /d"},
		{[]string{"run", "-v", dir + ":/d:bogus", img, "true"}, `unknown option "bogus"`},
		{[]string{"run", "--tmpfs", "/t:bogus", img, "true"}, `unknown option "bogus"`},
		{[]string{"run", "--mount", "type=volume,source=vv,target=/d,volume-subpath=x", img, "true"}, "volume-subpath"},
	} {
		r := docker(t, sock, nil, tc.args...)
		first, _, _ := strings.Cut(r.Stderr, "\n") // the CLI adds its own "Run 'docker run --help'" after a blank line
		if r.Code == 0 || !strings.Contains(first, tc.want) {
			t.Errorf("docker %s: exit %d stderr %q; want a failure mentioning %q", strings.Join(tc.args, " "), r.Code, r.Stderr, tc.want)
		}
	}
	if out := mustDocker(t, sock, "ps", "-aq"); strings.TrimSpace(out) != "" {
		t.Errorf("refused runs left containers: %q", out)
	}
	if out := mustDocker(t, sock, "volume", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("refused requests left volumes: %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("--mount created its missing source")
	}

	// prune: anonymous volumes by default, every unused one with -a; the
	// reclaimed space is reported; system df counts volumes.
	anon := strings.TrimSpace(mustDocker(t, sock, "volume", "create"))
	if len(anon) != 64 {
		t.Fatalf("volume create without a name printed %q", anon)
	}
	mustDocker(t, sock, "volume", "create", "keepme")
	os.WriteFile(filepath.Join(e.Root.Volumes(), anon, "_data", "f"), make([]byte, 4096), 0o644)
	if out := mustDocker(t, sock, "system", "df", "--format", "{{.Type}} {{.TotalCount}}"); !strings.Contains(out, "Local Volumes 2") {
		t.Errorf("system df:\n%s", out)
	}
	if out := mustDocker(t, sock, "volume", "prune", "-f"); !strings.Contains(out, anon) || strings.Contains(out, "keepme") || !strings.Contains(out, "4.096kB") {
		t.Errorf("volume prune -f:\n%s", out)
	}
	if out := mustDocker(t, sock, "volume", "prune", "-af"); !strings.Contains(out, "keepme") {
		t.Errorf("volume prune -af:\n%s", out)
	}
	if out := mustDocker(t, sock, "volume", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("after prune -a: %q", out)
	}
}

// TestDockerCLIVolumeCopyUp: a new volume mounted over an image directory
// starts with the image's files (Docker's copy-up); nocopy keeps it empty.
// One VM.
func TestDockerCLIVolumeCopyUp(t *testing.T) {
	e, _ := vmTest(t)
	sock, img := e.Sock, e.Image
	out := mustDocker(t, sock, "run", "--rm", "-v", "cfg:/etc", "-v", "hm:/home", "-v", "bare:/var:nocopy", img, "sh", "-c",
		"grep -c '^root:' /etc/passwd; stat -c '%n %u' /home/app; ls -A /var | wc -l")
	if out != "1\n/home/app 1000\n0\n" {
		t.Fatalf("want /etc and /home filled from the image (owner kept) and /var (nocopy) empty, got:\n%s", out)
	}
	if b, err := os.ReadFile(filepath.Join(e.Root.Volumes(), "cfg", "_data", "passwd")); err != nil || !strings.Contains(string(b), "root:") {
		t.Fatalf("the volume on the host lacks the image's passwd: %q %v", b, err)
	}
}
