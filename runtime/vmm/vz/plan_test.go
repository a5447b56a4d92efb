package vz

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/runtime/vmm"
)

// arm64Image writes a file with an arm64 Image header (magic at 0x38).
func arm64Image(t *testing.T, dir string) string {
	t.Helper()
	head := make([]byte, 128)
	copy(head[0x38:], "ARM\x64")
	p := filepath.Join(dir, "Image")
	if err := os.WriteFile(p, head, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func touch(t *testing.T, p string) string {
	t.Helper()
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func goodConfig(t *testing.T) vmm.Config {
	dir := t.TempDir()
	return vmm.Config{
		ID: "c1", Arch: "arm64", Kernel: arm64Image(t, dir), Initrd: touch(t, filepath.Join(dir, "initrd")),
		Cmdline: "quiet", CPUs: 2, MemoryMiB: 512, StateDir: dir, ConsoleLog: filepath.Join(dir, "console.log"),
		Disks: []vmm.Disk{{Path: touch(t, filepath.Join(dir, "rootfs.ext4"))}},
	}
}

var macLimits = Limits{MinCPUs: 1, MaxCPUs: 8, MinMemoryMiB: 128, MaxMemoryMiB: 16384}

func TestPlanGood(t *testing.T) {
	cfg := goodConfig(t)
	p, err := makePlan(cfg, macLimits, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if p.CPUs != 2 || p.MemoryBytes != 512<<20 || len(p.Clamped) != 0 {
		t.Errorf("shape: %d CPUs %d bytes %v", p.CPUs, p.MemoryBytes, p.Clamped)
	}
	if p.Cmdline != "quiet console=hvc0" {
		t.Errorf("cmdline %q", p.Cmdline)
	}
	if p.MAC.String() != vmm.StableMAC("c1") {
		t.Errorf("MAC %s, want the stable one %s", p.MAC, vmm.StableMAC("c1"))
	}
	// Same ID, same MAC: the DHCP lease survives restarts.
	p2, _ := makePlan(cfg, macLimits, "arm64")
	if p2.MAC.String() != p.MAC.String() {
		t.Error("MAC not stable")
	}
}

func TestPlanClamps(t *testing.T) {
	cfg := goodConfig(t)
	cfg.CPUs, cfg.MemoryMiB = 64, 1<<20
	p, err := makePlan(cfg, macLimits, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if p.CPUs != 8 || p.MemoryBytes != 16384<<20 || len(p.Clamped) != 2 {
		t.Errorf("got %d CPUs, %d bytes, notes %q", p.CPUs, p.MemoryBytes, p.Clamped)
	}
	cfg.CPUs, cfg.MemoryMiB = 1, 64
	p, _ = makePlan(cfg, Limits{MinCPUs: 2, MaxCPUs: 8, MinMemoryMiB: 128, MaxMemoryMiB: 1024}, "arm64")
	if p.CPUs != 2 || p.MemoryBytes != 128<<20 {
		t.Errorf("minimums: got %d CPUs, %d bytes", p.CPUs, p.MemoryBytes)
	}
}

func TestLimitsFromBytesStayAllowed(t *testing.T) {
	l := limitsFromBytes(1, 10, (128<<20)+1, (4<<30)+12345)
	if l.MinMemoryMiB != 129 || l.MaxMemoryMiB != 4096 {
		t.Errorf("got %+v", l)
	}
}

func TestPlanRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*vmm.Config)
		host string
		want string
	}{
		{"wrong arch", func(c *vmm.Config) { c.Arch = "amd64" }, "arm64", "cannot run a linux/amd64 VM on a arm64 Mac"},
		{"rosetta on intel", func(c *vmm.Config) { c.Arch = "amd64"; c.Rosetta = true }, "amd64", "Rosetta is only available on Apple silicon"},
		{"missing kernel", func(c *vmm.Config) { c.Kernel = "/nonexistent/Image" }, "arm64", "kernel /nonexistent/Image"},
		{"missing disk", func(c *vmm.Config) { c.Disks[0].Path = "/nonexistent/disk" }, "arm64", "disk 0"},
		{"no console", func(c *vmm.Config) { c.ConsoleLog = "" }, "arm64", "no console log"},
		{"bad mac", func(c *vmm.Config) { c.MAC = "zz:00" }, "arm64", `bad MAC address "zz:00"`},
		{"multicast mac", func(c *vmm.Config) { c.MAC = "03:00:00:00:00:01" }, "arm64", "multicast"},
		{"too little memory", func(c *vmm.Config) { c.MemoryMiB = 16 }, "arm64", "at least 64 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := goodConfig(t)
			tc.edit(&cfg)
			_, err := makePlan(cfg, macLimits, tc.host)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestKernelFormat(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	zboot := make([]byte, 64)
	copy(zboot, "MZ\x00\x00zimg")
	efiImage := make([]byte, 64) // an EFI-stub Image also starts with MZ
	copy(efiImage, "MZ")
	copy(efiImage[0x38:], "ARM\x64")
	for _, tc := range []struct {
		name string
		data []byte
		want string // "" = accepted
	}{
		{"image", efiImage, ""},
		{"gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0}, "gzip-compressed"},
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 0}, "zstd-compressed"},
		{"zboot", zboot, "EFI zboot"},
		{"empty", nil, "not an arm64 Linux Image"},
		{"x86 bzImage", append(make([]byte, 0x202), "HdrS"...), "not an arm64 Linux Image"},
	} {
		err := checkArm64Image(write(tc.name, tc.data))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: want %q, got %v", tc.name, tc.want, err)
		}
	}
	// The Debian arm64 cloud kernel the CI fetches is exactly what vz boots.
	// (fetched by packaging/fetch-arm64.sh, which setup-linux.sh runs).
	if k := "/var/cache/berth/arm64/vmlinuz"; fileExists(k) {
		if err := checkArm64Image(k); err != nil {
			t.Errorf("Debian arm64 kernel: %v", err)
		}
	} else {
		t.Logf("%s absent: the real-kernel check did not run", k)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestCmdline(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "console=hvc0",
		"  panic=-1 ":           "panic=-1 console=hvc0",
		"console=ttyAMA0 quiet": "console=ttyAMA0 quiet console=hvc0",
		"quiet console=hvc0":    "quiet console=hvc0",
		"quiet xconsole=1":      "quiet xconsole=1 console=hvc0",
	} {
		if got := cmdline(in); got != want {
			t.Errorf("cmdline(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEnsureFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "console.log")
	if err := ensureFile(p); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, []byte("kept"), 0o600)
	if err := ensureFile(p); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "kept" {
		t.Errorf("existing log truncated: %q", b)
	}
	if err := ensureFile(filepath.Join(t.TempDir(), "missing-dir", "x")); err == nil {
		t.Error("no error for a missing directory")
	}
}

// Shares become one virtiofs device each, in config order, with Rosetta's
// last; bad shares are refused with the tag and what to do.
func TestPlanShares(t *testing.T) {
	cfg := goodConfig(t)
	rw, ro := t.TempDir(), t.TempDir()
	cfg.Shares = []vmm.Share{{Tag: "vol1", Path: rw}, {Tag: "bind-2", Path: ro, ReadOnly: true}}
	cfg.Rosetta = true
	p, err := makePlan(cfg, macLimits, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	want := []shareDevice{{Tag: "vol1", Path: rw}, {Tag: "bind-2", Path: ro, ReadOnly: true}, {Tag: RosettaTag, Rosetta: true}}
	if len(p.Shares) != len(want) {
		t.Fatalf("devices %+v, want %+v", p.Shares, want)
	}
	for i := range want {
		if p.Shares[i] != want[i] {
			t.Errorf("device %d = %+v, want %+v", i, p.Shares[i], want[i])
		}
	}
	cfg.Rosetta = false
	if p, _ := makePlan(cfg, macLimits, "arm64"); len(p.Shares) != 2 || p.Shares[1].Rosetta {
		t.Errorf("without Rosetta: %+v", p.Shares)
	}
	cfg.Shares = nil
	if p, _ := makePlan(cfg, macLimits, "arm64"); len(p.Shares) != 0 {
		t.Errorf("no shares, no Rosetta: %+v", p.Shares)
	}

	file := touch(t, filepath.Join(t.TempDir(), "app.conf"))
	for _, c := range []struct {
		share   vmm.Share
		rosetta bool
		want    string
	}{
		{vmm.Share{Tag: "v", Path: filepath.Join(rw, "missing")}, false, `vz: share "v": ` + filepath.Join(rw, "missing") + ` does not exist: create it or fix the path`},
		{vmm.Share{Tag: "v", Path: file}, false, `vz: share "v": ` + file + ` is not a directory (virtiofs shares directories; share the file's directory)`},
		{vmm.Share{Tag: RosettaTag, Path: rw}, true, `vz: share tag "rosetta" is reserved for Rosetta: choose another tag`},
		{vmm.Share{Tag: RosettaTag, Path: rw}, false, `vz: share tag "rosetta" is reserved for Rosetta: choose another tag`},
		{vmm.Share{Tag: "v", Path: "relative/dir"}, false, `vm config: share "v": path "relative/dir" is not absolute`},
		{vmm.Share{Tag: strings.Repeat("x", vmm.MaxShareTag+1), Path: rw}, false, "1 to 36 bytes"},
	} {
		cfg := goodConfig(t)
		cfg.Shares, cfg.Rosetta = []vmm.Share{c.share}, c.rosetta
		_, err := makePlan(cfg, macLimits, "arm64")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.share, err, c.want)
		}
	}
}

// User networks: kept in order after the NAT NIC with their MACs parsed;
// bad ones refused in one line naming the NIC.
func TestPlanNetworks(t *testing.T) {
	r, w, err := os.Pipe() // any *os.File: the socket type is vz's own check
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	cfg := goodConfig(t)
	cfg.MAC = "02:00:00:00:00:01"
	cfg.Networks = []vmm.NetworkAttachment{{File: r, MAC: "02:42:AC:1E:00:02"}, {File: w, MAC: "02:42:ac:1f:00:02"}}
	p, err := makePlan(cfg, macLimits, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Networks) != 2 || p.Networks[0].File != r || p.Networks[0].MAC.String() != "02:42:ac:1e:00:02" ||
		p.Networks[1].File != w || p.Networks[1].MAC.String() != "02:42:ac:1f:00:02" {
		t.Fatalf("networks %+v", p.Networks)
	}
	cfg.Networks = nil
	if p, err := makePlan(cfg, macLimits, "arm64"); err != nil || len(p.Networks) != 0 {
		t.Fatalf("no networks: %+v %v", p.Networks, err)
	}

	for _, tc := range []struct {
		name string
		nets []vmm.NetworkAttachment
		want string
	}{
		{"bad mac", []vmm.NetworkAttachment{{File: r, MAC: "02:42"}}, `network 1 (eth1): bad MAC address "02:42"`},
		{"multicast", []vmm.NetworkAttachment{{File: r, MAC: "01:00:5e:00:00:01"}}, "multicast"},
		{"zero", []vmm.NetworkAttachment{{File: r, MAC: "00:00:00:00:00:00"}}, "not an address"},
		{"eth0's mac", []vmm.NetworkAttachment{{File: r, MAC: "02:00:00:00:00:01"}}, "already eth0's"},
		{"twice", []vmm.NetworkAttachment{{File: r, MAC: "02:00:00:00:00:02"}, {File: w, MAC: "02:00:00:00:00:02"}}, "network 2 (eth2): MAC 02:00:00:00:00:02 is already eth1's"},
		{"no file", []vmm.NetworkAttachment{{MAC: "02:00:00:00:00:02"}}, "network 1 (eth1): no socket"},
		{"too many", make([]vmm.NetworkAttachment, MaxNetworks+1), "9 networks, at most 8"},
	} {
		cfg.Networks = tc.nets
		_, err := makePlan(cfg, macLimits, "arm64")
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: want one line containing %q, got %v", tc.name, tc.want, err)
		}
	}
}
