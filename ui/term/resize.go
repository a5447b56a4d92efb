package term

// Resize changes the terminal to w columns and h rows, the way tmux does:
// first the height (shrinking drops blank rows below the cursor, then moves
// rows from the top into the scrollback; growing pulls rows back down from
// the scrollback), then the width, by rewrapping every row joined by
// autowrap, with rows that no longer fit going to the scrollback and freed
// rows refilled from it. The alternate screen (whose programs redraw on
// SIGWINCH) is cut or padded; the main screen hidden under it keeps its old
// size until the program leaves the alternate screen.
func (t *Terminal) Resize(w, h int) {
	w, h = max(w, 1), max(h, 1)
	if w == t.w && h == t.h {
		return
	}
	if t.modes.AltScreen {
		t.alt.lines, t.y = cutAlt(t.alt.lines, w, h, t.y)
		t.x = min(t.x, w-1)
	} else {
		t.x, t.y = t.reflowMain(w, h, min(t.x, t.mainW()-1), t.y)
		t.alt.lines = newLines(w, h)
	}
	t.saved.x, t.saved.y = min(t.saved.x, w-1), min(t.saved.y, h-1)
	if t.modes.AltScreen {
		t.altSaved.x, t.altSaved.y = min(t.altSaved.x, w-1), min(t.altSaved.y, h-1)
	}
	t.w, t.h = w, h
	t.top, t.bot = 0, h-1
	t.wrapNext = false
	oldTabs := t.tabs
	t.resetTabs()
	copy(t.tabs, oldTabs[:min(len(oldTabs), w)])
	t.dirty = make([]bool, h)
	t.markAll()
}

func (t *Terminal) mainW() int { return len(t.main.lines[0].Cells) }

// fitMain brings the main screen to the current size after the alternate
// screen was left (it was not resized while hidden).
func (t *Terminal) fitMain() {
	if t.mainW() == t.w && len(t.main.lines) == t.h {
		return
	}
	s := &t.altSaved // where the main screen's cursor was
	x, y := t.reflowMain(t.w, t.h, min(s.x, t.mainW()-1), min(s.y, len(t.main.lines)-1))
	s.x, s.y = x, y
}

// cutAlt resizes the alternate screen without reflow: when it shrinks,
// rows below the cursor go first, then rows from the top (no history).
func cutAlt(old []Line, w, h, cy int) ([]Line, int) {
	for len(old) > h && len(old)-1 > cy {
		old = old[:len(old)-1]
	}
	if len(old) > h {
		n := len(old) - h
		old = old[n:]
		cy -= n
	}
	return cutLines(old, w, h), max(cy, 0)
}

// cutLines returns lines resized to w×h without reflow.
func cutLines(old []Line, w, h int) []Line {
	lines := newLines(w, h)
	for y := 0; y < min(h, len(old)); y++ {
		n := copy(lines[y].Cells, old[y].Cells)
		if n > 0 && lines[y].Cells[n-1].A&Wide != 0 && n == w {
			lines[y].Cells[n-1] = Cell{}
		}
		lines[y].wide = old[y].wide
	}
	return lines
}

// wrapRows splits a logical line into rows of width w.
func wrapRows(cells []Cell, w int, out []Line) []Line {
	for s := 0; ; {
		e := wrapEnd(cells, s, w)
		out = append(out, Line{Cells: cells[s:e], Wrapped: e < len(cells)})
		if e >= len(cells) {
			return out
		}
		s = e
	}
}

// pullRows takes up to n rows (at width w) off the end of the scrollback,
// splitting its last line if only part of it is needed.
func (t *Terminal) pullRows(n, w int) []Line {
	var out []Line
	t.sb.relayout(w)
	for len(out) < n && t.sb.n > 0 {
		open := t.sb.open
		cells := t.sb.popLast()
		rows := wrapRows(cells, w, nil)
		// A line that continued onto the screen still does.
		rows[len(rows)-1].Wrapped = open
		take := min(n-len(out), len(rows))
		for _, r := range rows[:len(rows)-take] {
			t.sb.push(r, w) // the head stays in history, continued on screen
		}
		out = append(rows[len(rows)-take:len(rows):len(rows)], out...)
	}
	return out
}

func rowBlank(l Line) bool { return len(trimBlank(l.Cells)) == 0 }

// reflowMain resizes the main screen to w×h and returns the new cursor.
func (t *Terminal) reflowMain(w, h, cx, cy int) (int, int) {
	oldW, oldH := t.mainW(), len(t.main.lines)
	rows := append([]Line(nil), t.main.lines...)
	t.sb.relayout(oldW)

	// 1. Height, at the old width.
	if h < oldH {
		need := oldH - h
		// Rows below the cursor go first (tmux does the same), then rows
		// from the top move into the scrollback.
		for need > 0 && len(rows)-1 > cy {
			rows = rows[:len(rows)-1]
			need--
		}
		for ; need > 0; need-- {
			t.sb.push(rows[0], oldW)
			rows = rows[1:]
			cy--
		}
	} else if h > oldH {
		pulled := t.pullRows(h-oldH, oldW)
		rows = append(pulled, rows...)
		cy += len(pulled)
		for len(rows) < h {
			rows = append(rows, Line{})
		}
	}
	cy = max(cy, 0)

	// 2. Width: rewrap the logical lines (including one continued from
	// the scrollback), keep the last h rows, refill from history.
	if w != oldW {
		var logical [][]Cell
		var cur []Cell
		if t.sb.open && t.sb.n > 0 {
			cur = t.sb.popLast()
		}
		curLine, curOff := 0, 0
		for y, l := range rows {
			if y == cy {
				curLine, curOff = len(logical), len(cur)+cx
			}
			cur = appendCells(cur, l.Cells)
			if !l.Wrapped || y == len(rows)-1 {
				logical = append(logical, trimBlank(cur))
				cur = nil
			}
		}
		var out []Line
		ny, nx := 0, 0
		for i, cells := range logical {
			first := len(out)
			out = wrapRows(cells, w, out)
			if i == curLine {
				// The cursor may sit past the text (trimmed blanks).
				k := 0
				for j := first; j < len(out); j++ {
					if curOff >= k && (curOff < k+len(out[j].Cells) || j == len(out)-1) {
						ny, nx = j, curOff-k
						break
					}
					k += len(out[j].Cells)
				}
			}
		}
		if len(out) > h {
			drop := len(out) - h
			for _, r := range out[:drop] {
				t.sb.push(r, w)
			}
			out = out[drop:]
			ny -= drop
		} else if len(out) < h {
			pulled := t.pullRows(h-len(out), w)
			out = append(pulled, out...)
			ny += len(pulled)
		}
		rows, cx, cy = out, nx, ny
	}
	t.sb.relayout(w)

	// 3. Materialise the new grid.
	lines := newLines(w, h)
	for y, r := range rows {
		if y >= h {
			break
		}
		copy(lines[y].Cells, r.Cells)
		lines[y].Wrapped = r.Wrapped
		lines[y].wide = r.wide || hasWide(r.Cells)
	}
	t.main.lines = lines
	return max(0, min(cx, w-1)), max(0, min(cy, h-1))
}

// HistoryRows returns the number of scrollback rows at the current width.
//
// History is laid out at the main screen's width, which differs from the
// terminal's only while a resized alternate screen is showing.
func (t *Terminal) HistoryRows() int {
	if w := t.mainW(); t.sb.w != w {
		t.sb.relayout(w)
	}
	return t.sb.rows
}

// HistoryLine returns scrollback row r (0 = oldest). The cells may be
// shorter than the width (trailing blanks are not stored).
func (t *Terminal) HistoryLine(r int) Line {
	if w := t.mainW(); t.sb.w != w {
		t.sb.relayout(w)
	}
	return t.sb.row(r)
}

// Row returns row r of the whole buffer: history rows first, then the
// visible screen (r = HistoryRows() is the top screen row).
func (t *Terminal) Row(r int) Line {
	hr := t.HistoryRows()
	if r < hr {
		return t.HistoryLine(r)
	}
	return t.scr.lines[r-hr]
}

// ClearHistory drops the scrollback.
func (t *Terminal) ClearHistory() { t.sb.clear() }
