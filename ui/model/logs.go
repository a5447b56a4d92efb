package model

import (
	"bytes"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// LogLine is one line of a container's output.
type LogLine struct {
	Time   time.Time
	Stream string // "stdout" or "stderr"
	Text   string
}

// LogBuffer holds the tail of a container's log for the Logs window, with
// bounded memory: once it holds more than MaxBytes of text or MaxLines
// lines, the oldest lines are dropped (and counted in Trimmed). It is safe
// for one writer goroutine and readers on the main thread.
type LogBuffer struct {
	MaxLines int
	MaxBytes int

	mu      sync.Mutex
	lines   []LogLine // oldest first
	bytes   int
	trimmed int
	partial map[string][]byte // per stream: text after the last newline
	gen     uint64            // bumped on every change, for cheap redraw checks
	notify  func()            // called after each change, outside the lock
}

// OnChange sets a function called (from the writing goroutine, without the
// buffer's lock held) after each change; the Logs window uses it to schedule
// a coalesced redraw instead of polling.
func (b *LogBuffer) OnChange(f func()) {
	b.mu.Lock()
	b.notify = f
	b.mu.Unlock()
}

func (b *LogBuffer) changed() {
	b.mu.Lock()
	f := b.notify
	b.mu.Unlock()
	if f != nil {
		f()
	}
}

// NewLogBuffer returns a buffer bounded by lines and bytes (defaults 10000
// lines and 4 MB when zero).
func NewLogBuffer(maxLines, maxBytes int) *LogBuffer {
	if maxLines <= 0 {
		maxLines = 10000
	}
	if maxBytes <= 0 {
		maxBytes = 4 << 20
	}
	return &LogBuffer{MaxLines: maxLines, MaxBytes: maxBytes, partial: map[string][]byte{}}
}

// Append adds one already-split line.
func (b *LogBuffer) Append(l LogLine) {
	b.mu.Lock()
	b.appendLocked(l)
	b.mu.Unlock()
	b.changed()
}

func (b *LogBuffer) appendLocked(l LogLine) {
	if len(l.Text) > b.MaxBytes/4 { // one huge line must not evict everything
		l.Text = truncateUTF8(l.Text, b.MaxBytes/4) + " … (line truncated)"
	}
	b.lines = append(b.lines, l)
	b.bytes += len(l.Text)
	// Trim from the front in chunks: copying the slice down once per chunk
	// keeps appends amortised O(1).
	if len(b.lines) > b.MaxLines || b.bytes > b.MaxBytes {
		drop := 0
		for (len(b.lines)-drop > b.MaxLines || b.bytes > b.MaxBytes) && drop < len(b.lines)-1 {
			b.bytes -= len(b.lines[drop].Text)
			drop++
		}
		extra := b.MaxLines / 10 // drop 10% more so the next trim is not immediate
		for i := 0; i < extra && drop < len(b.lines)-1; i++ {
			b.bytes -= len(b.lines[drop].Text)
			drop++
		}
		b.trimmed += drop
		n := copy(b.lines, b.lines[drop:])
		clear(b.lines[n:])
		b.lines = b.lines[:n]
	}
	b.gen++
}

// Write feeds raw output of one stream (for stdcopy.StdCopy's writers);
// lines that carry a docker timestamp prefix (logs with timestamps=true)
// keep it as their time, others are stamped now.
func (b *LogBuffer) Write(stream string, p []byte, now time.Time) {
	b.mu.Lock()
	before := b.gen
	defer func() {
		after := b.gen
		b.mu.Unlock()
		if after != before {
			b.changed()
		}
	}()
	data := append(b.partial[stream], p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSuffix(string(data[:i]), "\r")
		data = data[i+1:]
		t, text := ParseTimestamped(line)
		if t.IsZero() {
			t = now
		}
		b.appendLocked(LogLine{Time: t, Stream: stream, Text: text})
	}
	if len(data) > b.MaxBytes/4 { // an endless line without newline: flush it
		t, text := ParseTimestamped(string(data))
		if t.IsZero() {
			t = now
		}
		b.appendLocked(LogLine{Time: t, Stream: stream, Text: text})
		data = nil
	}
	b.partial[stream] = append([]byte(nil), data...)
}

// StreamWriter adapts Write to io.Writer for one stream.
func (b *LogBuffer) StreamWriter(stream string) *streamWriter {
	return &streamWriter{b: b, stream: stream}
}

type streamWriter struct {
	b      *LogBuffer
	stream string
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.b.Write(w.stream, p, time.Now())
	return len(p), nil
}

// ParseTimestamped splits docker's "2006-01-02T15:04:05.999999999Z07:00 text"
// log line format; a line without a valid timestamp comes back whole.
func ParseTimestamped(line string) (time.Time, string) {
	sp := strings.IndexByte(line, ' ')
	if sp < 20 || sp > 40 {
		return time.Time{}, line
	}
	t, err := time.Parse(time.RFC3339Nano, line[:sp])
	if err != nil {
		return time.Time{}, line
	}
	return t, line[sp+1:]
}

// Len is the number of lines held.
func (b *LogBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.lines)
}

// Trimmed is how many old lines were dropped to stay within bounds.
func (b *LogBuffer) Trimmed() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.trimmed
}

// Generation changes whenever the content changes.
func (b *LogBuffer) Generation() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gen
}

// Bytes is the text held (without timestamps).
func (b *LogBuffer) Bytes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes
}

// Lines returns a copy of the lines held.
func (b *LogBuffer) Lines() []LogLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]LogLine(nil), b.lines...)
}

// Clear empties the buffer.
func (b *LogBuffer) Clear() {
	b.mu.Lock()
	b.lines, b.bytes, b.partial = nil, 0, map[string][]byte{}
	b.gen++
	b.mu.Unlock()
	b.changed()
}

// LogTimeFormat is how the Logs window shows timestamps (local time).
const LogTimeFormat = "2006-01-02 15:04:05.000"

// Text renders the buffer for the text view, optionally with timestamps
// (local time) and with a note about trimmed lines first.
func (b *LogBuffer) Text(timestamps bool) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	if b.trimmed > 0 {
		sb.WriteString("… earlier lines trimmed …\n")
	}
	for _, l := range b.lines {
		writeLine(&sb, l, timestamps)
	}
	return sb.String()
}

func writeLine(sb *strings.Builder, l LogLine, timestamps bool) {
	if timestamps {
		sb.WriteString(l.Time.Local().Format(LogTimeFormat))
		sb.WriteByte(' ')
	}
	sb.WriteString(l.Text)
	sb.WriteByte('\n')
}

// Match is a search hit: line index into Lines() and byte range in Text.
type Match struct {
	Line       int
	Start, End int
}

// Search finds query (case-insensitive) in the line texts, at most limit hits
// (0 = all). An empty query matches nothing.
func (b *LogBuffer) Search(query string, limit int) []Match {
	if query == "" {
		return nil
	}
	q := strings.ToLower(query)
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Match
	for i, l := range b.lines {
		text := strings.ToLower(l.Text)
		off := 0
		for {
			j := strings.Index(text[off:], q)
			if j < 0 {
				break
			}
			out = append(out, Match{Line: i, Start: off + j, End: off + j + len(q)})
			if limit > 0 && len(out) >= limit {
				return out
			}
			off += j + len(q)
		}
	}
	return out
}

// Filter returns the rendered lines that contain query (case-insensitive),
// for the Logs window's "show matching lines only" mode.
func (b *LogBuffer) Filter(query string, timestamps bool) string {
	q := strings.ToLower(query)
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	for _, l := range b.lines {
		if q == "" || strings.Contains(strings.ToLower(l.Text), q) {
			writeLine(&sb, l, timestamps)
		}
	}
	return sb.String()
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
