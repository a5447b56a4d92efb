package image

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// tmpPrefix names every temp file and directory the image store makes in the
// data root's tmp dir, so New can remove what a crashed process left behind
// without touching other subsystems' scratch files.
const tmpPrefix = "image-"

// blobStore is the content-addressed part of the store: blobs/sha256/<hex>
// under the content dir. A blob becomes visible only by an atomic rename of
// a fully written, fsynced and verified temp file, so every visible blob is
// complete and matches its name.
type blobStore struct {
	dir string // <content>/blobs/sha256
	tmp string // the data root's tmp dir (same filesystem, so rename is atomic)
}

func (b *blobStore) path(d v1.Hash) string { return filepath.Join(b.dir, d.Hex) }

func (b *blobStore) has(d v1.Hash) bool {
	if d.Algorithm != "sha256" || !validHex(d.Hex) {
		return false
	}
	_, err := os.Stat(b.path(d))
	return err == nil
}

func (b *blobStore) size(d v1.Hash) (int64, error) {
	fi, err := os.Stat(b.path(d))
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (b *blobStore) open(d v1.Hash) (*os.File, error) {
	if d.Algorithm != "sha256" || !validHex(d.Hex) {
		return nil, fmt.Errorf("unsupported digest %s", d)
	}
	f, err := os.Open(b.path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s is missing from the content store (%s): pull or load the image again", d, b.dir)
	}
	return f, err
}

// tempFile is a blob being written: bytes go to a temp file and a hash.
type tempFile struct {
	f       *os.File
	h       hash.Hash
	n       int64
	flushed int64 // bytes handed to writeback so far
}

func (b *blobStore) newTemp() (*tempFile, error) {
	if err := os.MkdirAll(b.tmp, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(b.tmp, tmpPrefix+"blob-*")
	if err != nil {
		return nil, err
	}
	return &tempFile{f: f, h: sha256.New()}, nil
}

func (t *tempFile) Write(p []byte) (int, error) {
	n, err := t.f.Write(p)
	t.h.Write(p[:n])
	t.n += int64(n)
	// Start writeback as data arrives, so the fsync before publishing
	// finds little left to flush (it dominated large pulls otherwise).
	if t.n-t.flushed >= writebackChunk {
		startWriteback(t.f, t.flushed, t.n-t.flushed)
		t.flushed = t.n
	}
	return n, err
}

const writebackChunk = 8 << 20

func (t *tempFile) digest() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(t.h.Sum(nil))}
}

// discard removes the temp file; safe to call after commit.
func (t *tempFile) discard() {
	if t.f != nil {
		t.f.Close()
		os.Remove(t.f.Name())
		t.f = nil
	}
}

// commit verifies the content against want (and size, if >= 0) and
// publishes it. On mismatch the temp file is removed and nothing is visible.
func (b *blobStore) commit(t *tempFile, want v1.Hash, size int64) error {
	defer t.discard()
	got := t.digest()
	if size >= 0 && t.n != size {
		return fmt.Errorf("size mismatch for %s: got %d bytes, the manifest says %d", want, t.n, size)
	}
	if got != want {
		return fmt.Errorf("digest mismatch: content hashes to %s, expected %s", got, want)
	}
	return b.publish(t)
}

// publish moves a verified temp file to its digest's place.
func (b *blobStore) publish(t *tempFile) error {
	d := t.digest()
	if err := syncData(t.f); err != nil {
		return err
	}
	if err := t.f.Close(); err != nil {
		return err
	}
	name := t.f.Name()
	t.f = nil
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		os.Remove(name)
		return err
	}
	if err := os.Chmod(name, 0o444); err != nil {
		os.Remove(name)
		return err
	}
	if err := os.Rename(name, b.path(d)); err != nil {
		os.Remove(name)
		return err
	}
	return nil
}

// put streams r into the store, verifying digest and size (size < 0: unknown).
// progress, if set, gets the running byte count.
func (b *blobStore) put(r io.Reader, want v1.Hash, size int64, progress func(int64)) error {
	if want.Algorithm != "sha256" || !validHex(want.Hex) {
		return fmt.Errorf("unsupported digest %q (only sha256 is supported)", want)
	}
	if b.has(want) {
		return nil
	}
	t, err := b.newTemp()
	if err != nil {
		return err
	}
	defer t.discard()
	var w io.Writer = t
	if progress != nil {
		w = &progressWriter{w: t, fn: progress}
	}
	// Never read more than the manifest promised: a server that keeps
	// sending must not fill the disk.
	if size >= 0 {
		r = io.LimitReader(r, size+1)
	}
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(w, r, buf); err != nil {
		return err
	}
	return b.commit(t, want, size)
}

// putBytes stores small in-memory content (manifests, configs).
func (b *blobStore) putBytes(p []byte) (v1.Hash, error) {
	sum := sha256.Sum256(p)
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	return d, b.put(strings.NewReader(string(p)), d, int64(len(p)), nil)
}

func (b *blobStore) readAll(d v1.Hash) ([]byte, error) {
	f, err := b.open(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func (b *blobStore) remove(d v1.Hash) error {
	if d.Algorithm != "sha256" || !validHex(d.Hex) {
		return nil
	}
	err := os.Remove(b.path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// list returns every blob present.
func (b *blobStore) list() ([]v1.Hash, error) {
	ents, err := os.ReadDir(b.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []v1.Hash
	for _, e := range ents {
		if validHex(e.Name()) {
			out = append(out, v1.Hash{Algorithm: "sha256", Hex: e.Name()})
		}
	}
	return out, nil
}

func validHex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

type progressWriter struct {
	w  io.Writer
	n  int64
	fn func(int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	p.fn(p.n)
	return n, err
}
