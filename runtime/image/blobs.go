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
	// unsynced: publish without fsync; the caller journaled the blob and
	// syncs it after the rename.
	unsynced bool
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
	if !t.unsynced && t.n-t.flushed >= writebackChunk {
		startWriteback(t.f, t.flushed, t.n-t.flushed)
		t.flushed = t.n
	}
	return n, err
}

const writebackChunk = 8 << 20

// fill copies r into the temp file. Hashing runs in its own goroutine, a
// chunk behind the reads and writes: SHA-256 is about half of a pull's CPU
// time, and overlapping it with the socket and file I/O shortens the
// largest layer's download, which decides when a pull ends (measured:
// best of 8 pulls 0.54 s against 0.60 s for one 1 MiB buffer doing all
// three in turn). Chunks of 512 KiB keep the syscall count low.
func (t *tempFile) fill(r io.Reader, progress func(int64)) error {
	const chunks, chunkSize = 4, 512 << 10
	free := make(chan []byte, chunks)
	for i := 0; i < chunks; i++ {
		free <- make([]byte, chunkSize)
	}
	full := make(chan []byte, chunks)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for p := range full {
			t.h.Write(p)
			free <- p[:cap(p)]
		}
	}()
	err := func() error {
		for {
			buf := <-free
			n, rerr := io.ReadFull(r, buf)
			if n > 0 {
				if _, err := t.f.Write(buf[:n]); err != nil {
					return err
				}
				t.n += int64(n)
				full <- buf[:n]
				if !t.unsynced && t.n-t.flushed >= writebackChunk {
					startWriteback(t.f, t.flushed, t.n-t.flushed)
					t.flushed = t.n
				}
				if progress != nil {
					progress(t.n)
				}
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				return nil
			}
			if rerr != nil {
				return rerr
			}
		}
	}()
	close(full)
	<-hashed
	return err
}

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

// publish moves a verified temp file to its digest's place, after syncing
// it unless a journal entry covers it (durable.go).
func (b *blobStore) publish(t *tempFile) error {
	d := t.digest()
	if !t.unsynced {
		if err := syncData(t.f); err != nil {
			return err
		}
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
	_, err := b.putTo(r, want, size, progress, nil)
	return err
}

// putTo is put; with p set the blob is published unsynced and p syncs it
// in the background. It reports whether it wrote the blob.
func (b *blobStore) putTo(r io.Reader, want v1.Hash, size int64, progress func(int64), p *unsynced) (bool, error) {
	if want.Algorithm != "sha256" || !validHex(want.Hex) {
		return false, fmt.Errorf("unsupported digest %q (only sha256 is supported)", want)
	}
	if b.has(want) {
		return false, nil
	}
	t, err := b.newTemp()
	if err != nil {
		return false, err
	}
	defer t.discard()
	t.unsynced = p != nil
	// Never read more than the manifest promised: a server that keeps
	// sending must not fill the disk.
	if size >= 0 {
		r = io.LimitReader(r, size+1)
	}
	if err := t.fill(r, progress); err != nil {
		return false, err
	}
	if err := b.commit(t, want, size); err != nil {
		return false, err
	}
	if p != nil {
		p.written(want)
	}
	return true, nil
}

// putBytes stores small in-memory content (manifests, configs).
func (b *blobStore) putBytes(p []byte) (v1.Hash, error) {
	return b.putBytesTo(p, nil)
}

func (b *blobStore) putBytesTo(p []byte, pend *unsynced) (v1.Hash, error) {
	sum := sha256.Sum256(p)
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	_, err := b.putTo(strings.NewReader(string(p)), d, int64(len(p)), nil, pend)
	return d, err
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

// absent returns the digests in ds (deduplicated) that are not stored.
func (b *blobStore) absent(ds []v1.Hash) []v1.Hash {
	seen := map[v1.Hash]bool{}
	var out []v1.Hash
	for _, d := range ds {
		if !seen[d] && !b.has(d) {
			out = append(out, d)
		}
		seen[d] = true
	}
	return out
}
