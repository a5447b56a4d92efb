package container

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/berth-dev/berth/runtime/volume"
)

// Signal names and detach keys come straight from API requests.
func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"SIGTERM", "9", "rtmin+3", "", "SIGRTMIN+99", "-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseSignal(s); err == nil && (n < 1 || n > 64) {
			t.Fatalf("%q -> %d", s, n)
		}
	})
}

// The detach reader must pass every byte through except a complete key
// sequence, whatever the input and however it is split into reads.
func FuzzDetachReader(f *testing.F) {
	f.Add("ctrl-p,ctrl-q", []byte("ab\x10c\x10\x11rest"), uint8(3))
	f.Add("a,b", []byte("aab"), uint8(1))
	f.Fuzz(func(t *testing.T, keys string, in []byte, chunk uint8) {
		k, err := ParseDetachKeys(keys)
		if err != nil {
			return
		}
		r := &detachReader{r: &chunked{data: in, n: int(chunk%7) + 1}, keys: k}
		out, err := io.ReadAll(r)
		i := bytes.Index(in, k)
		if i >= 0 {
			if err != ErrDetached || !bytes.Equal(out, in[:i]) {
				t.Fatalf("keys %q in %q: got %q %v", k, in, out, err)
			}
		} else if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("no keys %q in %q: got %q %v", k, in, out, err)
		}
	})
}

type chunked struct {
	data []byte
	n    int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(c.n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// Whatever the path and however the disk's symlinks point, resolution ends
// (the symlink limit), stays in the tree and never panics.
func FuzzResolveOnDisk(f *testing.F) {
	for _, s := range []string{"/etc/passwd", "/a/../../b", "/loop", "/abs/x", "/rel/../../..", "/f/x", "/\x00"} {
		f.Add(s, "/etc", "../../etc/passwd")
	}
	f.Fuzz(func(t *testing.T, p, link1, link2 string) {
		ents := map[string]diskEntry{
			"": {mode: fs.ModeDir}, "etc": {mode: fs.ModeDir}, "etc/passwd": {}, "f": {},
			"abs": {mode: fs.ModeSymlink, link: link1}, "rel": {mode: fs.ModeSymlink, link: link2},
			"etc/loop": {mode: fs.ModeSymlink, link: "../loop"}, "loop": {mode: fs.ModeSymlink, link: "etc/loop"},
		}
		got, err := resolveOnDisk(p, ents)
		if err != nil {
			return
		}
		e, ok := ents[got]
		if !ok || e.mode&fs.ModeSymlink != 0 {
			t.Fatalf("%q resolved to %q (%v)", p, got, ok)
		}
	})
}

// -v specs come straight from API requests. Whatever the input, parseBind
// either refuses it with a kind the API can map, or yields an absolute
// target and a source that is an absolute clean path or a valid volume
// name (never a path that could lead a volume out of the data root).
func FuzzParseBind(f *testing.F) {
	for _, s := range []string{"/h:/d", "/h:/d:ro", "v1:/d:rw,z", "../x:/d", "/h:/d:ro,rw", "a:b:c:d", ":/d", "/h:", "v1:/d:rshared", "/a/../b:/c/./d:Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseBind(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotImplemented) {
				t.Fatalf("%q: error of no kind: %v", s, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("%q: multi-line error %q", s, err)
			}
			return
		}
		switch m.Type {
		case mount.TypeBind:
			if !filepath.IsAbs(m.Source) || filepath.Clean(m.Source) != m.Source {
				t.Fatalf("%q: bind source %q", s, m.Source)
			}
		case mount.TypeVolume:
			if volume.CheckName(m.Source) != nil || strings.ContainsAny(m.Source, "/\\") || m.Source == ".." {
				t.Fatalf("%q: volume name %q", s, m.Source)
			}
		default:
			t.Fatalf("%q: type %q", s, m.Type)
		}
		// parseMounts then checks the target; it must never accept "/" or
		// a relative one.
		ms, err := parseMounts(&container.HostConfig{Binds: []string{s}}, nil)
		if err == nil && (len(ms) != 1 || !path.IsAbs(ms[0].Target) || ms[0].Target == "/") {
			t.Fatalf("%q: parseMounts accepted target %+v", s, ms)
		}
	})
}
