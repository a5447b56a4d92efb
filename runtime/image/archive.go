package image

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// archive is the staged content of an image archive or layout directory.
// Every member a loader uses is copied into a temp file in the data root's
// tmp dir while being hashed, so its digest is known before anything
// reaches the content store, and committing it is a hard link (atomic).
// Nothing is ever written at a path taken from the archive.
type archive struct {
	work    string             // temp dir holding staged members
	members map[string]*member // clean archive path -> member
	links   map[string]string  // clean archive path -> clean target path (symlinks, hard links)
	root    *os.Root           // layout directory source (nil for tar streams)
	seq     int
	limit   int64 // max member size (bomb cap for directories); 0 = none
}

type member struct {
	staged string // temp file path ("" until staged)
	size   int64
	digest v1.Hash
}

func newArchive(tmp string) (*archive, error) {
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(tmp, tmpPrefix+"load-*")
	if err != nil {
		return nil, err
	}
	return &archive{work: work, members: map[string]*member{}, links: map[string]string{}}, nil
}

func (a *archive) close() {
	if a.root != nil {
		a.root.Close()
	}
	os.RemoveAll(a.work)
}

// cleanMember turns an archive path into a clean relative path, refusing
// absolute paths and any ".." that would leave the archive.
func cleanMember(p string) (string, error) {
	q := strings.TrimPrefix(p, "./")
	if q == "" || strings.HasPrefix(q, "/") {
		return "", fmt.Errorf("archive path %q is absolute or empty", p)
	}
	for _, part := range strings.Split(q, "/") {
		if part == ".." {
			return "", fmt.Errorf("archive path %q contains \"..\"", p)
		}
	}
	c := path.Clean(q)
	if c == "." {
		return "", fmt.Errorf("archive path %q names the archive root", p)
	}
	return c, nil
}

// stageStream copies r into a new temp file, hashing it.
func (a *archive) stageStream(r io.Reader) (*member, error) {
	a.seq++
	p := filepath.Join(a.work, fmt.Sprintf("m%06d", a.seq))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	// unsynced: no writeback hints; the commit journals the blob and
	// syncs it after the images are recorded (durable.go).
	t := &tempFile{f: f, h: sha256.New(), unsynced: true}
	buf := make([]byte, 1<<20)
	_, err = io.CopyBuffer(t, r, buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return nil, err
	}
	return &member{staged: p, size: t.n, digest: t.digest()}, nil
}

// readTar stages every regular file of a tar stream and records links.
func (a *archive) readTar(r io.Reader, progress func(int64)) error {
	tr := tar.NewReader(r)
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return tarError(err)
		}
		name, err := cleanMember(h.Name)
		if err != nil {
			return err
		}
		if a.seq >= maxMembers {
			return fmt.Errorf("archive has more than %d files: not an image archive (image archives hold a few files per layer)", maxMembers)
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			m, err := a.stageStream(tr)
			if err != nil {
				return tarError(err)
			}
			if old := a.members[name]; old != nil {
				os.Remove(old.staged)
			}
			delete(a.links, name)
			a.members[name] = m
			total += m.size
			if progress != nil {
				progress(total)
			}
		case tar.TypeSymlink:
			target := h.Linkname
			if !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(name), target)
			}
			t, err := cleanMember(strings.TrimPrefix(target, "/"))
			if err != nil {
				return fmt.Errorf("archive symlink %q points outside the archive (%q)", h.Name, h.Linkname)
			}
			a.links[name] = t
		case tar.TypeLink:
			t, err := cleanMember(h.Linkname)
			if err != nil {
				return fmt.Errorf("archive hard link %q points outside the archive (%q)", h.Name, h.Linkname)
			}
			a.links[name] = t
		case tar.TypeDir, tar.TypeXGlobalHeader:
		default:
			// Devices, fifos and the like have no place in an image archive
			// (they belong inside layers, which are separate blobs).
			return fmt.Errorf("archive entry %q has unexpected type %q", h.Name, string(h.Typeflag))
		}
	}
	return nil
}

func tarError(err error) error {
	switch {
	case errors.Is(err, ErrBomb):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("truncated archive: it ends in the middle of a file; copy it again")
	case errors.Is(err, tar.ErrHeader):
		return fmt.Errorf("corrupt archive: invalid tar header (not a tar file, or damaged)")
	}
	return fmt.Errorf("corrupt archive: %s", oneLine(err.Error()))
}

// resolve follows links (bounded) to a member path.
func (a *archive) resolve(name string) string {
	for i := 0; i < 16; i++ {
		t, ok := a.links[name]
		if !ok {
			return name
		}
		name = t
	}
	return name
}

// has reports whether the archive has a (regular) member name.
func (a *archive) has(name string) bool {
	_, err := a.get(name)
	return err == nil
}

// get returns a staged member, staging it from the layout directory if needed.
func (a *archive) get(p string) (*member, error) {
	name, err := cleanMember(p)
	if err != nil {
		return nil, err
	}
	name = a.resolve(name)
	if m, ok := a.members[name]; ok {
		return m, nil
	}
	if a.root == nil {
		return nil, fmt.Errorf("%w: %q", errMissingMember, p)
	}
	// os.Root refuses symlinks that lead outside the directory.
	f, err := a.root.Open(filepath.FromSlash(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q", errMissingMember, p)
	}
	if err != nil {
		return nil, fmt.Errorf("layout file %q: %s", p, oneLine(err.Error()))
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("layout entry %q is not a regular file", p)
	}
	m, err := a.stageStream(f)
	if err != nil {
		return nil, err
	}
	a.members[name] = m
	return m, nil
}

// maxMembers bounds how many files an archive may stage, so a tar of a
// million empty files cannot exhaust the data root's inodes.
const maxMembers = 100000

var errMissingMember = errors.New("the archive lacks a file its manifest names")

// read returns a small member's bytes (manifests, configs, indexes).
func (a *archive) read(p string) ([]byte, error) {
	m, err := a.get(p)
	if err != nil {
		return nil, err
	}
	if m.size > 64<<20 {
		return nil, fmt.Errorf("archive file %q is %d MiB, too large for a manifest or config", p, m.size>>20)
	}
	return os.ReadFile(m.staged)
}

// blob returns the staged member for a digest in an OCI layout, verified.
func (a *archive) blob(d v1.Hash, size int64) (*member, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	m, err := a.get("blobs/sha256/" + d.Hex)
	if err != nil {
		return nil, err
	}
	if m.digest != d {
		return nil, fmt.Errorf("digest mismatch: blobs/sha256/%s hashes to %s", shortID(d.Hex), m.digest)
	}
	if size >= 0 && m.size != size {
		return nil, fmt.Errorf("size mismatch: blob %s is %d bytes, its descriptor says %d", shortID(d.Hex), m.size, size)
	}
	return m, nil
}

// commit publishes a staged, verified member as blob d (a hard link, so a
// member used twice is linked twice; the temp dir is removed afterwards).
// With p set the link is made unsynced and p syncs it later (durable.go).
func (b *blobStore) commitStaged(m *member, d v1.Hash, p *unsynced) error {
	if m.digest != d {
		return fmt.Errorf("internal: committing %s as %s", m.digest, d)
	}
	if b.has(d) {
		return nil
	}
	if p == nil {
		f, err := os.OpenFile(m.staged, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		err = syncData(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	if err := os.Chmod(m.staged, 0o444); err != nil {
		return err
	}
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return err
	}
	if err := os.Link(m.staged, b.path(d)); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if p != nil {
		p.written(d)
	}
	return nil
}
