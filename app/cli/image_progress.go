package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"

	"github.com/berth-dev/berth/runtime/image"
)

// IsTerminal reports whether w is a terminal (progress bars) or not (lines).
func IsTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// ProgressView renders image progress events: on a terminal one redrawn
// line per layer with a bar, otherwise one plain line per state change
// (byte counts are left out, so logs stay short).
type ProgressView struct {
	mu    sync.Mutex
	out   io.Writer
	tty   bool
	order []string
	rows  map[string]image.Event
	drawn int
	width int
}

// NewProgressView renders to out; tty selects bars.
func NewProgressView(out io.Writer, tty bool) *ProgressView {
	v := &ProgressView{out: out, tty: tty, rows: map[string]image.Event{}, width: 80}
	if f, ok := out.(*os.File); ok && tty {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 40 {
			v.width = w
		}
	}
	return v
}

// Handle takes one event (safe for concurrent use).
func (v *ProgressView) Handle(e image.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	old, seen := v.rows[e.ID]
	if !seen {
		v.order = append(v.order, e.ID)
	}
	v.rows[e.ID] = e
	if v.tty {
		v.redraw()
		return
	}
	if e.ID == "" || seen && old.Status == e.Status {
		return
	}
	fmt.Fprintf(v.out, "%s: %s\n", e.ID, e.Status)
}

// Finish draws the final state.
func (v *ProgressView) Finish() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.tty && len(v.order) > 0 {
		v.redraw()
	}
}

func (v *ProgressView) redraw() {
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.drawn)
	}
	for _, id := range v.order {
		b.WriteString("\r\x1b[K")
		b.WriteString(v.line(v.rows[id]))
		b.WriteByte('\n')
	}
	v.drawn = len(v.order)
	io.WriteString(v.out, b.String())
}

func (v *ProgressView) line(e image.Event) string {
	label := e.ID
	if label == "" {
		label = "archive"
	}
	s := label + ": " + e.Status
	if (e.Status == image.StatusDownloading || e.Status == image.StatusLoading) && e.Total > 0 {
		barw := v.width - len(s) - 30
		if barw > 50 {
			barw = 50
		}
		if barw >= 10 {
			done := int(float64(barw) * float64(e.Current) / float64(e.Total))
			if done > barw {
				done = barw
			}
			bar := strings.Repeat("=", done)
			if done < barw {
				bar += ">" + strings.Repeat(" ", barw-done-1)
			}
			s += " [" + bar + "]"
		}
		s += fmt.Sprintf(" %s/%s", imageSize(e.Current), imageSize(e.Total))
	} else if e.Status == image.StatusLoading && e.Current > 0 {
		s += " " + imageSize(e.Current)
	}
	if len(s) > v.width-1 {
		s = s[:v.width-1]
	}
	return s
}
