package image

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

type compression int

const (
	compNone compression = iota
	compGzip
	compZstd
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// peekCompression looks at the first bytes of r without consuming them.
func peekCompression(r io.Reader) (compression, *bufio.Reader, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 1<<20)
	}
	head, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return compNone, br, err
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return compGzip, br, nil
	case bytes.HasPrefix(head, zstdMagic):
		return compZstd, br, nil
	}
	return compNone, br, nil
}

// ErrBomb is returned (wrapped) when compressed input expands beyond the cap.
var ErrBomb = errors.New("decompression bomb")

// defaultExpansion: decompressed output may exceed the compressed input by
// this factor, beyond a free allowance. Real layers rarely pass 20x; a file
// of zeros reaches 1000x.
const (
	defaultExpansion = 100
	freeAllowance    = 256 << 20
)

// decompressor returns a reader of r's decompressed content (r as-is when
// it is not compressed), capped so the output never exceeds
// freeAllowance + ratio × compressed bytes read. ratio <= 0 means default.
func decompressor(r io.Reader, ratio int64) (io.ReadCloser, compression, error) {
	if ratio <= 0 {
		ratio = defaultExpansion
	}
	in := &countingReader{r: r}
	c, br, err := peekCompression(in)
	if err != nil {
		return nil, compNone, err
	}
	switch c {
	case compGzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("corrupt gzip data: %w", err)
		}
		return &limitedExpansion{r: zr, in: in, ratio: ratio, close: zr.Close}, c, nil
	case compZstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, c, fmt.Errorf("corrupt zstd data: %w", err)
		}
		return &limitedExpansion{r: zr, in: in, ratio: ratio, close: func() error { zr.Close(); return nil }}, c, nil
	}
	return io.NopCloser(br), compNone, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type limitedExpansion struct {
	r     io.Reader
	in    *countingReader
	out   int64
	ratio int64
	close func() error
}

func (l *limitedExpansion) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.out += int64(n)
	if l.out > freeAllowance+l.ratio*l.in.n {
		return n, fmt.Errorf("%w: compressed data expands more than %d times (%d MiB from %d KiB); refusing it", ErrBomb, l.ratio, l.out>>20, l.in.n>>10)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("corrupt compressed data: %w", err)
	}
	return n, err
}

func (l *limitedExpansion) Close() error { return l.close() }
