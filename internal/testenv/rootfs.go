package testenv

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/testimage"
)

// Applets linked in BusyboxRootfs (a fixed list: an arm64 busybox cannot be
// asked for its own on an amd64 host).
var Applets = []string{
	"sh", "ash", "echo", "cat", "ls", "sleep", "httpd", "nc", "stty", "id", "pwd", "env", "kill",
	"ps", "head", "tail", "dd", "sha256sum", "md5sum", "true", "false", "mount", "umount", "hostname", "wc",
	"yes", "seq", "tr", "mkdir", "rm", "printf", "test", "[", "grep", "sed", "uname", "whoami", "cut",
	"tty", "sync", "touch", "chmod", "ln", "cp", "mv", "date", "ip", "ifconfig", "wget", "nslookup",
	"tee", "xargs", "find", "stat", "readlink", "realpath", "df", "free", "top", "timeout", "poweroff",
}

// BusyboxRootfs writes a minimal container root for arch into a new
// directory: /bin/busybox with applet symlinks, /etc/passwd and /etc/group
// (root, nobody, app uid 1000 in group app 1000 and users 100), /tmp 1777,
// /root, /home/app.
func BusyboxRootfs(t testing.TB, arch string) string {
	t.Helper()
	bb, err := testimage.BusyboxBinary(arch)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "home/app", "var/www", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
	os.Chown(filepath.Join(dir, "home/app"), 1000, 1000)
	if err := copyFile(bb, filepath.Join(dir, "bin/busybox"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range Applets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd":         "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n",
		"etc/group":          "root:x:0:\nusers:x:100:app\napp:x:1000:\nnogroup:x:65534:\n",
		"var/www/index.html": "hello from berth\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// BusyboxExt4 builds an ext4 image of BusyboxRootfs with mkfs.ext4 -d
// (e2fsprogs), sized sizeMiB.
func BusyboxExt4(t testing.TB, arch string, sizeMiB int) string {
	t.Helper()
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Fatal("mkfs.ext4 not found: install the Debian package e2fsprogs")
	}
	dir := BusyboxRootfs(t, arch)
	img := filepath.Join(t.TempDir(), "rootfs.ext4")
	cmd := exec.Command("mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-d", dir, img, fmt.Sprintf("%dM", sizeMiB))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out.String())
	}
	return img
}

// E2fsck runs e2fsck -fn on an image and fails the test unless it is clean.
func E2fsck(t testing.TB, img string) {
	t.Helper()
	out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn %s: %v\n%s", img, err, out)
	}
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
