package importer

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/moby/moby/client"
)

// Request is one import as the engine gets it: an accepted item and, for a
// root filesystem tar, the validated name.
type Request struct {
	Item Item
	Name string
}

// NewRequest pairs an item with its name, checking the name when one is
// needed (and ignoring it otherwise).
func NewRequest(it Item, name string) (Request, error) {
	if !it.NeedsName() {
		return Request{Item: it}, nil
	}
	n, err := ValidateName(name)
	if err != nil {
		return Request{}, err
	}
	return Request{Item: it, Name: n}, nil
}

// Progress is how far one import has got: bytes of the input sent to the
// engine (a folder's files, a compressed file as it is on disk).
type Progress struct {
	File        string
	Index, Of   int // this is file Index (1-based) of Of in the drop
	Done, Total int64
}

// Fraction is the progress between 0 and 1.
func (p Progress) Fraction() float64 {
	if p.Total <= 0 {
		return 0
	}
	return min(1, float64(p.Done)/float64(p.Total))
}

// Text is the progress line, e.g. "Importing b.tar (2 of 3)… 12.0 MB of 40.0 MB".
func (p Progress) Text() string {
	s := "Importing " + filepath.Base(p.File)
	if p.Of > 1 {
		s += fmt.Sprintf(" (%d of %d)", p.Index, p.Of)
	}
	return s + "… " + formatBytes(p.Done) + " of " + formatBytes(p.Total)
}

func formatBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// Import sends req to the engine through its Docker API (the same
// endpoints `docker load` and `docker import` use) and returns the names
// of the images loaded (image IDs for untagged ones). progress, if set, is
// called as the input is read.
func Import(ctx context.Context, cli *client.Client, req Request, progress func(done, total int64)) ([]string, error) {
	if cli == nil {
		return nil, errors.New("the engine is not running")
	}
	it := req.Item
	var body io.ReadCloser
	switch it.Kind {
	case Archive, Rootfs:
		f, err := os.Open(it.Path)
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %s", it.Path, oneLine(unwrapPath(err)))
		}
		body = f
	case Layout:
		body = tarFolder(it.Path)
	default:
		return nil, fmt.Errorf("unknown import kind %d", it.Kind)
	}
	defer body.Close()
	in := &countingReader{r: body, total: it.Size, report: progress}
	names, err := send(ctx, cli, req, in)
	if err != nil && ctx.Err() != nil {
		// Cancelled mid-upload: the transport's error (a broken pipe) says
		// less than the cancellation itself.
		return nil, fmt.Errorf("import cancelled: %w", ctx.Err())
	}
	return names, err
}

func send(ctx context.Context, cli *client.Client, req Request, in io.Reader) ([]string, error) {
	if req.Item.Kind == Rootfs {
		res, err := cli.ImageImport(ctx, client.ImageImportSource{Source: in, SourceName: "-"}, req.Name, client.ImageImportOptions{})
		if err != nil {
			return nil, err
		}
		defer res.Close()
		if _, err := readStream(res); err != nil {
			return nil, err
		}
		return []string{req.Name}, nil
	}
	res, err := cli.ImageLoad(ctx, in)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	return readStream(res)
}

// readStream reads the engine's JSON message stream: "Loaded image: x"
// lines name what was loaded; an error message ends the import.
func readStream(r io.Reader) ([]string, error) {
	dec := json.NewDecoder(r)
	var loaded []string
	for {
		var m struct {
			Stream      string `json:"stream"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading the engine's answer: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return nil, errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return nil, errors.New(m.Error)
		}
		s := strings.TrimSpace(m.Stream)
		for _, p := range []string{"Loaded image: ", "Loaded image ID: "} {
			if strings.HasPrefix(s, p) {
				loaded = append(loaded, strings.TrimPrefix(s, p))
			}
		}
	}
	sort.Strings(loaded)
	return loaded, nil
}

type countingReader struct {
	r      io.Reader
	done   atomic.Int64
	total  int64
	report func(done, total int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && c.report != nil {
		c.report(c.done.Add(int64(n)), c.total)
	}
	return n, err
}

// tarFolder streams an OCI layout folder as a tar (what the load endpoint
// reads). Only folders and regular files go in (Classify refused the rest);
// names are relative to the folder.
func tarFolder(dir string) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil || rel == "." {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if !fi.IsDir() && !fi.Mode().IsRegular() {
				return fmt.Errorf("%s is not a regular file", rel)
			}
			h, err := tar.FileInfoHeader(fi, "")
			if err != nil {
				return err
			}
			h.Name = filepath.ToSlash(rel)
			if fi.IsDir() {
				h.Name += "/"
			}
			h.Uname, h.Gname = "", ""
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if fi.IsDir() {
				return nil
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}
