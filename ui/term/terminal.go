package term

import (
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/ansi/parser"
)

// MouseMode is which mouse events the running program asked for.
type MouseMode uint8

const (
	MouseOff    MouseMode = iota
	MouseX10              // ?9: presses only
	MouseNormal           // ?1000: presses and releases
	MouseDrag             // ?1002: plus motion while a button is down
	MouseAny              // ?1003: all motion
)

// MouseEncoding is how mouse reports are encoded.
type MouseEncoding uint8

const (
	MouseEncX10   MouseEncoding = iota // CSI M Cb Cx Cy, coordinates as bytes
	MouseEncUTF8                       // ?1005
	MouseEncSGR                        // ?1006: CSI < b;x;y M/m
	MouseEncURXVT                      // ?1015
)

// Modes are the terminal modes a view or input encoder needs to know.
type Modes struct {
	AppCursor      bool // DECCKM: arrows send ESC O x
	AppKeypad      bool // DECKPAM
	AutoWrap       bool // DECAWM
	Insert         bool // IRM
	Origin         bool // DECOM
	NewlineMode    bool // LNM: Enter sends CR LF
	CursorVisible  bool // DECTCEM
	BracketedPaste bool // ?2004
	FocusEvents    bool // ?1004
	ReverseVideo   bool // DECSCNM
	AltScreen      bool
	Mouse          MouseMode
	MouseEnc       MouseEncoding
	CursorStyle    int // DECSCUSR parameter (0 = default)
}

type charsetState struct {
	g  [4]byte // 'B' ASCII or '0' DEC special graphics
	gl int
}

type savedCursor struct {
	x, y        int
	pen         Cell
	pendingWrap bool
	origin      bool
	cs          charsetState
	valid       bool
}

type screen struct {
	lines []Line
	// back is the storage lines slides along when the whole screen
	// scrolls, so a scroll moves no row headers (see scrollUpRegion).
	back []Line
}

// Terminal is a VT/xterm-compatible terminal model.
type Terminal struct {
	w, h     int
	main     screen
	alt      screen
	scr      *screen
	saved    savedCursor // DECSC/DECRC: one slot for both screens, as in tmux
	altSaved savedCursor // cursor saved by ?1049h (separate from DECSC, as in tmux)
	sb       scrollback
	x, y     int
	pen      Cell
	wrapNext bool // cursor sits past the last column; next print wraps
	top, bot int  // scroll region, inclusive
	modes    Modes
	cs       charsetState
	tabs     []bool
	lastR    rune // last printed character, for REP
	title    string

	p       *ansi.Parser
	partial []byte // incomplete UTF-8 sequence carried to the next Write

	dirty    []bool
	anyDirty bool
	allDirty bool // every row is dirty (cheaper than setting each flag on scrolls)
	reply    func([]byte)
	onTitle  func(string)
	onBell   func()
}

// New returns a terminal of w columns and h rows keeping at most
// scrollbackLines lines of history (0 = DefaultScrollback).
func New(w, h, scrollbackLines int) *Terminal {
	if w < 1 {
		w = 1
	}
	if h < 1 {
		h = 1
	}
	if scrollbackLines <= 0 {
		scrollbackLines = DefaultScrollback
	}
	t := &Terminal{w: w, h: h}
	t.sb.init(scrollbackLines)
	t.main.lines = newLines(w, h)
	t.alt.lines = newLines(w, h)
	t.scr = &t.main
	t.dirty = make([]bool, h)
	t.p = ansi.NewParser()
	t.p.SetHandler(ansi.Handler{
		Print:     t.printRune,
		Execute:   t.execute,
		HandleCsi: t.csi,
		HandleEsc: t.esc,
		HandleOsc: t.osc,
	})
	t.reset()
	return t
}

// DefaultScrollback is the number of history lines kept when New is given 0.
const DefaultScrollback = 10000

func newLines(w, h int) []Line {
	cells := make([]Cell, w*h)
	lines := make([]Line, h)
	for i := range lines {
		lines[i].Cells = cells[i*w : (i+1)*w : (i+1)*w]
	}
	return lines
}

func (t *Terminal) reset() {
	t.modes = Modes{AutoWrap: true, CursorVisible: true}
	t.pen = Cell{}
	t.cs = charsetState{g: [4]byte{'B', 'B', 'B', 'B'}}
	t.top, t.bot = 0, t.h-1
	t.resetTabs()
	t.x, t.y, t.wrapNext = 0, 0, false
	t.saved, t.altSaved = savedCursor{}, savedCursor{}
	t.markAll()
}

func (t *Terminal) resetTabs() {
	t.tabs = make([]bool, t.w)
	for i := 8; i < t.w; i += 8 {
		t.tabs[i] = true
	}
}

// SetReply sets where answers to queries (cursor position, device
// attributes) are written: normally the program's input.
func (t *Terminal) SetReply(f func([]byte)) { t.reply = f }

// SetTitleHandler is called when the program sets the window title.
func (t *Terminal) SetTitleHandler(f func(string)) { t.onTitle = f }

// SetBellHandler is called on BEL.
func (t *Terminal) SetBellHandler(f func()) { t.onBell = f }

// Size returns columns and rows.
func (t *Terminal) Size() (w, h int) { return t.w, t.h }

// Cursor returns the cursor position (column, row), clamped to the screen.
func (t *Terminal) Cursor() (x, y int) { return min(t.x, t.w-1), t.y }

// Modes returns the current modes.
func (t *Terminal) Modes() Modes { return t.modes }

// Title returns the last title set by the program.
func (t *Terminal) Title() string { return t.title }

// Line returns screen row y (0 = top). The slice aliases the model: copy it if
// it is kept past the next Write.
func (t *Terminal) Line(y int) Line { return t.scr.lines[y] }

// Cell returns the cell at column x, row y.
func (t *Terminal) Cell(x, y int) Cell { return t.scr.lines[y].Cells[x] }

// String returns the visible screen as text, rows separated by newlines,
// trailing blanks trimmed.
func (t *Terminal) String() string {
	var b []byte
	for i, l := range t.scr.lines {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, l.String()...)
	}
	return string(b)
}

func (t *Terminal) markDirty(y int) {
	t.dirty[y] = true
	t.anyDirty = true
}

func (t *Terminal) markRange(a, b int) {
	if a == 0 && b == t.h-1 {
		t.allDirty, t.anyDirty = true, true
		return
	}
	for y := a; y <= b; y++ {
		t.dirty[y] = true
	}
	t.anyDirty = true
}

func (t *Terminal) markAll() { t.markRange(0, t.h-1) }

// MarkAllDirty makes the next TakeDirty return every row (a view that
// attaches or changes fonts redraws everything).
func (t *Terminal) MarkAllDirty() { t.markAll() }

// TakeDirty returns the rows changed since the last call (ascending) and
// clears the record. The cursor's row is always included so a view can move
// the cursor without tracking it itself.
func (t *Terminal) TakeDirty() []int {
	var rows []int
	if !t.anyDirty {
		return rows
	}
	for y, d := range t.dirty {
		if d || t.allDirty {
			rows = append(rows, y)
			t.dirty[y] = false
		}
	}
	t.anyDirty, t.allDirty = false, false
	return rows
}

// Write feeds program output into the model. It never fails.
//
// Runs of printable ASCII and well-formed UTF-8 are handled here directly;
// only control bytes and escape sequences go through the ansi parser. That
// fast path is what makes `cat` of a large file cheap.
func (t *Terminal) Write(p []byte) (int, error) {
	n := len(p)
	if len(t.partial) > 0 {
		// Complete a UTF-8 sequence split across writes.
		need := utf8Len(t.partial[0]) - len(t.partial)
		take := min(need, len(p))
		for i := 0; i < take; i++ {
			if p[i]&0xc0 != 0x80 {
				take = i
				break
			}
		}
		t.partial = append(t.partial, p[:take]...)
		p = p[take:]
		if utf8.FullRune(t.partial) || take < need && len(p) > 0 {
			// Decode exactly as the unsplit path would: an invalid
			// sequence yields one U+FFFD per byte.
			for buf := t.partial; len(buf) > 0; {
				r, size := utf8.DecodeRune(buf)
				t.printRune(r)
				buf = buf[size:]
			}
			t.partial = t.partial[:0]
		} else if len(p) == 0 {
			return n, nil
		}
	}
	for i := 0; i < len(p); {
		if t.p.State() != parser.GroundState {
			t.p.Advance(p[i])
			i++
			continue
		}
		b := p[i]
		switch {
		case b >= 0x20 && b < 0x7f:
			j := i + 1
			for j < len(p) && p[j] >= 0x20 && p[j] < 0x7f {
				j++
			}
			t.printASCII(p[i:j])
			i = j
		case b >= 0x80:
			if !utf8.FullRune(p[i:]) {
				t.partial = append(t.partial[:0], p[i:]...)
				return n, nil
			}
			r, size := utf8.DecodeRune(p[i:])
			t.printRune(r)
			i += size
		case b == 0x1b:
			if k := t.fastCSI(p[i:]); k > 0 {
				i += k
				continue
			}
			t.p.Advance(b)
			i++
		default:
			t.p.Advance(b)
			i++
		}
	}
	return n, nil
}

// fastCSI dispatches a plain CSI sequence (optional private prefix, numeric
// parameters, final byte) that lies entirely in p, without feeding it to the
// parser byte by byte. It returns the bytes consumed, or 0 to let the
// parser handle anything else (intermediates, split sequences, C0 inside).
func (t *Terminal) fastCSI(p []byte) int {
	if len(p) < 3 || p[1] != '[' {
		return 0
	}
	j := 2
	var prefix byte
	if c := p[j]; c >= '<' && c <= '?' {
		prefix = c
		j++
	}
	var buf [parser.MaxParamsSize]ansi.Param
	params := buf[:0]
	cur, have := 0, false
	for ; j < len(p); j++ {
		c := p[j]
		switch {
		case c >= '0' && c <= '9':
			if cur < 1<<20 {
				cur = cur*10 + int(c-'0')
			}
			have = true
		case c == ';' || c == ':':
			if len(params) == len(buf)-1 {
				return 0
			}
			v := ansi.Param(parser.MissingParam)
			if have {
				v = ansi.Param(cur)
			}
			if c == ':' {
				v |= parser.HasMoreFlag
			}
			params = append(params, v)
			cur, have = 0, false
		case c >= 0x40 && c <= 0x7e:
			if have || len(params) > 0 {
				v := ansi.Param(parser.MissingParam)
				if have {
					v = ansi.Param(cur)
				}
				params = append(params, v)
			}
			t.csi(ansi.Cmd(ansi.Command(prefix, 0, c)), params)
			return j + 1
		default:
			return 0
		}
	}
	return 0
}

func utf8Len(b byte) int {
	switch {
	case b < 0xc0:
		return 1
	case b < 0xe0:
		return 2
	case b < 0xf0:
		return 3
	}
	return 4
}

// printASCII writes a run of printable ASCII bytes.
func (t *Terminal) printASCII(run []byte) {
	if t.modes.Insert || t.cs.g[t.cs.gl] == '0' {
		for _, b := range run {
			t.printRune(rune(b))
		}
		return
	}
	pen := t.pen
	for len(run) > 0 {
		if t.wrapNext {
			t.wrapLine()
		}
		cells := t.scr.lines[t.y].Cells
		n := min(len(run), t.w-t.x)
		if t.x < t.w && (cells[t.x].A&WideTail != 0) {
			t.clearWideAt(t.x)
		}
		if e := t.x + n - 1; cells[e].A&Wide != 0 {
			t.clearWideAt(e)
		}
		dst := cells[t.x : t.x+n]
		for i, b := range run[:n] {
			pen.R = rune(b)
			dst[i] = pen
		}
		t.lastR = rune(run[n-1])
		t.markDirty(t.y)
		run = run[n:]
		t.x += n
		if t.x >= t.w {
			t.x = t.w - 1
			if t.modes.AutoWrap {
				t.wrapNext = true
			} else if len(run) > 0 {
				// Without autowrap the rest overwrites the last column.
				cells[t.w-1] = pen
				cells[t.w-1].R = rune(run[len(run)-1])
				t.lastR = cells[t.w-1].R
				return
			}
		}
	}
}

// clearWideAt blanks both halves of a wide character one of whose halves is
// at column x of the cursor row (it is about to be partly overwritten).
func (t *Terminal) clearWideAt(x int) {
	cells := t.scr.lines[t.y].Cells
	c := cells[x]
	// The half that is not being overwritten becomes a default blank, as
	// in tmux.
	if c.A&WideTail != 0 && x > 0 {
		cells[x-1] = Cell{}
		cells[x].A &^= WideTail
		cells[x].R = 0
	} else if c.A&Wide != 0 && x+1 < t.w {
		cells[x+1] = Cell{}
		cells[x].A &^= Wide
		cells[x].R = 0
	}
}

func (t *Terminal) wrapLine() {
	t.wrapNext = false
	t.scr.lines[t.y].Wrapped = true
	t.x = 0
	t.index()
}

// printRune writes one character (from the parser or the UTF-8 path).
func (t *Terminal) printRune(r rune) {
	orig := r
	if r < 0x80 && t.cs.g[t.cs.gl] == '0' && r >= 0x5f && r <= 0x7e {
		r = decGraphics[r-0x5f]
	}
	wd := runeWidth(r)
	if wd == 0 {
		t.combine(r)
		return
	}
	if t.wrapNext && t.modes.AutoWrap {
		t.wrapLine()
	}
	if wd == 2 && t.x == t.w-1 {
		if !t.modes.AutoWrap {
			return
		}
		// Does not fit: wrap, leaving the last cell as it is (tmux). An
		// unwritten last cell is marked as padding so reflow drops it.
		if c := &t.scr.lines[t.y].Cells[t.x]; *c == (Cell{}) {
			c.A = wrapPad
		}
		t.wrapLine()
	}
	if wd == 2 && t.w < 2 {
		return
	}
	if t.modes.Insert {
		t.insertCells(wd)
	}
	cells := t.scr.lines[t.y].Cells
	if cells[t.x].A&(Wide|WideTail) != 0 {
		t.clearWideAt(t.x)
	}
	c := t.pen
	c.R = r
	if wd == 2 {
		t.scr.lines[t.y].wide = true
		if cells[t.x+1].A&Wide != 0 {
			t.clearWideAt(t.x + 1)
		}
		c.A |= Wide
		cells[t.x] = c
		tail := t.pen
		tail.A |= WideTail
		cells[t.x+1] = tail
	} else {
		cells[t.x] = c
	}
	// REP repeats ASCII only (as in tmux), in the charset then current.
	t.lastR = 0
	if orig < 0x80 {
		t.lastR = orig
	}
	t.markDirty(t.y)
	t.x += wd
	if t.x >= t.w {
		t.x = t.w - 1
		if t.modes.AutoWrap {
			t.wrapNext = true
		}
	}
}

// combine appends a zero-width rune (combining mark, ZWJ, variation
// selector) to the character left of the cursor (the cursor's own cell when
// it is parked past the last column), as tmux does.
func (t *Terminal) combine(r rune) {
	x := t.x - 1
	if t.wrapNext {
		x = t.x
	}
	if x < 0 {
		return
	}
	cells := t.scr.lines[t.y].Cells
	if cells[x].A&WideTail != 0 && x > 0 {
		x--
	}
	c := &cells[x]
	if c.A&WideTail != 0 {
		return
	}
	s := c.Text() + string(r)
	c.R = internCluster(s)
	t.lastR = 0 // REP does not repeat clusters (tmux)
	// VS16 turns a text-presentation character into a wide emoji.
	if r == 0xFE0F && c.A&Wide == 0 && x+1 < t.w && !t.wrapNext && t.x == x+1 {
		c.A |= Wide
		tail := t.pen
		tail.A |= WideTail
		cells[x+1] = tail
		t.x++
		if t.x >= t.w {
			t.x = t.w - 1
			if t.modes.AutoWrap {
				t.wrapNext = true
			}
		}
	}
	t.markDirty(t.y)
}

var decGraphics = [32]rune{
	' ', '◆', '▒', '␉', '␌', '␍', '␊', '°', '±', '␤', '␋', '┘', '┐', '┌', '└', '┼',
	'⎺', '⎻', '─', '⎼', '⎽', '├', '┤', '┴', '┬', '│', '≤', '≥', 'π', '≠', '£', '·',
}

// index moves the cursor down one row, scrolling the region at its bottom.
func (t *Terminal) index() {
	if t.y == t.bot {
		t.scrollUp(1)
	} else if t.y < t.h-1 {
		t.y++
	}
}

func (t *Terminal) reverseIndex() {
	if t.y == t.top {
		t.scrollDown(1)
	} else if t.y > 0 {
		t.y--
	}
}

func (t *Terminal) blankCell() Cell { return Cell{Bg: t.pen.Bg} }

func fill(cells []Cell, c Cell) {
	if c == (Cell{}) {
		clear(cells)
		return
	}
	for i := range cells {
		cells[i] = c
	}
}

// scrollUp scrolls the region up n rows. Lines leaving the top of the
// region on the main screen go to the scrollback, whatever the region (as
// tmux does: output above a status line is kept).
func (t *Terminal) scrollUp(n int) { t.scrollUpRegion(n, true) }

func (t *Terminal) scrollUpRegion(n int, history bool) {
	n = min(n, t.bot-t.top+1)
	if n <= 0 {
		return
	}
	lines := t.scr.lines
	toHistory := history && t.scr == &t.main
	// Recycle the departing rows' cell storage for the new blank rows.
	var buf [8]Line
	gone := buf[:0]
	if n > len(buf) {
		gone = make([]Line, 0, n)
	}
	gone = append(gone, lines[t.top:t.top+n]...)
	if toHistory {
		// The scrollback takes the row's storage and hands back storage
		// from the line it evicts, so scrolling copies no cells.
		for i, l := range gone {
			reuse := t.sb.pushOwned(l, t.w)
			if cap(reuse) < t.w {
				reuse = make([]Cell, t.w)
			}
			gone[i].Cells = reuse[:t.w]
		}
	}
	blank := t.blankCell()
	for i := range gone {
		fill(gone[i].Cells, blank)
		gone[i] = Line{Cells: gone[i].Cells}
	}
	if t.top == 0 && t.bot == t.h-1 {
		// Whole screen: slide the window over back instead of moving
		// every row up; copy back to its start only when it runs out.
		sc := t.scr
		if cap(sc.lines)-len(sc.lines) < n {
			if len(sc.back) < 4*t.h {
				sc.back = make([]Line, 4*t.h)
			}
			copy(sc.back, sc.lines)
			sc.lines = sc.back[:t.h]
		}
		sc.lines = append(sc.lines[n:], gone...)
	} else {
		copy(lines[t.top:], lines[t.top+n:t.bot+1])
		copy(lines[t.bot-n+1:], gone)
	}
	t.markRange(t.top, t.bot)
}

func (t *Terminal) scrollDown(n int) {
	n = min(n, t.bot-t.top+1)
	if n <= 0 {
		return
	}
	lines := t.scr.lines
	var buf [8]Line
	gone := buf[:0]
	if n > len(buf) {
		gone = make([]Line, 0, n)
	}
	gone = append(gone, lines[t.bot-n+1:t.bot+1]...)
	copy(lines[t.top+n:], lines[t.top:t.bot-n+1])
	blank := t.blankCell()
	for i, l := range gone {
		fill(l.Cells, blank)
		lines[t.top+i] = Line{Cells: l.Cells}
	}
	if t.top > 0 {
		lines[t.top-1].Wrapped = false
	}
	t.markRange(t.top, t.bot)
}

func (t *Terminal) insertCells(n int) {
	cells := t.scr.lines[t.y].Cells
	if t.x >= t.w {
		return
	}
	n = min(n, t.w-t.x)
	if cells[t.x].A&WideTail != 0 {
		t.clearWideAt(t.x)
	}
	copy(cells[t.x+n:], cells[t.x:t.w-n])
	fill(cells[t.x:t.x+n], t.blankCell())
	if cells[t.w-1].A&Wide != 0 {
		cells[t.w-1] = t.blankCell()
	}
	t.scr.lines[t.y].Wrapped = false
	t.markDirty(t.y)
}

func (t *Terminal) deleteCells(n int) {
	cells := t.scr.lines[t.y].Cells
	n = min(n, t.w-t.x)
	if cells[t.x].A&WideTail != 0 {
		t.clearWideAt(t.x)
	}
	if t.x+n < t.w && cells[t.x+n].A&WideTail != 0 {
		cells[t.x+n] = t.blankCell()
	}
	copy(cells[t.x:], cells[t.x+n:])
	fill(cells[t.w-n:], t.blankCell())
	t.scr.lines[t.y].Wrapped = false
	t.markDirty(t.y)
}

// eraseCells blanks columns [a,b) of row y with the current background.
func (t *Terminal) eraseCells(y, a, b int) {
	cells := t.scr.lines[y].Cells
	a, b = max(a, 0), min(b, t.w)
	if a >= b {
		return
	}
	if cells[a].A&WideTail != 0 && a > 0 {
		cells[a-1] = t.blankCell()
	}
	if b < t.w && cells[b].A&WideTail != 0 {
		cells[b] = t.blankCell()
	}
	fill(cells[a:b], t.blankCell())
	if b == t.w {
		t.scr.lines[y].Wrapped = false
	}
	t.markDirty(y)
}

func (t *Terminal) setCursor(x, y int) {
	if t.modes.Origin {
		y += t.top
		y = max(t.top, min(y, t.bot))
	} else {
		y = max(0, min(y, t.h-1))
	}
	t.x = max(0, min(x, t.w-1))
	t.y = y
	t.wrapNext = false
}

func (t *Terminal) saveCursor() {
	t.saved = savedCursor{x: t.x, y: t.y, pen: t.pen, pendingWrap: t.wrapNext, origin: t.modes.Origin, cs: t.cs, valid: true}
}

func (t *Terminal) restoreCursor() {
	s := t.saved
	if !s.valid {
		t.x, t.y, t.pen, t.wrapNext, t.modes.Origin = 0, 0, Cell{}, false, false
		t.cs = charsetState{g: [4]byte{'B', 'B', 'B', 'B'}}
		return
	}
	t.x, t.y = min(s.x, t.w-1), min(s.y, t.h-1)
	t.pen, t.wrapNext, t.modes.Origin, t.cs = s.pen, s.pendingWrap, s.origin, s.cs
}

func (t *Terminal) switchScreen(alt, clear bool) {
	if alt == t.modes.AltScreen {
		return
	}
	t.modes.AltScreen = alt
	if alt {
		t.scr = &t.alt
		if clear {
			for y := range t.alt.lines {
				fill(t.alt.lines[y].Cells, t.blankCell())
				t.alt.lines[y].Wrapped = false
			}
		}
	} else {
		t.scr = &t.main
		t.fitMain()
	}
	t.markAll()
}
