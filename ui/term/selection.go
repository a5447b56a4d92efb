package term

import "strings"

// Pos is a position in the whole buffer: Row counts from the oldest history
// row (see Terminal.Row), Col from the left.
type Pos struct{ Row, Col int }

func (p Pos) before(q Pos) bool { return p.Row < q.Row || p.Row == q.Row && p.Col < q.Col }

// SelectionText returns the text between a and b (inclusive, any order).
// Rows joined by autowrap are joined without a line break; trailing blanks
// of each line are dropped, as every terminal does on copy.
func (t *Terminal) SelectionText(a, b Pos) string {
	if b.before(a) {
		a, b = b, a
	}
	total := t.HistoryRows() + t.h
	a.Row, b.Row = max(a.Row, 0), min(b.Row, total-1)
	var out strings.Builder
	for r := a.Row; r <= b.Row; r++ {
		l := t.Row(r)
		from, to := 0, len(l.Cells)
		if r == a.Row {
			from = min(max(a.Col, 0), to)
		}
		if r == b.Row {
			to = min(max(b.Col+1, from), to)
		}
		seg := l.Cells[from:to]
		if r == b.Row || !l.Wrapped {
			out.WriteString(cellsText(seg))
		} else {
			for _, c := range seg {
				if c.A&(WideTail|wrapPad) == 0 {
					out.WriteString(c.Text())
				}
			}
		}
		if r < b.Row && !l.Wrapped {
			out.WriteByte('\n')
		}
	}
	return out.String()
}

// WordAt returns the start and end columns of the word under (row, col), for
// double-click selection. A word is a run of non-blank, non-separator
// characters.
func (t *Terminal) WordAt(p Pos) (Pos, Pos) {
	l := t.Row(p.Row)
	if p.Col < 0 || p.Col >= len(l.Cells) {
		return p, p
	}
	isWord := func(c Cell) bool {
		s := c.Text()
		return s != " " && !strings.ContainsAny(s, " \t\"'`()[]{}<>|,;")
	}
	if !isWord(l.Cells[p.Col]) {
		return p, p
	}
	s, e := p.Col, p.Col
	for s > 0 && isWord(l.Cells[s-1]) {
		s--
	}
	for e+1 < len(l.Cells) && isWord(l.Cells[e+1]) {
		e++
	}
	return Pos{p.Row, s}, Pos{p.Row, e}
}
