package term

// scrollback keeps history as logical lines (rows joined across autowrap),
// in a ring bounded by line count. Because lines are stored unwrapped, a
// resize only recounts how many rows each one takes at the new width: no
// cells move, which keeps a resize with 10k lines of history cheap.
type scrollback struct {
	ring  []sbLine
	start int // index of the oldest line
	n     int
	// open is set when the newest line's last row was autowrapped: the
	// next pushed row continues it.
	open bool
	rows int // total rows at width w
	w    int
}

type sbLine struct {
	cells []Cell
	rows  int  // rows at width w
	wide  bool // contains wide characters (rows needs a real wrap walk)
}

// maxLineCells bounds a single logical line (a program that never prints a
// newline); beyond it the line is split instead of growing.
const maxLineCells = 1 << 16

func (s *scrollback) init(max int) { s.ring = make([]sbLine, max) }

func (s *scrollback) clear() {
	for i := range s.ring {
		s.ring[i].cells = s.ring[i].cells[:0]
	}
	s.start, s.n, s.open, s.rows = 0, 0, false, 0
}

// Len returns the number of logical lines.
func (s *scrollback) Len() int { return s.n }

func (s *scrollback) at(i int) *sbLine { return &s.ring[(s.start+i)%len(s.ring)] }

// pushOwned appends a screen row whose storage the scrollback may keep. It
// returns storage the caller may reuse for a new row (the evicted line's, or
// the row's own if it was copied), or nil.
func (s *scrollback) pushOwned(l Line, w int) []Cell {
	if s.w != w {
		s.relayout(w)
	}
	if s.open && s.n > 0 || len(s.ring) == 0 {
		s.push(l, w)
		return l.Cells
	}
	var old []Cell
	if s.n == len(s.ring) {
		ev := s.at(0)
		old = ev.cells
		s.rows -= ev.rows
		s.start = (s.start + 1) % len(s.ring)
		s.n--
	}
	slot := s.at(s.n)
	if old == nil {
		old = slot.cells
	}
	s.n++
	cells := l.Cells
	if !l.Wrapped {
		cells = trimBlank(cells)
	} else if n := len(cells); n > 0 && cells[n-1].A&wrapPad != 0 {
		cells = cells[:n-1]
	}
	slot.cells = cells
	slot.wide = l.wide
	slot.rows = rowCount(cells, w, slot.wide)
	s.rows += slot.rows
	s.open = l.Wrapped
	return old
}

// push appends one screen row, copying its cells.
func (s *scrollback) push(l Line, w int) {
	if s.w != w {
		s.relayout(w)
	}
	cells := l.Cells
	if !l.Wrapped {
		cells = trimBlank(cells)
	}
	if s.open && s.n > 0 {
		last := s.at(s.n - 1)
		if len(last.cells)+len(cells) <= maxLineCells {
			last.cells = appendCells(last.cells, cells)
			last.wide = last.wide || l.wide || hasWide(cells)
			s.rows -= last.rows
			last.rows = rowCount(last.cells, w, last.wide)
			s.rows += last.rows
			s.open = l.Wrapped
			return
		}
	}
	var slot *sbLine
	if s.n == len(s.ring) {
		slot = s.at(0)
		s.rows -= slot.rows
		s.start = (s.start + 1) % len(s.ring)
		s.n--
	}
	slot = s.at(s.n)
	s.n++
	// Reuse the evicted line's storage.
	slot.cells = appendCells(slot.cells[:0], cells)
	slot.wide = hasWide(cells)
	slot.rows = rowCount(slot.cells, w, slot.wide)
	s.rows += slot.rows
	s.open = l.Wrapped
}

// appendCells appends a row's cells, dropping the wide-character wrap
// padding (which can only be a row's last cell).
func appendCells(dst, src []Cell) []Cell {
	if n := len(src); n > 0 && src[n-1].A&wrapPad != 0 {
		src = src[:n-1]
	}
	return append(dst, src...)
}

// popLast removes and returns the newest logical line (used by reflow to
// rejoin a line split between history and screen).
func (s *scrollback) popLast() []Cell {
	last := s.at(s.n - 1)
	s.rows -= last.rows
	s.n--
	s.open = false
	out := append([]Cell(nil), last.cells...)
	last.cells = last.cells[:0]
	return out
}

func (s *scrollback) relayout(w int) {
	s.w = w
	s.rows = 0
	for i := 0; i < s.n; i++ {
		l := s.at(i)
		l.rows = rowCount(l.cells, w, l.wide)
		s.rows += l.rows
	}
}

func hasWide(cells []Cell) bool {
	for i := range cells {
		if cells[i].A&Wide != 0 {
			return true
		}
	}
	return false
}

func trimBlank(cells []Cell) []Cell {
	end := len(cells)
	for end > 0 && cells[end-1].blank() {
		end--
	}
	return cells[:end]
}

// wrapEnd returns where the row starting at cells[start] ends at width w:
// a wide character never straddles two rows.
func wrapEnd(cells []Cell, start, w int) int {
	end := start + w
	if end >= len(cells) {
		return len(cells)
	}
	if cells[end-1].A&Wide != 0 && w > 1 {
		end--
	}
	return end
}

func rowCount(cells []Cell, w int, wide bool) int {
	if len(cells) == 0 {
		return 1
	}
	if !wide {
		return (len(cells) + w - 1) / w
	}
	n := 0
	for i := 0; i < len(cells); i = wrapEnd(cells, i, w) {
		n++
	}
	return n
}

// row returns history row r (0 = oldest row) at the current width.
func (s *scrollback) row(r int) Line {
	// Walk from the newest line: views mostly look at recent history.
	acc := s.rows
	for i := s.n - 1; i >= 0; i-- {
		l := s.at(i)
		acc -= l.rows
		if r >= acc {
			k := r - acc
			start := 0
			for j := 0; j < k; j++ {
				start = wrapEnd(l.cells, start, s.w)
			}
			end := wrapEnd(l.cells, start, s.w)
			return Line{Cells: l.cells[start:end], Wrapped: end < len(l.cells)}
		}
	}
	return Line{}
}
