// Package importtest makes the files a user might drop on Berth, for tests
// of the import path: image archives written by skopeo (a tool nobody here
// wrote) from a loopback registry, their gzip and zstd variants (made with
// the gzip and zstd commands), an OCI layout folder, a root filesystem tar,
// and files that must be refused.
package importtest

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/testimage"
)

// Ref is the tag every fixture image carries.
const Ref = "busybox:dropped"

// Files names the fixtures (keys) and their paths.
type Files map[string]string

// Make writes every fixture into a temporary directory. Image archives:
// "docker.tar", "oci.tar", "docker.tar.gz", "oci.tar.zst", "docker.tar.zst",
// "oci.tgz", folder "layout". Root filesystems: "rootfs.tar",
// "rootfs.tar.gz", "rootfs.tar.zst". Refused: "random.bin", "empty.tar",
// "truncated.tar.gz", "truncated-rootfs.tar", "truncated-oci.tar", "notes.txt",
// "index-only.tar", "folder" (a folder without oci-layout).
func Make(t testing.TB) Files {
	t.Helper()
	skopeo := tool(t, "skopeo", "skopeo")
	tool(t, "zstd", "zstd")
	tool(t, "gzip", "gzip")
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	img, err := testimage.BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	src := reg.Push(t, img, "test/busybox:latest")
	dir := t.TempDir()
	f := Files{}
	p := func(name string) string { f[name] = filepath.Join(dir, name); return f[name] }
	for dest, name := range map[string]string{"docker-archive:%s:" + Ref: "docker.tar", "oci-archive:%s:" + Ref: "oci.tar", "oci:%s:" + Ref: "layout"} {
		out := p(name)
		run(t, skopeo, "--insecure-policy", "copy", "--src-tls-verify=false", "docker://"+src, sprintf(dest, out))
	}
	compress(t, "gzip", f["docker.tar"], p("docker.tar.gz"))
	compress(t, "zstd", f["oci.tar"], p("oci.tar.zst"))
	compress(t, "zstd", f["docker.tar"], p("docker.tar.zst"))
	compress(t, "gzip", f["oci.tar"], p("oci.tgz"))

	rootfs := testimage.Tar([]testimage.File{
		testimage.Dir("bin", 0o755), testimage.Dir("etc", 0o755),
		{Path: "etc/os-release", Data: []byte("NAME=dropped\n")},
		{Path: "bin/hello", Mode: 0o755, Data: bytes.Repeat([]byte("#!/bin/sh\necho hi\n"), 2000)},
	})
	write(t, p("rootfs.tar"), rootfs)
	compress(t, "gzip", f["rootfs.tar"], p("rootfs.tar.gz"))
	compress(t, "zstd", f["rootfs.tar"], p("rootfs.tar.zst"))

	noise := make([]byte, 64<<10)
	rand.Read(noise)
	write(t, p("random.bin"), noise)
	write(t, p("empty.tar"), nil)
	write(t, p("notes.txt"), []byte("not an archive\n"))
	gz, _ := os.ReadFile(f["docker.tar.gz"])
	write(t, p("truncated.tar.gz"), gz[:len(gz)/2])
	write(t, p("truncated-rootfs.tar"), rootfs[:len(rootfs)/2+100])
	oci, _ := os.ReadFile(f["oci.tar"])
	write(t, p("truncated-oci.tar"), oci[:len(oci)*2/3])
	write(t, p("index-only.tar"), testimage.Tar([]testimage.File{{Path: "index.json", Data: []byte(`{"schemaVersion":2,"manifests":[]}`)}}))
	if err := os.Mkdir(p("folder"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(f["folder"], "index.json"), []byte("{}"))
	return f
}

func sprintf(format, path string) string {
	return string(bytes.Replace([]byte(format), []byte("%s"), []byte(path), 1))
}

func tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (packaging/setup-linux.sh)", name, pkg)
	}
	return p
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func compress(t testing.TB, prog, in, out string) {
	t.Helper()
	src, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	cmd := exec.Command(prog, "-c", "-q")
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = src, dst, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v %s", prog, err, stderr.Bytes())
	}
}

func write(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
