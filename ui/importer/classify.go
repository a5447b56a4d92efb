// Package importer decides what the app does with files dropped on it or
// opened with it from Finder: which kind of image input each path is
// (read from its bytes, never from its name), whether it needs a name,
// how it is sent to the engine's Docker API, and what the user is told
// afterwards (one notification for what loaded, one alert for what was
// refused). It is portable; ui/menubar only asks for names and shows the
// results.
package importer

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Kind is what a dropped path holds.
type Kind int

const (
	// Archive is an image archive: docker-archive (`docker save`) or OCI
	// archive, plain, gzip or zstd. It goes to POST /images/load.
	Archive Kind = iota + 1
	// Layout is an OCI image layout folder (`skopeo copy … oci:DIR`); it
	// is streamed to POST /images/load as a tar.
	Layout
	// Rootfs is a plain root filesystem tar (`docker export`, a distro's
	// rootfs tarball): it becomes a one-layer image and needs a name
	// (POST /images/create?fromSrc=-, i.e. `docker import`).
	Rootfs
)

// Item is one accepted path and how to import it.
type Item struct {
	Path string
	Kind Kind
	// Format names the input for the user: "docker-archive", "OCI archive",
	// "OCI layout folder", "root filesystem tar".
	Format string
	// Compression is "", "gzip" or "zstd".
	Compression string
	// Size is the bytes that will be read (a folder: its files' sum), for
	// progress.
	Size int64
}

// NeedsName says the user must name the image before it is imported.
func (it Item) NeedsName() bool { return it.Kind == Rootfs }

// Describe is the item as a short phrase, e.g. "OCI archive (zstd)".
func (it Item) Describe() string {
	if it.Compression != "" {
		return it.Format + " (" + it.Compression + ")"
	}
	return it.Format
}

// Refusal reasons (one line each; tests and alerts quote them).
const (
	reasonNotArchive = "not an image archive: no manifest.json, index.json or oci-layout, and not a tar"
	reasonEmptyFile  = "empty file: it holds no data, so it is not an image archive or a tar"
	reasonEmptyTar   = "empty archive: it contains no files"
)

// MaxExpansion caps how far a compressed input may expand while it is
// scanned (256 MiB + 100× the compressed size, as the image store does):
// beyond it the file is refused as a decompression bomb.
const MaxExpansion = 100

var (
	magicGzip = []byte{0x1f, 0x8b}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Classify reads path and says what it is, or why it cannot be imported.
// Files are recognised by their bytes: gzip (1f 8b) and zstd (28 b5 2f fd)
// are unwrapped, then a tar needs "ustar" at offset 257; its member names
// tell an image archive (manifest.json, or index.json with oci-layout)
// from a root filesystem. A folder must hold an oci-layout file.
func Classify(p string) (Item, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return Item{}, fmt.Errorf("cannot read %s: %s", p, oneLine(unwrapPath(err)))
	}
	if fi.IsDir() {
		return classifyDir(p)
	}
	if !fi.Mode().IsRegular() {
		return Item{}, errors.New("not a file or folder: only image archives, OCI layout folders and root filesystem tars can be imported")
	}
	if fi.Size() == 0 {
		return Item{}, errors.New(reasonEmptyFile)
	}
	f, err := os.Open(p)
	if err != nil {
		return Item{}, fmt.Errorf("cannot read %s: %s", p, oneLine(unwrapPath(err)))
	}
	defer f.Close()
	it := Item{Path: p, Size: fi.Size()}
	kind, format, comp, err := sniff(f, fi.Size())
	if err != nil {
		return Item{}, err
	}
	it.Kind, it.Format, it.Compression = kind, format, comp
	return it, nil
}

// sniff classifies a file's content (size is the compressed size, for the
// expansion cap).
func sniff(r io.Reader, size int64) (Kind, string, string, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, _ := br.Peek(4)
	var body io.Reader = br
	comp := ""
	switch {
	case bytes.HasPrefix(head, magicGzip):
		comp = "gzip"
		zr, err := gzip.NewReader(br)
		if err != nil {
			return 0, "", "", fmt.Errorf("damaged gzip file: %s", oneLine(err.Error()))
		}
		defer zr.Close()
		body = zr
	case bytes.HasPrefix(head, magicZstd):
		comp = "zstd"
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return 0, "", "", fmt.Errorf("damaged zstd file: %s", oneLine(err.Error()))
		}
		defer zr.Close()
		body = zr
	}
	if comp != "" {
		body = &capReader{r: body, left: 256<<20 + MaxExpansion*size}
	}
	tb := bufio.NewReaderSize(body, 1<<16)
	block, err := tb.Peek(512)
	if len(block) < 512 || string(block[257:262]) != "ustar" {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, "", "", damaged(comp, err)
		}
		return 0, "", "", errors.New(reasonNotArchive)
	}
	var walk io.Reader = tb
	if sk, ok := r.(io.ReadSeeker); ok && comp == "" {
		// A plain tar on disk: the tar reader seeks over file contents
		// instead of reading them (a multi-GB rootfs is scanned in ms).
		if _, err := sk.Seek(0, io.SeekStart); err == nil {
			walk = sk
		}
	}
	names, err := scanTar(walk)
	if err != nil {
		return 0, "", "", damaged(comp, err)
	}
	switch {
	case names["index.json"] && names["oci-layout"]:
		return Archive, "OCI archive", comp, nil
	case names["manifest.json"]:
		return Archive, "docker-archive", comp, nil
	case names["index.json"]:
		return 0, "", "", errors.New("not an OCI archive: index.json without oci-layout")
	case names[""]:
		return Rootfs, "root filesystem tar", comp, nil
	}
	return 0, "", "", errors.New(reasonEmptyTar)
}

var errBomb = errors.New("decompression bomb: the file expands more than 100 times; refusing it")

type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errBomb
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// scanTar walks the tar's headers and returns its top-level image
// markers; the key "" is set when it has any entry at all. It always reads
// to the end, so a truncated or damaged archive is refused here with a
// clear reason before anything is sent to the engine (plain tars are
// skipped through by seeking, so this costs little).
func scanTar(r io.Reader) (map[string]bool, error) {
	names := map[string]bool{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
		names[""] = true
		n := path.Clean(strings.TrimPrefix(h.Name, "./"))
		switch n {
		case "manifest.json", "index.json", "oci-layout":
			names[n] = true
		}
	}
}

func damaged(comp string, err error) error {
	if errors.Is(err, errBomb) {
		return err
	}
	what := "tar"
	if comp != "" {
		what = comp + " tar"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated %s: the file ends in the middle of an entry (an incomplete download or copy?)", what)
	}
	return fmt.Errorf("damaged %s: %s", what, oneLine(err.Error()))
}

// classifyDir accepts an OCI layout folder: oci-layout and index.json at
// its top. Only regular files and folders are allowed inside (a symlink
// could point anywhere on the Mac).
func classifyDir(p string) (Item, error) {
	for _, f := range []string{"oci-layout", "index.json"} {
		fi, err := os.Lstat(filepath.Join(p, f))
		if err != nil || !fi.Mode().IsRegular() {
			return Item{}, fmt.Errorf("not an OCI layout folder: no %s file in %s (folders made by `skopeo copy … oci:DIR` can be imported)", f, filepath.Base(p))
		}
	}
	var size int64
	err := filepath.WalkDir(p, func(q string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			size += fi.Size()
		default:
			rel, _ := filepath.Rel(p, q)
			return fmt.Errorf("OCI layout folder holds %s, which is not a regular file; only files and folders are imported", rel)
		}
		return nil
	})
	if err != nil {
		return Item{}, err
	}
	return Item{Path: p, Kind: Layout, Format: "OCI layout folder", Size: size}, nil
}

func unwrapPath(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}
