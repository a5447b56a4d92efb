// Package rootfs turns OCI images into container root disks: one flattened
// ext4 snapshot per image, built once and published atomically, and an O(1)
// copy-on-write clone of it per container.
package rootfs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/berth-dev/berth/runtime/ext4"
)

// Build writes img's layers, flattened, into the ext4 image f.
func Build(ctx context.Context, f *os.File, img v1.Image, opts ext4.Options) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("list layers: %w", err)
	}
	ops := make([]ext4.LayerOpener, len(layers))
	for i, l := range layers {
		ops[i] = func() (io.ReadCloser, error) { return openLayer(ctx, l) }
	}
	w, err := ext4.NewWriter(f, opts)
	if err != nil {
		return err
	}
	if err := w.AddLayers(ops); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// BuildFromTar writes one tar stream (plain, gzip or zstd) into f.
func BuildFromTar(ctx context.Context, f *os.File, r io.Reader, opts ext4.Options) error {
	rc, err := decompress(ctx, io.NopCloser(r))
	if err != nil {
		return err
	}
	defer rc.Close()
	w, err := ext4.NewWriter(f, opts)
	if err != nil {
		return err
	}
	if err := w.AddTar(rc); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// openLayer returns a layer's tar stream. The compression is sniffed from the
// bytes, not trusted from the media type (archives mislabel often).
func openLayer(ctx context.Context, l v1.Layer) (io.ReadCloser, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("open layer: %w", err)
	}
	return decompress(ctx, rc)
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompress sniffs rc and returns the decompressed stream, produced by a
// goroutine ahead of the reader so that decompression runs in parallel with
// the ext4 writer.
func decompress(ctx context.Context, rc io.ReadCloser) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(rc, 1<<20)
	head, _ := br.Peek(4)
	var src io.Reader = br
	var closeDec func()
	what := ""
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("corrupt gzip layer: %w", err)
		}
		src, what = zr, "gzip"
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("corrupt zstd layer: %w", err)
		}
		src, closeDec, what = zr, zr.Close, "zstd"
	}
	return newReadahead(ctx, src, what, func() { rc.Close() }, closeDec), nil
}

// readahead reads src in a goroutine into a few 1 MiB chunks.
type readahead struct {
	ch     chan chunk
	free   chan []byte
	stop   chan struct{}
	cur    []byte
	curBuf []byte
	err    error
	done   chan struct{}
	// closeSrc unblocks a pending read (closes the file or connection);
	// closeDec runs after the reading goroutine has stopped.
	closeSrc, closeDec func()
	what               string // "gzip", "zstd" or "" (for error messages)
}

type chunk struct {
	b   []byte
	err error
}

const (
	chunkSize = 1 << 20
	chunks    = 4
)

func newReadahead(ctx context.Context, src io.Reader, what string, closeSrc, closeDec func()) *readahead {
	r := &readahead{what: what, ch: make(chan chunk, chunks), free: make(chan []byte, chunks+1), stop: make(chan struct{}), done: make(chan struct{}), closeSrc: closeSrc, closeDec: closeDec}
	for i := 0; i < chunks+1; i++ {
		r.free <- make([]byte, chunkSize)
	}
	go func() {
		defer close(r.done)
		defer close(r.ch)
		for {
			var buf []byte
			select {
			case buf = <-r.free:
			case <-r.stop:
				return
			}
			if err := ctx.Err(); err != nil {
				r.ch <- chunk{err: err}
				return
			}
			n, err := fill(src, buf)
			if err != nil && err != io.EOF && r.what != "" {
				err = fmt.Errorf("%s layer: %w", r.what, err)
			}
			if n > 0 {
				select {
				case r.ch <- chunk{b: buf[:n]}:
				case <-r.stop:
					return
				}
			}
			if err != nil {
				select {
				case r.ch <- chunk{err: err}:
				case <-r.stop:
				}
				return
			}
		}
	}()
	return r
}

// fill reads until buf is full or src fails; unlike io.ReadFull it passes a
// decompressor's own io.ErrUnexpectedEOF (a truncated stream) through.
func fill(src io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (r *readahead) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.curBuf != nil {
			r.free <- r.curBuf[:cap(r.curBuf)]
			r.curBuf = nil
		}
		c, ok := <-r.ch
		if !ok {
			r.err = io.EOF
			continue
		}
		if c.err != nil {
			r.err = c.err
			continue
		}
		r.cur, r.curBuf = c.b, c.b
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

func (r *readahead) Close() error {
	close(r.stop)
	r.closeSrc()
	<-r.done
	if r.closeDec != nil {
		r.closeDec()
	}
	return nil
}
