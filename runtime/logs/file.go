package logs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// FileName is the current log file inside a container's log directory;
// rotated files get ".1" (newest) … ".N" appended.
const FileName = "container-json.log"

// Defaults bound a container's logs at MaxSize*MaxFiles bytes.
const (
	DefaultMaxSize  = 20 << 20
	DefaultMaxFiles = 3
	// maxLine is when an unterminated line is written out anyway (as
	// Docker does with 16 KiB partial messages).
	maxLine = 16 << 10
)

// Options configure rotation.
type Options struct {
	MaxSize  int64 // rotate when the current file would exceed this; <= 0: DefaultMaxSize
	MaxFiles int   // files kept including the current one; <= 0: DefaultMaxFiles
}

// ParseOptions reads Docker's json-file log-opts ("max-size": "10m",
// "max-file": "3"); unknown keys are an error naming them.
func ParseOptions(cfg map[string]string) (Options, error) {
	var o Options
	for k, v := range cfg {
		switch k {
		case "max-size":
			n, err := parseSize(v)
			if err != nil || n <= 0 {
				return o, fmt.Errorf("log option max-size=%q: want a size like 10m", v)
			}
			o.MaxSize = n
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return o, fmt.Errorf("log option max-file=%q: want a whole number >= 1", v)
			}
			o.MaxFiles = n
		default:
			return o, fmt.Errorf("log option %q is not supported (json-file supports max-size, max-file)", k)
		}
	}
	return o, nil
}

func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'k', 'K':
		mult = 1 << 10
	case 'm', 'M':
		mult = 1 << 20
	case 'g', 'G':
		mult = 1 << 30
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

// Log is one container's log: writers append, readers read and follow.
// The writing and the following happen in the same process (the engine),
// so followers are woken in memory rather than by watching the file.
type Log struct {
	dir  string
	opts Options

	mu      sync.Mutex
	f       *os.File
	size    int64
	subs    map[chan Entry]struct{}
	ended   chan struct{} // closed by End: followers return
	nowFunc func() time.Time
}

// Open opens (creating) the log in dir.
func Open(dir string, opts Options) (*Log, error) {
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.MaxFiles <= 0 {
		opts.MaxFiles = DefaultMaxFiles
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &Log{dir: dir, opts: opts, subs: map[chan Entry]struct{}{}, ended: make(chan struct{}), nowFunc: time.Now}, nil
}

// Path is the current log file (Docker's LogPath).
func (l *Log) Path() string { return filepath.Join(l.dir, FileName) }

func (l *Log) rotated(i int) string { return fmt.Sprintf("%s.%d", l.Path(), i) }

type jsonLine struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// append writes one entry; l.mu held.
func (l *Log) append(e Entry) error {
	data, err := json.Marshal(jsonLine{Log: string(e.Line), Stream: e.Stream, Time: e.Time.UTC()})
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if l.f == nil {
		f, err := os.OpenFile(l.Path(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		l.f, l.size = f, st.Size()
	}
	if l.size > 0 && l.size+int64(len(data)) > l.opts.MaxSize {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(data)
	l.size += int64(n)
	if err != nil {
		return err
	}
	for ch := range l.subs {
		select {
		case ch <- e:
		default: // a follower that cannot keep up loses live lines rather than stall the container
		}
	}
	return nil
}

func (l *Log) rotate() error {
	l.f.Close()
	l.f = nil
	if l.opts.MaxFiles == 1 {
		if err := os.Truncate(l.Path(), 0); err != nil {
			return err
		}
	} else {
		os.Remove(l.rotated(l.opts.MaxFiles - 1))
		for i := l.opts.MaxFiles - 2; i >= 1; i-- {
			os.Rename(l.rotated(i), l.rotated(i+1))
		}
		if err := os.Rename(l.Path(), l.rotated(1)); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(l.Path(), os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	l.f, l.size = f, 0
	return nil
}

// Writer returns a writer for stream ("stdout" or "stderr") that records
// each line as one entry. Close flushes an unterminated last line.
func (l *Log) Writer(stream string) io.WriteCloser { return &lineWriter{l: l, stream: stream} }

type lineWriter struct {
	l      *Log
	stream string
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	w.buf = append(w.buf, p...)
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	now := w.l.nowFunc()
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 && len(w.buf) < maxLine {
			break
		}
		end := i + 1
		if i < 0 || end > maxLine {
			end = maxLine
		}
		line := append([]byte(nil), w.buf[:end]...)
		w.buf = w.buf[end:]
		if err := w.l.append(Entry{Stream: w.stream, Time: now, Line: line}); err != nil {
			return n, err
		}
	}
	if len(w.buf) == 0 {
		w.buf = nil
	}
	return n, nil
}

func (w *lineWriter) Close() error {
	if len(w.buf) == 0 {
		return nil
	}
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	line := w.buf
	w.buf = nil
	return w.l.append(Entry{Stream: w.stream, Time: w.l.nowFunc(), Line: line})
}

// Begin marks the start of a run: followers that start now stay until the
// next End. It is a no-op while a run is in progress.
func (l *Log) Begin() {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.ended:
		l.ended = make(chan struct{})
	default:
	}
}

// End tells current followers that no more output will come (the process
// exited); they drain what was written and return.
func (l *Log) End() {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.ended:
	default:
		close(l.ended)
	}
}

// Close releases the file; followers end.
func (l *Log) Close() error {
	l.End()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		err := l.f.Close()
		l.f = nil
		return err
	}
	return nil
}

// Remove deletes every file of the log.
func (l *Log) Remove() error {
	l.Close()
	os.Remove(l.Path())
	for i := 1; i <= l.opts.MaxFiles+1; i++ {
		os.Remove(l.rotated(i))
	}
	return nil
}

// Read calls fn for each selected entry, oldest first. With Follow it then
// delivers new entries until ctx ends or End is called.
func (l *Log) Read(ctx context.Context, opts ReadOptions, fn func(Entry) error) error {
	// Under the lock: open every file (open handles survive rotation), note
	// how far the current one goes, and subscribe, so no line is lost or
	// seen twice between the files and the live feed.
	l.mu.Lock()
	var files []*os.File
	for i := l.opts.MaxFiles - 1; i >= 1; i-- {
		if f, err := os.Open(l.rotated(i)); err == nil {
			files = append(files, f)
		}
	}
	var limit int64 = -1
	if f, err := os.Open(l.Path()); err == nil {
		files = append(files, f)
		if st, err := f.Stat(); err == nil {
			limit = st.Size()
		}
	}
	var live chan Entry
	ended := l.ended
	if opts.Follow {
		live = make(chan Entry, 4096)
		l.subs[live] = struct{}{}
		defer func() { l.mu.Lock(); delete(l.subs, live); l.mu.Unlock() }()
	}
	l.mu.Unlock()

	sel := func(e Entry) bool {
		if !opts.Since.IsZero() && e.Time.Before(opts.Since) {
			return false
		}
		if !opts.Until.IsZero() && e.Time.After(opts.Until) {
			return false
		}
		return true
	}
	var ring []Entry
	emit := func(e Entry) error {
		if opts.Tail >= 0 {
			if opts.Tail == 0 {
				return nil
			}
			if len(ring) == opts.Tail {
				ring = ring[1:]
			}
			ring = append(ring, e)
			return nil
		}
		return fn(e)
	}
	var err error
	for i, f := range files {
		if err == nil {
			var r io.Reader = f
			if i == len(files)-1 && limit >= 0 {
				r = io.LimitReader(f, limit)
			}
			err = scan(r, func(e Entry) error {
				if !sel(e) {
					return nil
				}
				return emit(e)
			})
		}
		f.Close()
	}
	if err != nil {
		return err
	}
	for _, e := range ring {
		if err := fn(e); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	for {
		select {
		case e := <-live:
			if !opts.Until.IsZero() && e.Time.After(opts.Until) {
				return nil
			}
			if sel(e) {
				if err := fn(e); err != nil {
					return err
				}
			}
		case <-ended:
			for {
				select {
				case e := <-live:
					if sel(e) {
						if err := fn(e); err != nil {
							return err
						}
					}
				default:
					return nil
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// scan decodes json-file lines; a torn last line (crash mid-write) is skipped.
func scan(r io.Reader, fn func(Entry) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var jl jsonLine
			if json.Unmarshal(line, &jl) == nil {
				if ferr := fn(Entry{Stream: jl.Stream, Time: jl.Time, Line: []byte(jl.Log)}); ferr != nil {
					return ferr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
