package term

import "strings"

// Run is a stretch of one row that a view draws in one call: cells with the
// same style. Text runs are plain single-width ASCII and can be drawn as one
// string; other cells (wide, combining, non-ASCII) come as one-cell runs so
// the view places each at its exact column regardless of the font's
// advance for that glyph.
type Run struct {
	Col, Cols int // first column and width in columns
	Style     Style
	Text      string
	Blank     bool // only spaces: just the background needs painting
}

// Runs splits cells into drawing runs. sel (may be nil) says whether a
// column is selected; selected cells are drawn reversed.
func Runs(cells []Cell, sel func(col int) bool, buf []Run) []Run {
	runs := buf[:0]
	var b strings.Builder
	for x := 0; x < len(cells); {
		c := cells[x]
		if c.A&WideTail != 0 {
			x++
			continue
		}
		st := c.Style()
		if sel != nil && sel(x) {
			st.A ^= Reverse
		}
		if !plainASCII(c) {
			w := 1
			if c.A&Wide != 0 && x+1 < len(cells) {
				w = 2
			}
			runs = append(runs, Run{Col: x, Cols: w, Style: st, Text: c.Text(), Blank: c.R == 0})
			x += w
			continue
		}
		b.Reset()
		start, blank := x, true
		for x < len(cells) {
			c := cells[x]
			if !plainASCII(c) {
				break
			}
			s := c.Style()
			if sel != nil && sel(x) {
				s.A ^= Reverse
			}
			if s != st {
				break
			}
			if c.R == 0 {
				b.WriteByte(' ')
			} else {
				b.WriteByte(byte(c.R))
				if c.R != ' ' {
					blank = false
				}
			}
			x++
		}
		runs = append(runs, Run{Col: start, Cols: x - start, Style: st, Text: b.String(), Blank: blank})
	}
	return runs
}

// plainASCII: an unwritten cell or a printable single-width ASCII one.
func plainASCII(c Cell) bool {
	return c.A&(Wide|WideTail) == 0 && (c.R == 0 || c.R >= 0x20 && c.R < 0x7f)
}

// Colors resolves a style to foreground and background RGB for drawing,
// applying reverse video (cell and screen-wide), faint and invisible.
func (s Style) Colors(defFg, defBg [3]uint8, screenReverse bool) (fg, bg [3]uint8) {
	r, g, b := s.Fg.Resolve(defFg)
	fg = [3]uint8{r, g, b}
	if s.A&Bold != 0 {
		// Bold with a basic colour shows its bright variant, as xterm does.
		if i, ok := s.Fg.Index(); ok && i < 8 {
			r, g, b = Indexed(i + 8).Resolve(defFg)
			fg = [3]uint8{r, g, b}
		}
	}
	r, g, b = s.Bg.Resolve(defBg)
	bg = [3]uint8{r, g, b}
	if (s.A&Reverse != 0) != screenReverse {
		fg, bg = bg, fg
	}
	if s.A&Faint != 0 {
		for i := range fg {
			fg[i] = uint8((int(fg[i]) + int(bg[i])) / 2)
		}
	}
	if s.A&Invisible != 0 {
		fg = bg
	}
	return fg, bg
}
