package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func repoFile(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRepoPlistsAreValidAndRoundTrip(t *testing.T) {
	info, err := readPlist(repoFile(t, "Info.plist"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateInfo(info); err != nil {
		t.Fatal(err)
	}
	if id, _ := info.Get("CFBundleIdentifier"); id != BundleID {
		t.Errorf("bundle id %v", id)
	}
	var buf bytes.Buffer
	if err := WritePlist(&buf, info); err != nil {
		t.Fatal(err)
	}
	back, err := ParsePlist(&buf)
	if err != nil {
		t.Fatalf("re-reading what we wrote: %v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(back, info) {
		t.Error("plist changed in a write/read round trip")
	}
	ent, err := readPlist(repoFile(t, "entitlements.plist"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateEntitlements(ent); err != nil {
		t.Fatal(err)
	}
}

func TestPlistValueTypes(t *testing.T) {
	src := `<?xml version="1.0"?><plist version="1.0"><dict>
	<key>s</key><string>a &amp; b</string><key>i</key><integer>-42</integer><key>r</key><real>1.5</real>
	<key>t</key><true/><key>f</key><false/><key>d</key><date>2026-11-27T02:00:00Z</date>
	<key>b</key><data>aGVs
	bG8=</data><key>a</key><array><string>x</string><dict/></array></dict></plist>`
	d, err := ParsePlist(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if d.Values["s"] != "a & b" || d.Values["i"] != int64(-42) || d.Values["r"] != 1.5 || d.Values["t"] != true || d.Values["f"] != false ||
		string(d.Values["b"].([]byte)) != "hello" || len(d.Values["a"].([]any)) != 2 {
		t.Errorf("values: %#v", d.Values)
	}
	if strings.Join(d.Keys, ",") != "s,i,r,t,f,d,b,a" {
		t.Errorf("key order %v", d.Keys)
	}
	var buf bytes.Buffer
	WritePlist(&buf, d)
	back, err := ParsePlist(&buf)
	if err != nil || !reflect.DeepEqual(back, d) {
		t.Errorf("round trip: %v", err)
	}
}

func TestPlistErrors(t *testing.T) {
	for src, want := range map[string]string{
		`<plist><dict><key>a</key><string>1</string><key>a</key><string>2</string></dict></plist>`: `key "a" appears twice`,
		`<plist><dict><key>a</key></dict></plist>`:                                                 "missing value",
		`<plist><dict><string>x</string></dict></plist>`:                                           "where a <key> belongs",
		`<plist><array/></plist>`:                                                                  "top level is not a <dict>",
		`<plist><dict><key>a</key><widget/></dict></plist>`:                                        "unknown element <widget>",
		`<plist><dict><key>a</key><integer>x</integer></dict></plist>`:                             "<integer>x</integer>",
		`<plist><dict>oops<key>a</key><true/></dict></plist>`:                                      "stray text",
		`<html/>`: "root element is <html>",
		`<plist><dict><key>a</key><string>unterminated`: "plist:",
	} {
		if _, err := ParsePlist(strings.NewReader(src)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want %q, got %v", src, want, err)
		}
	}
}

func TestValidateInfoCatchesProblems(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Dict)
		want string
	}{
		{func(d *Dict) { delete(d.Values, "LSUIElement") }, "LSUIElement: must be true"},
		{func(d *Dict) { d.Set("LSMinimumSystemVersion", "11.0") }, `LSMinimumSystemVersion: "11.0", want "13.0"`},
		{func(d *Dict) { d.Set("CFBundleIdentifier", "berth app") }, "not reverse-DNS"},
		{func(d *Dict) { d.Set("CFBundleExecutable", "Berth") }, `CFBundleExecutable: "Berth", want "berth"`},
		{func(d *Dict) { d.Set("CFBundleShortVersionString", "1.2.3-beta") }, "one to three numbers"},
		{func(d *Dict) { delete(d.Values, "UTImportedTypeDeclarations") }, `content type "dev.berth.zstd-archive" is neither`},
		{func(d *Dict) { delete(d.Values, "CFBundleDocumentTypes") }, "no content types"},
		{func(d *Dict) { d.Set("CFBundleName", true) }, "CFBundleName: want a string"},
	} {
		d, err := readPlist(repoFile(t, "Info.plist"))
		if err != nil {
			t.Fatal(err)
		}
		tc.edit(d)
		if err := ValidateInfo(d); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want %q, got %v", tc.want, err)
		}
	}
}

func TestValidateEntitlements(t *testing.T) {
	mk := func(kv ...any) *Dict {
		d := &Dict{Values: map[string]any{}}
		for i := 0; i < len(kv); i += 2 {
			d.Set(kv[i].(string), kv[i+1])
		}
		return d
	}
	if err := ValidateEntitlements(mk("com.apple.security.virtualization", true)); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*Dict{
		mk(), mk("com.apple.security.virtualization", false),
		mk("com.apple.security.virtualization", true, "com.apple.vm.networking", true),
		mk("com.apple.security.virtualization", true, "com.apple.developer.icloud-services", []any{}),
	} {
		if err := ValidateEntitlements(d); err == nil {
			t.Errorf("accepted %v", d.Values)
		}
	}
}

func TestShortVersion(t *testing.T) {
	for in, want := range map[string]string{"v1.2.3": "1.2.3", "v1.2.3-4-gabcdef-dirty": "1.2.3", "0.9.1": "0.9.1", "d118ad8-dirty": "0.0.0", "": "0.0.0"} {
		if got := ShortVersion(in); got != want {
			t.Errorf("ShortVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func guestDir(t *testing.T) string {
	g := filepath.Join(t.TempDir(), "guest-arm64")
	os.MkdirAll(g, 0o755)
	os.WriteFile(filepath.Join(g, "initramfs.cpio.gz"), []byte("initramfs"), 0o644)
	os.WriteFile(filepath.Join(g, "berth-agent"), []byte("agent"), 0o755)
	return g
}

// The assembly on Linux with a stand-in binary: layout, modes, versions.
func TestAssembleStandIn(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "berth")
	os.WriteFile(bin, []byte("#!/bin/sh\necho stand-in\n"), 0o700)
	out := filepath.Join(dir, "out", "Berth.app")
	b := Bundle{Binary: bin, StandIn: true, GuestDirs: map[string]string{"arm64": guestDir(t)},
		InfoPlist: repoFile(t, "Info.plist"), Entitlements: repoFile(t, "entitlements.plist"),
		Version: "v1.4.0-3-gdeadbee", Build: "57", Out: out}
	if err := b.Assemble(); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{
		"Contents/Info.plist": 0o644, "Contents/PkgInfo": 0o644, "Contents/MacOS/berth": 0o755,
		"Contents/Resources/guest/arm64/initramfs.cpio.gz": 0o644, "Contents/Resources/guest/arm64/berth-agent": 0o644,
	}
	got := map[string]os.FileMode{}
	filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(out, p)
			got[rel] = fi.Mode().Perm()
		}
		return nil
	})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bundle files:\n got %v\nwant %v", got, want)
	}
	info, err := readPlist(filepath.Join(out, "Contents", "Info.plist"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Values["CFBundleShortVersionString"] != "1.4.0" || info.Values["CFBundleVersion"] != "57" || info.Values["BerthVersion"] != "v1.4.0-3-gdeadbee" {
		t.Errorf("versions: %v %v %v", info.Values["CFBundleShortVersionString"], info.Values["CFBundleVersion"], info.Values["BerthVersion"])
	}
	if err := ValidateInfo(info); err != nil {
		t.Fatal(err)
	}
	if pk, _ := os.ReadFile(filepath.Join(out, "Contents", "PkgInfo")); string(pk) != "APPL????" {
		t.Errorf("PkgInfo %q", pk)
	}
	// Rebuilding replaces the bundle and leaves no temporary directories.
	os.WriteFile(filepath.Join(out, "Contents", "stale"), []byte("x"), 0o644)
	if err := b.Assemble(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "Contents", "stale")); err == nil {
		t.Error("old bundle content survived a rebuild")
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Errorf("leftovers next to the bundle: %v", entries)
	}
}

func TestAssembleRefusesBadInputsAndKeepsOldBundle(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "berth")
	os.WriteFile(bin, []byte("not mach-o"), 0o755)
	out := filepath.Join(dir, "Berth.app")
	good := Bundle{Binary: bin, StandIn: true, GuestDirs: map[string]string{"arm64": guestDir(t)},
		InfoPlist: repoFile(t, "Info.plist"), Entitlements: repoFile(t, "entitlements.plist"), Out: out}
	if err := good.Assemble(); err != nil {
		t.Fatal(err)
	}
	badEnt := filepath.Join(dir, "ent.plist")
	os.WriteFile(badEnt, []byte(`<plist><dict/></plist>`), 0o644)
	for name, edit := range map[string]func(*Bundle){
		"not mach-o":     func(b *Bundle) { b.StandIn = false },
		"no guest":       func(b *Bundle) { b.GuestDirs = nil },
		"guest missing":  func(b *Bundle) { b.GuestDirs = map[string]string{"arm64": dir} },
		"no binary":      func(b *Bundle) { b.Binary = filepath.Join(dir, "missing") },
		"bad out":        func(b *Bundle) { b.Out = filepath.Join(dir, "Berth") },
		"no entitlement": func(b *Bundle) { b.Entitlements = badEnt },
		"bad info plist": func(b *Bundle) { b.InfoPlist = badEnt },
	} {
		b := good
		edit(&b)
		if err := b.Assemble(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := os.Stat(filepath.Join(out, "Contents", "MacOS", "berth")); err != nil {
			t.Fatalf("%s: the previous bundle was damaged: %v", name, err)
		}
	}
}

// A real Mach-O: Go cross-compiles a cgo-free program for darwin here.
func TestAssembleChecksMachOArch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main(){}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\ngo 1.22\n"), 0o644)
	build := func(arch string) string {
		out := filepath.Join(dir, "hello-"+arch)
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOOS=darwin", "GOARCH="+arch, "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cross-compiling for darwin/%s: %v\n%s", arch, err, b)
		}
		return out
	}
	for arch, ok := range map[string]bool{"arm64": true, "amd64": false} {
		b := Bundle{Binary: build(arch), GuestDirs: map[string]string{"arm64": guestDir(t)},
			InfoPlist: repoFile(t, "Info.plist"), Entitlements: repoFile(t, "entitlements.plist"), Out: filepath.Join(dir, arch, "Berth.app")}
		err := b.Assemble()
		if ok && err != nil {
			t.Errorf("darwin/%s Mach-O refused: %v", arch, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "Berth.app ships darwin/arm64")) {
			t.Errorf("darwin/%s Mach-O: want refusal, got %v", arch, err)
		}
	}
}
