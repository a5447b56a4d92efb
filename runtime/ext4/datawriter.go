package ext4

import (
	"fmt"
	"io"
	"os"
)

// dataWriter appends block-aligned data to the image at a moving cursor.
// Callers fill a large buffer in place (reading straight into it from the tar
// stream); full buffers are written by a background goroutine with pwrite, so
// reading/decompressing and writing overlap on two cores.
type dataWriter struct {
	f      *os.File
	limit  uint64 // blocks in the filesystem
	cursor uint64 // next free block (buffered data counts as written)

	buf     []byte // current buffer; len = bytes filled
	bufBase uint64 // block where buf[0] goes

	free chan []byte
	jobs chan writeJob
	done chan error
	err  error
}

type writeJob struct {
	buf []byte
	off int64
}

const (
	writeBufSize = 4 << 20
	writeBufs    = 3
)

func newDataWriter(f *os.File, start, limit uint64) *dataWriter {
	d := &dataWriter{
		f: f, limit: limit, cursor: start, bufBase: start,
		free: make(chan []byte, writeBufs),
		jobs: make(chan writeJob, writeBufs),
		done: make(chan error, 1),
	}
	for i := 0; i < writeBufs-1; i++ {
		d.free <- make([]byte, 0, writeBufSize)
	}
	d.buf = make([]byte, 0, writeBufSize)
	go d.loop()
	return d
}

func (d *dataWriter) loop() {
	var err error
	for j := range d.jobs {
		if err == nil {
			_, err = d.f.WriteAt(j.buf, j.off)
		}
		d.free <- j.buf[:0]
	}
	d.done <- err
}

// flush hands the filled part of the buffer to the writer goroutine. The
// buffer always ends on a block boundary when flushed between files; inside
// a large file it is flushed full (writeBufSize is a block multiple).
func (d *dataWriter) flush() {
	if len(d.buf) == 0 {
		return
	}
	d.jobs <- writeJob{buf: d.buf, off: int64(d.bufBase) << blockShift}
	d.bufBase += uint64(len(d.buf)+blockSize-1) >> blockShift
	d.buf = <-d.free
}

// copyFile streams exactly size bytes from r to the next free blocks and
// returns the first block and the number of blocks used.
func (d *dataWriter) copyFile(r io.Reader, size int64) (start uint64, nblocks uint64, err error) {
	if size == 0 {
		return 0, 0, nil
	}
	nblocks = uint64((size + blockSize - 1) >> blockShift)
	start = d.cursor
	if start+nblocks > d.limit {
		return 0, 0, fmt.Errorf("image too small: file data needs more than %d MiB (raise --size)", d.limit>>8)
	}
	left := size
	for left > 0 {
		if len(d.buf) == cap(d.buf) {
			d.flush()
		}
		room := d.buf[len(d.buf):cap(d.buf)]
		if int64(len(room)) > left {
			room = room[:left]
		}
		n, rerr := io.ReadFull(r, room)
		d.buf = d.buf[:len(d.buf)+n]
		left -= int64(n)
		if rerr != nil {
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				rerr = io.ErrUnexpectedEOF
			}
			// Keep the buffer block aligned even on error.
			d.pad()
			d.cursor = d.bufBase + uint64(len(d.buf))>>blockShift
			return 0, 0, rerr
		}
	}
	d.pad()
	d.cursor = start + nblocks
	return start, nblocks, nil
}

// writeBlocks appends whole blocks of metadata (len(p) a block multiple).
func (d *dataWriter) writeBlocks(p []byte) (start uint64, err error) {
	n := uint64(len(p)) >> blockShift
	start = d.cursor
	if start+n > d.limit {
		return 0, fmt.Errorf("image too small: metadata does not fit in %d MiB (raise --size)", d.limit>>8)
	}
	for len(p) > 0 {
		if len(d.buf) == cap(d.buf) {
			d.flush()
		}
		c := copy(d.buf[len(d.buf):cap(d.buf)], p)
		d.buf = d.buf[:len(d.buf)+c]
		p = p[c:]
	}
	d.cursor = start + n
	return start, nil
}

// pad zero-fills the buffer to the next block boundary (only the tail of the
// last block of a file; whole empty blocks are never written).
func (d *dataWriter) pad() {
	r := len(d.buf) & (blockSize - 1)
	if r == 0 {
		return
	}
	n := len(d.buf) + blockSize - r
	if n > cap(d.buf) {
		// cannot happen: cap is a block multiple and len grows in whole blocks
		// except for a file's tail.
		panic("ext4: unaligned write buffer")
	}
	tail := d.buf[len(d.buf):n]
	clear(tail)
	d.buf = d.buf[:n]
}

// close flushes and waits for all writes.
func (d *dataWriter) close() error {
	if d.jobs == nil {
		return d.err
	}
	d.flush()
	close(d.jobs)
	d.err = <-d.done
	d.jobs = nil
	return d.err
}
