package shell

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestIsAppLaunch(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "Berth.app", "Contents", "MacOS", "berth")
	os.MkdirAll(filepath.Dir(exe), 0o755)
	os.WriteFile(exe, []byte("#!"), 0o755)
	link := filepath.Join(dir, "bin", "berth")
	os.MkdirAll(filepath.Dir(link), 0o755)
	os.Symlink(exe, link)
	plain := filepath.Join(dir, "build", "berth")

	for _, tc := range []struct {
		args []string
		exe  string
		want bool
	}{
		{nil, exe, true},
		{[]string{"-psn_0_12345"}, exe, true},
		{[]string{"-psn_0_12345"}, plain, true},
		{nil, plain, false},                // `berth` from a shell: CLI help
		{[]string{"ps"}, exe, false},       // CLI inside the bundle
		{[]string{"daemon"}, plain, false}, // the headless engine
		{nil, link, true},                  // the symlink resolves into the bundle …
		{[]string{"images"}, link, false},  // … but with a command it is the CLI
	} {
		if got := IsAppLaunch(tc.args, tc.exe); got != tc.want {
			t.Errorf("IsAppLaunch(%q, %s) = %v, want %v", tc.args, tc.exe, got, tc.want)
		}
	}
	if BundleDir(exe) != filepath.Join(dir, "Berth.app") || BundleDir(plain) != "" {
		t.Errorf("BundleDir: %q %q", BundleDir(exe), BundleDir(plain))
	}
}

func TestSingleInstance(t *testing.T) {
	dir := t.TempDir()
	var focused atomic.Int32
	first, err := Acquire(dir, func() { focused.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	// A second launch is refused and brings the first forward.
	if _, err := Acquire(dir, nil); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Acquire: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for focused.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if focused.Load() != 1 {
		t.Fatal("first instance was not asked to focus")
	}
	if st, err := os.Stat(filepath.Join(dir, "app.sock")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("socket: %v %v", st, err)
	}
	// After the first quits, a new launch becomes the instance (the stale
	// socket file does not get in the way).
	first.Release()
	again, err := Acquire(dir, nil)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again.Release()
}

func TestInstallCLI(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "Berth.app", "Contents", "MacOS", "berth")
	os.MkdirAll(filepath.Dir(bin), 0o755)
	os.WriteFile(bin, []byte("x"), 0o755)
	local := filepath.Join(dir, "usr-local-bin")
	if CLIInstalled(bin, local) {
		t.Fatal("installed before install")
	}
	if err := InstallCLI(bin, local); err != nil {
		t.Fatal(err)
	}
	if !CLIInstalled(bin, local) {
		t.Fatal("not installed after install")
	}
	if err := InstallCLI(bin, local); err != nil {
		t.Fatalf("second install: %v", err)
	}
	// A link to an old copy of Berth is replaced.
	old := filepath.Join(dir, "Old.app", "berth")
	os.MkdirAll(filepath.Dir(old), 0o755)
	os.WriteFile(old, []byte("x"), 0o755)
	os.Remove(filepath.Join(local, "berth"))
	os.Symlink(old, filepath.Join(local, "berth"))
	if err := InstallCLI(bin, local); err != nil || !CLIInstalled(bin, local) {
		t.Fatalf("replacing an old link: %v", err)
	}
	// Someone else's file is never replaced.
	other := filepath.Join(dir, "other")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "berth"), []byte("not ours"), 0o755)
	if err := InstallCLI(bin, other); err == nil || !strings.Contains(err.Error(), "is not a link to Berth") {
		t.Fatalf("foreign file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(other, "berth")); string(b) != "not ours" {
		t.Fatal("foreign file modified")
	}
	if err := InstallCLI("relative/berth", local); err == nil {
		t.Fatal("relative binary accepted")
	}
}

func TestInstallCLINeedsAdmin(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores directory permissions; check the script instead.
		e := needsAdmin("/Applications/Berth's.app/Contents/MacOS/berth", "/usr/local/bin", os.ErrPermission)
		var na *NeedsAdminError
		if !errors.As(e, &na) || na.Script != `mkdir -p '/usr/local/bin' && ln -sfn '/Applications/Berth'\''s.app/Contents/MacOS/berth' '/usr/local/bin/berth'` {
			t.Fatalf("script: %v", e)
		}
		return
	}
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	os.MkdirAll(ro, 0o555)
	err := InstallCLI("/x/berth", ro)
	var na *NeedsAdminError
	if !errors.As(err, &na) || !strings.Contains(na.Script, "ln -sfn '/x/berth'") {
		t.Fatalf("got %v", err)
	}
}

func TestAppleScriptString(t *testing.T) {
	if got := AppleScriptString(`a "b" \c`); got != `"a \"b\" \\c"` {
		t.Errorf("got %s", got)
	}
}

func TestKernelFetchNeeded(t *testing.T) {
	dir := t.TempDir()
	k := KernelFetch{KernelsDir: dir, Source: kernelSourceForTest()}
	if !k.Needed() {
		t.Fatal("an empty kernels dir needs the kernel")
	}
	if !strings.Contains(k.Question(), "Kata Containers 9.9.9") {
		t.Errorf("question: %q", k.Question())
	}
	p := filepath.Join(dir, "kata-test", "vmlinux-test")
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte("kernel"), 0o644)
	if k.Needed() {
		t.Fatal("installed kernel reported missing")
	}
}
