package main

import (
	"bytes"
	"debug/macho"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Bundle is what goes into Berth.app.
type Bundle struct {
	Binary       string            // darwin/arm64 berth (Mach-O), or a stand-in when StandIn
	StandIn      bool              // tests on Linux: accept a non-Mach-O binary
	GuestDirs    map[string]string // arch -> dir with initramfs.cpio.gz (and berth-agent)
	InfoPlist    string            // template (repo root Info.plist)
	Entitlements string            // repo root entitlements.plist
	Version      string            // git describe; vX.Y.Z gives the short version
	Build        string            // CFBundleVersion: the build number (commit count)
	Out          string            // path of the .app to create (replaced atomically)
}

// MinimumMacOS is the oldest macOS Berth supports: Virtualization.framework's
// Linux VMs with the APIs the vz backend uses (13: Rosetta share, generic
// platform) — see shared/notes/vz.md.
const MinimumMacOS = "13.0"

// BundleID is Berth's bundle identifier.
const BundleID = "dev.berth.Berth"

var (
	shortVersionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,2}$`)
	semverTagRE    = regexp.MustCompile(`^v?([0-9]+\.[0-9]+\.[0-9]+)`)
	bundleIDRE     = regexp.MustCompile(`^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$`)
	utiRE          = regexp.MustCompile(`^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$`)
)

// ShortVersion derives CFBundleShortVersionString (1-3 dot-separated numbers)
// from `git describe`: v1.2.3-4-gabc → 1.2.3; anything else → 0.0.0.
func ShortVersion(describe string) string {
	if m := semverTagRE.FindStringSubmatch(describe); m != nil {
		return m[1]
	}
	return "0.0.0"
}

// ValidateInfo checks Info.plist for what macOS and Berth need, reporting
// every problem found.
func ValidateInfo(d *Dict) error {
	var errs []string
	str := func(k string) string {
		v, ok := d.Get(k)
		if !ok {
			errs = append(errs, k+": missing")
			return ""
		}
		s, ok := v.(string)
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: want a string, have %T", k, v))
		}
		return s
	}
	want := func(k, v string) {
		if got := str(k); got != "" && got != v {
			errs = append(errs, fmt.Sprintf("%s: %q, want %q", k, got, v))
		}
	}
	if id := str("CFBundleIdentifier"); id != "" && !bundleIDRE.MatchString(id) {
		errs = append(errs, fmt.Sprintf("CFBundleIdentifier: %q is not reverse-DNS (letters, digits, hyphens, dots)", id))
	}
	want("CFBundleExecutable", "berth")
	want("CFBundlePackageType", "APPL")
	want("CFBundleInfoDictionaryVersion", "6.0")
	want("LSMinimumSystemVersion", MinimumMacOS)
	str("CFBundleName")
	if v := str("CFBundleShortVersionString"); v != "" && !shortVersionRE.MatchString(v) {
		errs = append(errs, fmt.Sprintf("CFBundleShortVersionString: %q must be one to three numbers separated by dots", v))
	}
	if v := str("CFBundleVersion"); v != "" && !shortVersionRE.MatchString(v) {
		errs = append(errs, fmt.Sprintf("CFBundleVersion: %q must be one to three numbers separated by dots", v))
	}
	if v, ok := d.Get("LSUIElement"); !ok || v != true {
		errs = append(errs, "LSUIElement: must be true (Berth is a menu-bar app without a Dock icon)")
	}
	// Document types: image archives, each content type declared by macOS or by us.
	declared := map[string]bool{"public.tar-archive": true, "org.gnu.gnu-zip-archive": true, "org.gnu.gnu-zip-tar-archive": true,
		"public.zip-archive": true, "public.data": true, "public.archive": true, "public.folder": true}
	if imp, ok := d.Get("UTImportedTypeDeclarations"); ok {
		arr, _ := imp.([]any)
		for _, e := range arr {
			if td, ok := e.(*Dict); ok {
				if id, ok := td.Values["UTTypeIdentifier"].(string); ok && utiRE.MatchString(id) {
					declared[id] = true
					continue
				}
			}
			errs = append(errs, "UTImportedTypeDeclarations: an entry without a valid UTTypeIdentifier")
		}
	}
	types := 0
	if dt, ok := d.Get("CFBundleDocumentTypes"); ok {
		arr, _ := dt.([]any)
		for i, e := range arr {
			td, ok := e.(*Dict)
			if !ok {
				errs = append(errs, fmt.Sprintf("CFBundleDocumentTypes[%d]: not a dict", i))
				continue
			}
			if r, _ := td.Values["CFBundleTypeRole"].(string); r != "Viewer" && r != "Editor" && r != "None" {
				errs = append(errs, fmt.Sprintf("CFBundleDocumentTypes[%d]: CFBundleTypeRole %q (Viewer, Editor or None)", i, r))
			}
			cts, _ := td.Values["LSItemContentTypes"].([]any)
			for _, ct := range cts {
				s, _ := ct.(string)
				if !declared[s] {
					errs = append(errs, fmt.Sprintf("CFBundleDocumentTypes[%d]: content type %q is neither a system type nor imported", i, s))
				}
				types++
			}
		}
	}
	if types == 0 {
		errs = append(errs, "CFBundleDocumentTypes: no content types (image tarballs must open with Berth)")
	}
	if len(errs) > 0 {
		return errors.New("Info.plist: " + strings.Join(errs, "; "))
	}
	return nil
}

// ValidateEntitlements requires the virtualization entitlement and refuses
// entitlements Berth must not ask for (restricted ones need Apple's grant
// and make an ad-hoc signed app fail to launch).
func ValidateEntitlements(d *Dict) error {
	if v, ok := d.Get("com.apple.security.virtualization"); !ok || v != true {
		return errors.New("entitlements.plist: com.apple.security.virtualization must be true (Virtualization.framework refuses VMs without it)")
	}
	for _, k := range d.Keys {
		switch {
		case k == "com.apple.vm.networking":
			return errors.New("entitlements.plist: com.apple.vm.networking is restricted (Apple must grant it); Berth uses NAT and does not need it")
		case strings.HasPrefix(k, "com.apple.developer."):
			return fmt.Errorf("entitlements.plist: %s needs a provisioning profile; an ad-hoc signed Berth.app would not launch", k)
		}
	}
	return nil
}

// checkBinary insists on a Mach-O for arm64 (a universal file must contain
// arm64), unless b.StandIn.
func (b *Bundle) checkBinary() error {
	st, err := os.Stat(b.Binary)
	if err != nil {
		return fmt.Errorf("berth binary: %w", err)
	}
	if st.IsDir() || st.Size() == 0 {
		return fmt.Errorf("berth binary %s: not a file or empty", b.Binary)
	}
	if b.StandIn {
		return nil
	}
	if f, err := macho.Open(b.Binary); err == nil {
		defer f.Close()
		if f.Cpu != macho.CpuArm64 {
			return fmt.Errorf("berth binary %s is Mach-O for %v; Berth.app ships darwin/arm64", b.Binary, f.Cpu)
		}
		return nil
	}
	if f, err := macho.OpenFat(b.Binary); err == nil {
		defer f.Close()
		for _, a := range f.Arches {
			if a.Cpu == macho.CpuArm64 {
				return nil
			}
		}
		return fmt.Errorf("berth binary %s is a universal binary without arm64", b.Binary)
	}
	return fmt.Errorf("berth binary %s is not a Mach-O executable: build it on a Mac with CGO_ENABLED=1 GOOS=darwin GOARCH=arm64", b.Binary)
}

// Assemble validates everything, then writes the bundle into a temporary
// directory next to Out and renames it into place, so Out is either the old
// bundle or the complete new one.
func (b *Bundle) Assemble() error {
	info, err := readPlist(b.InfoPlist)
	if err != nil {
		return err
	}
	info.Set("CFBundleShortVersionString", ShortVersion(b.Version))
	build := b.Build
	if build == "" {
		build = "1"
	}
	info.Set("CFBundleVersion", build)
	if b.Version != "" {
		info.Set("BerthVersion", b.Version) // the full git describe, for bug reports
	}
	if err := ValidateInfo(info); err != nil {
		return err
	}
	ent, err := readPlist(b.Entitlements)
	if err != nil {
		return err
	}
	if err := ValidateEntitlements(ent); err != nil {
		return err
	}
	if err := b.checkBinary(); err != nil {
		return err
	}
	if len(b.GuestDirs) == 0 {
		return errors.New("no guest directory: Berth.app must ship the linux/arm64 agent initramfs (packaging/build-guest.sh)")
	}
	for arch, dir := range b.GuestDirs {
		if _, err := os.Stat(filepath.Join(dir, "initramfs.cpio.gz")); err != nil {
			return fmt.Errorf("guest %s: %w (run packaging/build-guest.sh)", arch, err)
		}
	}
	if !strings.HasSuffix(b.Out, ".app") {
		return fmt.Errorf("output %q must end in .app", b.Out)
	}

	parent := filepath.Dir(b.Out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".Berth-*.app")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	contents := filepath.Join(tmp, "Contents")
	var buf bytes.Buffer
	if err := WritePlist(&buf, info); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(contents, "Info.plist"), buf.Bytes(), 0o644); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(contents, "PkgInfo"), []byte("APPL????"), 0o644); err != nil {
		return err
	}
	if err := copyFile(b.Binary, filepath.Join(contents, "MacOS", "berth"), 0o755); err != nil {
		return err
	}
	for arch, dir := range b.GuestDirs {
		for _, name := range []string{"initramfs.cpio.gz", "berth-agent"} {
			src := filepath.Join(dir, name)
			if _, err := os.Stat(src); err != nil {
				if name == "initramfs.cpio.gz" {
					return err
				}
				continue // the agent is inside the initramfs; the loose copy is optional
			}
			if err := copyFile(src, filepath.Join(contents, "Resources", "guest", arch, name), 0o644); err != nil {
				return err
			}
		}
	}
	old := b.Out + ".old"
	os.RemoveAll(old)
	if _, err := os.Stat(b.Out); err == nil {
		if err := os.Rename(b.Out, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, b.Out); err != nil {
		os.Rename(old, b.Out)
		return err
	}
	return os.RemoveAll(old)
}

func readPlist(path string) (*Dict, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d, err := ParsePlist(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, mode)
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}
