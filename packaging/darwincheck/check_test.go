package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The tests build a throwaway module next to the real vz and darwinkit (from the
// module cache: offline, GOPROXY=off) and check it for both Mac architectures.

const goodVZ = `//go:build darwin

package probe

import (
	"errors"

	"github.com/Code-Hex/vz/v3"
)

func Boot(kernel, initrd string) (*vz.VirtualMachine, error) {
	boot, err := vz.NewLinuxBootLoader(kernel, vz.WithInitrd(initrd), vz.WithCommandLine("console=hvc0"))
	if err != nil {
		return nil, err
	}
	cfg, err := vz.NewVirtualMachineConfiguration(boot, 2, 512*1024*1024)
	if err != nil {
		return nil, err
	}
	vm, err := vz.NewVirtualMachine(cfg)
	if err != nil {
		return nil, err
	}
	if err := vm.Start(); err != nil {
		return nil, err
	}
	conn, err := vm.SocketDevices()[0].Connect(1024)
	if err != nil {
		var nserr *vz.NSError
		if errors.As(err, &nserr) {
			return nil, nserr
		}
		return nil, err
	}
	conn.Close()
	return vm, nil
}
`

const goodKit = `//go:build darwin

package probe

import (
	"github.com/progrium/darwinkit/dispatch"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/objc"
)

var item appkit.StatusItem

func StatusItem() {
	item = appkit.StatusBar_SystemStatusBar().StatusItemWithLength(appkit.VariableStatusItemLength)
	objc.Retain(&item)
	item.Button().SetImage(appkit.Image_ImageWithSystemSymbolNameAccessibilityDescription("shippingbox", "Berth"))
	menu := appkit.NewMenuWithTitle("Berth")
	menu.AddItem(appkit.NewMenuItemWithAction("Quit", "q", func(objc.Object) {}))
	item.SetMenu(menu)
	dispatch.MainQueue().DispatchAsync(func() { item.SetVisible(true) })
}
`

// A cgo file whose C-typed operand makes go/types complain under FakeImportC
// (the same shape as vz's own (*char)(objc.GetUUID())): must be suppressed.
const cgoNoiseFile = `//go:build darwin

package probe

/*
char *name(void);
*/
import "C"

type char C.char

func Name() *char { return (*char)(C.name()) } // C.name() is in invalid mode: go/types says nothing
func Wrapped() *char { return (*char)(cname()) }
func cname() *C.char { return C.name() }
`

func writeModule(t *testing.T, pkgs map[string]map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	root := repoRoot(t)
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	goMod := "module example.com/probe\n\ngo 1.26.0\n\nrequire (\n\tgithub.com/Code-Hex/vz/v3 v3.7.1\n\tgithub.com/progrium/darwinkit v0.5.0\n)\n"
	write(t, filepath.Join(dir, "go.mod"), goMod)
	write(t, filepath.Join(dir, "go.sum"), string(sum))
	for pkg, files := range pkgs {
		for name, src := range files {
			write(t, filepath.Join(dir, pkg, name), src)
		}
	}
	return dir
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// offline: resolve everything from the module cache, never the network.
var offline = []string{"GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off"}

func check(t *testing.T, dir, arch string) *Result {
	t.Helper()
	res, err := Check(Options{Dir: dir, GOARCH: arch, Patterns: []string{"./..."}, Env: offline})
	if err != nil {
		t.Fatalf("darwin/%s: %v", arch, err)
	}
	return res
}

func TestCorrectCodeHasNoErrors(t *testing.T) {
	t.Parallel()
	dir := writeModule(t, map[string]map[string]string{
		"vm":   {"vm.go": goodVZ},
		"menu": {"menu.go": goodKit},
	})
	for _, arch := range []string{"arm64", "amd64"} {
		res := check(t, dir, arch)
		if len(res.Errors) != 0 {
			t.Errorf("darwin/%s: want no errors, got:\n%s", arch, strings.Join(res.Errors, "\n"))
		}
		if res.Own != 2 || res.Checked < 50 {
			t.Errorf("darwin/%s: checked %d packages, %d own; want 2 own and the vz/darwinkit graph", arch, res.Checked, res.Own)
		}
	}
}

func TestReportsMisuse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, file, src, want string
	}{
		{"vz wrong method", "vm.go", strings.Replace(goodVZ, "vm.Start()", "vm.Boot()", 1),
			"vm.Boot undefined (type *vz.VirtualMachine has no field or method Boot)"},
		{"vz wrong argument type", "vm.go", strings.Replace(goodVZ, "(boot, 2, 512*1024*1024)", `(boot, "2", 512*1024*1024)`, 1),
			`cannot use "2" (untyped string constant) as uint value in argument to vz.NewVirtualMachineConfiguration`},
		{"vz wrong result count", "vm.go", strings.Replace(goodVZ, "conn, err := vm.SocketDevices()[0].Connect(1024)", "conn, err, ok := vm.SocketDevices()[0].Connect(1024); _ = ok", 1),
			"assignment mismatch: 3 variables but vm.SocketDevices()[0].Connect returns 2 values"},
		{"darwinkit wrong method", "menu.go", strings.Replace(goodKit, "item.Button().SetImage(", "item.Button().SetIcon(", 1),
			"item.Button().SetIcon undefined (type appkit.StatusBarButton has no field or method SetIcon)"},
		{"darwinkit wrong argument type", "menu.go", strings.Replace(goodKit, "StatusItemWithLength(appkit.VariableStatusItemLength)", `StatusItemWithLength("wide")`, 1),
			`cannot use "wide" (untyped string constant) as float64 value in argument to appkit.StatusBar_SystemStatusBar().StatusItemWithLength`},
		{"darwinkit wrong result count", "menu.go", strings.Replace(goodKit, `menu := appkit.NewMenuWithTitle("Berth")`, `menu, ok := appkit.NewMenuWithTitle("Berth"); _ = ok`, 1),
			`assignment mismatch: 2 variables but appkit.NewMenuWithTitle returns 1 value`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := writeModule(t, map[string]map[string]string{"p": {tc.file: tc.src}})
			for _, arch := range []string{"arm64", "amd64"} {
				res := check(t, dir, arch)
				if len(res.Errors) != 1 || !strings.Contains(res.Errors[0], tc.want) {
					t.Errorf("darwin/%s: want exactly one error containing %q, got:\n%s", arch, tc.want, strings.Join(res.Errors, "\n"))
					continue
				}
				if !strings.Contains(res.Errors[0], filepath.Join(dir, "p", tc.file)+":") {
					t.Errorf("darwin/%s: error does not name the file: %s", arch, res.Errors[0])
				}
			}
		})
	}
}

// C-typed operands are suppressed, and only they: a real error in the same cgo
// file is still reported.
func TestSuppressesOnlyCTypeErrors(t *testing.T) {
	t.Parallel()
	bad := cgoNoiseFile + "\nfunc Broken() int { return Name().Len() }\n"
	dir := writeModule(t, map[string]map[string]string{"c": {"c.go": bad}})
	res := check(t, dir, "arm64")
	if res.Suppressed != 1 {
		t.Errorf("want the C-type conversion error in Wrapped suppressed, got %d suppressed", res.Suppressed)
	}
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0], "Len undefined") {
		t.Errorf("want the one Go error reported, got:\n%s", strings.Join(res.Errors, "\n"))
	}
}

// vz and darwinkit themselves, checked as if they were ours: everything
// go/types says about them is C-type noise (they build on a Mac), so with the
// suppression they must come out clean — and without it they must not, or the
// suppression test above proves nothing about real cgo code.
func TestLibrariesCheckClean(t *testing.T) {
	t.Parallel()
	dir := writeModule(t, map[string]map[string]string{"vm": {"vm.go": goodVZ}, "menu": {"menu.go": goodKit}})
	lib := func(p string) bool {
		return strings.HasPrefix(p, "github.com/Code-Hex/vz/") || strings.HasPrefix(p, "github.com/progrium/darwinkit/")
	}
	res, err := Check(Options{Dir: dir, GOARCH: "arm64", Patterns: []string{"./..."}, Env: offline, Own: lib})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) != 0 {
		t.Errorf("vz/darwinkit: want no unsuppressed errors, got:\n%s", strings.Join(res.Errors, "\n"))
	}
	if res.Suppressed == 0 {
		t.Errorf("vz/darwinkit: expected at least one suppressed C-type error (vz's (*char)(objc.GetUUID()))")
	}
	if res.Own < 10 {
		t.Errorf("checked only %d library packages", res.Own)
	}
}

func TestCommandExitStatus(t *testing.T) {
	t.Parallel()
	dir := writeModule(t, map[string]map[string]string{"p": {"vm.go": strings.Replace(goodVZ, "vm.Start()", "vm.Boot()", 1)}})
	cmd := exec.Command("go", "run", ".", "-C", dir, "-arch", "arm64,amd64", "./...")
	cmd.Env = append(os.Environ(), offline...)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit status 1, got %v\n%s", err, out)
	}
	for _, arch := range []string{"darwin/arm64: ", "darwin/amd64: "} {
		if !strings.Contains(string(out), arch) || !strings.Contains(string(out), "vm.Boot undefined") {
			t.Errorf("output lacks %s error line:\n%s", arch, out)
		}
	}
}

func TestUnknownArch(t *testing.T) {
	t.Parallel()
	dir := writeModule(t, map[string]map[string]string{"vm": {"vm.go": goodVZ}})
	if _, err := Check(Options{Dir: dir, GOARCH: "pdp11", Patterns: []string{"./..."}, Env: offline}); err == nil {
		t.Fatal("want an error for an unknown GOARCH")
	}
}
