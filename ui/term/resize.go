package term

// Resize changes the terminal to w columns and h rows. The main screen is
// reflowed: rows joined by autowrap are rewrapped at the new width, rows
// that no longer fit go to the scrollback, and when the screen grows, history
// is pulled back down (as tmux does). The alternate screen (full-screen
// programs redraw on SIGWINCH anyway) is cut or padded.
func (t *Terminal) Resize(w, h int) {
	w, h = max(w, 1), max(h, 1)
	if w == t.w && h == t.h {
		return
	}
	oldW, oldH := t.w, t.h
	if t.modes.AltScreen {
		mx, my := 0, 0
		if t.main.saved.valid {
			mx, my = t.main.saved.x, t.main.saved.y
		}
		mx, my = t.reflowMain(w, h, oldW, oldH, mx, my)
		t.main.saved.x, t.main.saved.y = mx, my
		t.alt.lines = cutLines(t.alt.lines, w, h)
		t.x, t.y = min(t.x, w-1), min(t.y, h-1)
	} else {
		t.x, t.y = t.reflowMain(w, h, oldW, oldH, min(t.x, oldW-1), t.y)
		t.alt.lines = newLines(w, h)
	}
	t.alt.saved.x, t.alt.saved.y = min(t.alt.saved.x, w-1), min(t.alt.saved.y, h-1)
	t.w, t.h = w, h
	t.top, t.bot = 0, h-1
	t.wrapNext = false
	t.lastX, t.lastY = w, h // no combining onto a moved cell
	oldTabs := t.tabs
	t.resetTabs()
	copy(t.tabs, oldTabs[:min(len(oldTabs), w)])
	t.dirty = make([]bool, h)
	t.markAll()
}

// cutLines returns lines resized to w×h without reflow.
func cutLines(old []Line, w, h int) []Line {
	lines := newLines(w, h)
	for y := 0; y < min(h, len(old)); y++ {
		n := copy(lines[y].Cells, old[y].Cells)
		if n > 0 && lines[y].Cells[n-1].A&Wide != 0 && n == w {
			lines[y].Cells[n-1] = Cell{}
		}
	}
	return lines
}

// reflowMain rewraps the main screen to w×h and returns the new cursor.
func (t *Terminal) reflowMain(w, h, oldW, oldH, cx, cy int) (int, int) {
	t.sb.relayout(oldW)
	// 1. Logical lines of the old screen, and where the cursor is in them.
	var logical [][]Cell
	var cur []Cell
	if t.sb.open && t.sb.n > 0 {
		cur = t.sb.popLast()
	}
	curLine, curOff := 0, 0
	for y := 0; y < oldH; y++ {
		l := t.main.lines[y]
		if y == cy {
			curLine, curOff = len(logical), len(cur)+cx
		}
		cur = appendCells(cur, l.Cells)
		if !l.Wrapped || y == oldH-1 {
			logical = append(logical, cur)
			cur = nil
		}
	}
	for i := range logical {
		logical[i] = trimBlank(logical[i])
	}
	// 2. Blank lines below the cursor carry nothing.
	end := len(logical)
	for end > curLine+1 && len(logical[end-1]) == 0 {
		end--
	}
	logical = logical[:end]

	// 3. Rewrap.
	var rows []Line
	ny, nx := 0, 0
	for i, cells := range logical {
		first := len(rows)
		for s := 0; ; {
			e := wrapEnd(cells, s, w)
			rows = append(rows, Line{Cells: cells[s:e], Wrapped: e < len(cells)})
			if i == curLine && curOff >= s && (curOff < e || e == len(cells)) {
				ny, nx = len(rows)-1, curOff-s
			}
			if e >= len(cells) {
				break
			}
			s = e
		}
		if i == curLine && nx >= w {
			// The cursor sat past the text: keep it on the row, clamped.
			nx = w - 1
		}
		_ = first
	}

	// 4. Fit to h rows: overflow goes to history; growth pulls it back.
	t.sb.relayout(w)
	if len(rows) > h {
		drop := len(rows) - h
		if ny-drop < 0 {
			drop = ny // never push the cursor row away
		}
		for _, r := range rows[:drop] {
			t.sb.push(r, w)
		}
		rows = rows[drop:]
		ny -= drop
		if len(rows) > h {
			rows = rows[:h]
		}
	} else {
		// Rows freed by the resize (taller, or lines unwrapping when wider)
		// are filled from history, as tmux does.
		budget := h - len(rows)
		var pulled []Line
		for t.sb.n > 0 && t.sb.at(t.sb.n-1).rows <= budget {
			cells := t.sb.popLast()
			var lr []Line
			for s := 0; ; {
				e := wrapEnd(cells, s, w)
				lr = append(lr, Line{Cells: cells[s:e], Wrapped: e < len(cells)})
				if e >= len(cells) {
					break
				}
				s = e
			}
			budget -= len(lr)
			pulled = append(lr, pulled...)
		}
		rows = append(pulled, rows...)
		ny += len(pulled)
	}

	// 5. Materialise the new grid.
	lines := newLines(w, h)
	for y, r := range rows {
		copy(lines[y].Cells, r.Cells)
		lines[y].Wrapped = r.Wrapped
	}
	t.main.lines = lines
	return max(0, min(nx, w-1)), max(0, min(ny, h-1))
}

// HistoryRows returns the number of scrollback rows at the current width.
func (t *Terminal) HistoryRows() int {
	if t.sb.w != t.w {
		t.sb.relayout(t.w)
	}
	return t.sb.rows
}

// HistoryLine returns scrollback row r (0 = oldest). The cells may be
// shorter than the width (trailing blanks are not stored).
func (t *Terminal) HistoryLine(r int) Line {
	if t.sb.w != t.w {
		t.sb.relayout(t.w)
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
