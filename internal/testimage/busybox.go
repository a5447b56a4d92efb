// Package testimage builds the container images and starts the registry
// server that Berth's tests run against: real busybox binaries packed into
// multi-layer OCI images, and Debian's docker-registry (distribution) on a
// free loopback port, optionally behind htpasswd auth.
//
// Images are built deterministically (fixed timestamps, sorted entries), so
// the same arch always yields the same digests and caches keyed by digest
// (rootfs snapshots, blob stores) hit across tests.
package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Epoch is the modification time of every entry the builders write, so
// image digests do not change from run to run.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Arm64Cache is where packaging/fetch-arm64.sh unpacks the arm64 guest parts
// (busybox, kernel) on amd64 machines: $BERTH_ARM64_CACHE, else
// /var/cache/berth/arm64.
func Arm64Cache() string {
	if d := os.Getenv("BERTH_ARM64_CACHE"); d != "" {
		return d
	}
	return "/var/cache/berth/arm64"
}

// Applets are the busybox applets the base layer links into /bin. Tests may
// rely on every one of them.
var Applets = []string{
	"sh", "ash", "echo", "cat", "ls", "httpd", "nc", "sleep", "true", "false",
	"env", "id", "hostname", "ps", "kill", "mkdir", "rm", "cp", "mv", "touch",
	"head", "tail", "grep", "sed", "wc", "test", "[", "printf", "pwd", "uname",
	"mount", "umount", "df", "du", "stat", "chmod", "chown", "ln", "tr", "date",
	"wget", "ip", "ifconfig", "ping", "top", "free", "yes", "dd", "sync", "vi",
	"find", "xargs", "sort", "uniq", "md5sum", "sha256sum", "tee", "whoami",
}

// HelloText is the content of /hello.txt in BusyboxImage's upper layer.
const HelloText = "hello from berth\n"

// WhiteoutPath is the base-layer file that BusyboxImage's upper layer deletes
// with a whiteout (.wh.motd): it must be absent from a correct rootfs.
const WhiteoutPath = "/etc/motd"

// BusyboxBinary returns a static busybox for arch ("" = host arch): the host's
// /bin/busybox (Debian busybox-static) for the host arch, and for arm64 on
// other hosts the copy that packaging/fetch-arm64.sh unpacks.
func BusyboxBinary(arch string) (string, error) {
	if arch == "" {
		arch = runtime.GOARCH
	}
	var p, hint string
	switch {
	case arch == runtime.GOARCH:
		p, hint = "/bin/busybox", "install the Debian package busybox-static"
	case arch == "arm64":
		p, hint = path.Join(Arm64Cache(), "bin", "busybox"), "run packaging/fetch-arm64.sh (as root; packaging/setup-linux.sh does)"
	default:
		return "", fmt.Errorf("testimage: no busybox for arch %q on a %s host", arch, runtime.GOARCH)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("testimage: busybox for %s not found at %s: %s", arch, p, hint)
	}
	if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("testimage: %s is not an executable file: %s", p, hint)
	}
	return p, nil
}

// File is one entry of a layer built by Layer.
type File struct {
	Path     string      // absolute or relative; stored relative ("bin/sh")
	Mode     os.FileMode // permission bits plus os.ModeDir / os.ModeSymlink; 0 means 0644 file
	Data     []byte      // file content
	Linkname string      // symlink target
	UID, GID int
}

// Dir, Symlink and Whiteout are shorthands for File entries.
func Dir(p string, perm os.FileMode) File { return File{Path: p, Mode: os.ModeDir | perm} }
func Symlink(p, target string) File {
	return File{Path: p, Mode: os.ModeSymlink | 0o777, Linkname: target}
}

// Whiteout returns the OCI whiteout entry that deletes p in lower layers.
func Whiteout(p string) File {
	dir, base := path.Split(p)
	return File{Path: path.Join(dir, ".wh."+base), Mode: 0o644}
}

// Tar writes files as an uncompressed tar stream (entries in the given order).
func Tar(files []File) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		name := path.Clean("/" + f.Path)[1:]
		h := &tar.Header{
			Name: name, Uid: f.UID, Gid: f.GID, ModTime: Epoch, Format: tar.FormatPAX,
			Mode: int64(f.Mode.Perm()),
		}
		if f.Mode&os.ModeSetuid != 0 {
			h.Mode |= 0o4000
		}
		if f.Mode&os.ModeSticky != 0 {
			h.Mode |= 0o1000
		}
		switch {
		case f.Mode&os.ModeDir != 0:
			h.Typeflag, h.Name = tar.TypeDir, name+"/"
		case f.Mode&os.ModeSymlink != 0:
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.Linkname
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
			if f.Mode.Perm() == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(err) // only on programming errors: in-memory writer
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(f.Data)
		}
	}
	tw.Close()
	return buf.Bytes()
}

// Layer packs files into a gzip-compressed layer.
func Layer(files []File) (v1.Layer, error) {
	return LayerFromTar(Tar(files))
}

// LayerFromTar gzips an uncompressed tar stream into a layer.
func LayerFromTar(tarBytes []byte) (v1.Layer, error) {
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Write(tarBytes)
	zw.Close()
	b := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
}

var (
	imgMu    sync.Mutex
	imgCache = map[string]v1.Image{}
)

// BusyboxImage returns a linux/<arch> image ("" = host arch) with two layers:
//
//	base:  /bin/busybox + /bin/<applet> symlinks (Applets), /sbin, /usr/bin,
//	       /usr/sbin, /etc/passwd and /etc/group (root, nobody, app uid 1000),
//	       /etc/motd, /root, /home/app (owned by 1000), /tmp 1777
//	upper: /hello.txt (HelloText) and a whiteout deleting /etc/motd
//
// Config: Cmd ["sh"], Env PATH=/usr/sbin:/usr/bin:/sbin:/bin.
// The result is cached per arch for the life of the test binary.
func BusyboxImage(arch string) (v1.Image, error) {
	if arch == "" {
		arch = runtime.GOARCH
	}
	imgMu.Lock()
	defer imgMu.Unlock()
	if img, ok := imgCache[arch]; ok {
		return img, nil
	}
	bin, err := BusyboxBinary(arch)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("testimage: %w", err)
	}
	base := []File{
		Dir("bin", 0o755), Dir("dev", 0o755), Dir("etc", 0o755), Dir("home", 0o755),
		{Path: "home/app", Mode: os.ModeDir | 0o755, UID: 1000, GID: 1000},
		Dir("proc", 0o555), Dir("root", 0o700), Dir("sbin", 0o755), Dir("sys", 0o555),
		{Path: "tmp", Mode: os.ModeDir | os.ModeSticky | 0o777},
		Dir("usr", 0o755), Dir("usr/bin", 0o755), Dir("usr/sbin", 0o755),
		Dir("var", 0o755), Dir("var/www", 0o755),
		{Path: "bin/busybox", Mode: 0o755, Data: data},
		{Path: "etc/passwd", Mode: 0o644, Data: []byte(
			"root:x:0:0:root:/root:/bin/sh\n" +
				"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" +
				"app:x:1000:1000:app:/home/app:/bin/sh\n")},
		{Path: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnobody:x:65534:\napp:x:1000:\n")},
		{Path: "etc/motd", Mode: 0o644, Data: []byte("deleted by the upper layer\n")},
		{Path: "etc/hostname", Mode: 0o644, Data: []byte("busybox\n")},
	}
	applets := append([]string(nil), Applets...)
	sort.Strings(applets)
	for _, a := range applets {
		base = append(base, Symlink("bin/"+a, "busybox"))
	}
	l1, err := Layer(base)
	if err != nil {
		return nil, err
	}
	l2, err := Layer([]File{
		{Path: "hello.txt", Mode: 0o644, Data: []byte(HelloText)},
		Whiteout(WhiteoutPath),
	})
	if err != nil {
		return nil, err
	}
	img, err := Image(arch, []string{"sh"}, l1, l2)
	if err != nil {
		return nil, err
	}
	imgCache[arch] = img
	return img, nil
}

// Image builds a linux/<arch> image from layers with the given Cmd and the
// standard PATH, with fixed timestamps.
func Image(arch string, cmd []string, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, fmt.Errorf("testimage: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	if arch == "arm64" {
		cf.Variant = "v8"
	}
	cf.Created = v1.Time{Time: Epoch}
	cf.Config.Cmd = cmd
	cf.Config.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.CreatedAt(img, v1.Time{Time: Epoch})
}
