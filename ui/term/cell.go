// Package term is Berth's terminal model: a VT/xterm emulator that turns the
// byte stream of a shell (or any full-screen program) into a grid of cells the
// console view draws, plus the encoders for what the user types back.
//
// It is portable Go with no UI dependency. The escape-sequence tokenizer is
// github.com/charmbracelet/x/ansi's parser; everything above it (screen
// semantics, scrollback, reflow, input encoding) is here, because
// charmbracelet/x/vt v0.1.0 measured ~1.4 MB/s on coloured output and does
// not keep scrollback across a resize (see docs/console.md).
//
// A Terminal is not safe for concurrent use; the console session serialises
// access to it.
package term

import (
	"strings"
	"sync"
)

// Color is a cell colour: the zero value is the terminal default, otherwise
// the top byte says how to read the low 24 bits (a palette index or RGB).
type Color uint32

const (
	colorIndexed Color = 1 << 24
	colorRGB     Color = 2 << 24
)

// DefaultColor is the terminal's default foreground or background.
const DefaultColor Color = 0

// Indexed returns palette colour i (0-255).
func Indexed(i uint8) Color { return colorIndexed | Color(i) }

// RGB returns a truecolour value.
func RGB(r, g, b uint8) Color { return colorRGB | Color(r)<<16 | Color(g)<<8 | Color(b) }

// IsDefault reports whether c is the default colour.
func (c Color) IsDefault() bool { return c == 0 }

// Index returns the palette index and true for an indexed colour.
func (c Color) Index() (uint8, bool) { return uint8(c), c&0xff000000 == colorIndexed }

// RGB returns the components and true for a truecolour value.
func (c Color) RGB() (r, g, b uint8, ok bool) {
	return uint8(c >> 16), uint8(c >> 8), uint8(c), c&0xff000000 == colorRGB
}

// Resolve turns any colour into RGB using the xterm palette; def is used for
// the default colour.
func (c Color) Resolve(def [3]uint8) (r, g, b uint8) {
	switch c & 0xff000000 {
	case colorRGB:
		return uint8(c >> 16), uint8(c >> 8), uint8(c)
	case colorIndexed:
		p := palette[uint8(c)]
		return p[0], p[1], p[2]
	}
	return def[0], def[1], def[2]
}

var palette = func() (p [256][3]uint8) {
	base := [16][3]uint8{
		{0, 0, 0}, {205, 0, 0}, {0, 205, 0}, {205, 205, 0}, {0, 0, 238}, {205, 0, 205}, {0, 205, 205}, {229, 229, 229},
		{127, 127, 127}, {255, 0, 0}, {0, 255, 0}, {255, 255, 0}, {92, 92, 255}, {255, 0, 255}, {0, 255, 255}, {255, 255, 255},
	}
	copy(p[:], base[:])
	lv := [6]uint8{0, 95, 135, 175, 215, 255}
	for i := 0; i < 216; i++ {
		p[16+i] = [3]uint8{lv[i/36], lv[i/6%6], lv[i%6]}
	}
	for i := 0; i < 24; i++ {
		v := uint8(8 + 10*i)
		p[232+i] = [3]uint8{v, v, v}
	}
	return
}()

// Attr is a set of SGR rendition flags plus two layout flags (Wide, WideTail).
type Attr uint16

const (
	Bold Attr = 1 << iota
	Faint
	Italic
	Underline
	DoubleUnderline
	CurlyUnderline
	Blink
	Reverse
	Invisible
	Strike
	Overline
	// Wide marks the first cell of a double-width character; WideTail the
	// second (which holds no text of its own).
	Wide
	WideTail
	// wrapPad marks the blank left at the end of a row when a wide character
	// did not fit; reflow drops it.
	wrapPad
)

// styleMask are the attributes that affect drawing (not layout).
const styleMask = Bold | Faint | Italic | Underline | DoubleUnderline | CurlyUnderline | Blink | Reverse | Invisible | Strike | Overline

// Cell is one character position. R is the character; 0 means nothing was
// ever written there (drawn as a space). Grapheme clusters longer than one
// rune (base + combining marks, emoji sequences) are interned and R holds a
// negative handle.
type Cell struct {
	R      rune
	Fg, Bg Color
	A      Attr
}

// Style returns the drawing-relevant part of the cell (attributes and colours).
func (c Cell) Style() Style { return Style{Fg: c.Fg, Bg: c.Bg, A: c.A & styleMask} }

// Style is what a run of equal cells shares when drawn.
type Style struct {
	Fg, Bg Color
	A      Attr
}

// Text returns the cell's characters ("" for a wide character's tail, " " for
// an unwritten cell).
func (c Cell) Text() string {
	switch {
	case c.A&WideTail != 0:
		return ""
	case c.R == 0:
		return " "
	case c.R < 0:
		return clusterText(c.R)
	}
	return string(c.R)
}

// blank reports whether the cell was never written (or was erased) and has
// no colour or attribute that would be visible. A written space is not
// blank: like tmux, the model keeps it when storing and rewrapping lines.
func (c Cell) blank() bool {
	return c.R == 0 && c.Bg == 0 && c.A&(styleMask|Wide|WideTail) == 0
}

// Clusters (multi-rune graphemes) are interned in a bounded, process-wide
// table so a Cell stays 16 bytes. When the table is full, further new
// clusters degrade to their first rune rather than grow memory without bound.
var clusters struct {
	sync.RWMutex
	byText map[string]rune
	texts  []string
}

const maxClusters = 1 << 16

func internCluster(s string) rune {
	clusters.RLock()
	h, ok := clusters.byText[s]
	clusters.RUnlock()
	if ok {
		return h
	}
	clusters.Lock()
	defer clusters.Unlock()
	if h, ok := clusters.byText[s]; ok {
		return h
	}
	if len(clusters.texts) >= maxClusters {
		for _, r := range s {
			return r
		}
	}
	if clusters.byText == nil {
		clusters.byText = map[string]rune{}
	}
	clusters.texts = append(clusters.texts, s)
	h = -rune(len(clusters.texts))
	clusters.byText[s] = h
	return h
}

func clusterText(h rune) string {
	clusters.RLock()
	defer clusters.RUnlock()
	i := int(-h) - 1
	if i < 0 || i >= len(clusters.texts) {
		return "\uFFFD"
	}
	return clusters.texts[i]
}

// Line is one screen row. Wrapped means the text continues on the next row
// (the row was filled by autowrap, not ended by a newline); reflow joins such
// rows.
type Line struct {
	Cells   []Cell
	Wrapped bool
	wide    bool // may contain wide characters (set when one is printed)
}

// String returns the row's text with trailing blanks removed.
func (l Line) String() string { return cellsText(l.Cells) }

func cellsText(cells []Cell) string {
	end := len(cells)
	for end > 0 && (cells[end-1].R == 0 || cells[end-1].R == ' ') && cells[end-1].A&WideTail == 0 {
		end--
	}
	var b strings.Builder
	for _, c := range cells[:end] {
		if c.A&WideTail != 0 {
			continue
		}
		b.WriteString(c.Text())
	}
	return b.String()
}
