package term

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/charmbracelet/x/ansi"
)

func (t *Terminal) execute(b byte) {
	t.lastR = 0
	switch b {
	case 0x07:
		if t.onBell != nil {
			t.onBell()
		}
	case 0x08: // BS
		switch {
		case t.wrapNext:
			t.wrapNext = false
		case t.x > 0:
			t.x--
		case t.y > 0 && t.scr.lines[t.y-1].Wrapped:
			// Back over an autowrap onto the previous row (tmux).
			t.x, t.y = t.w-1, t.y-1
		}
	case 0x09: // HT
		t.tabForward(1)
	case 0x0a, 0x0b, 0x0c: // LF VT FF
		// A cursor parked past the last column stays parked (tmux).
		t.index()
		if t.modes.NewlineMode {
			t.x = 0
		}
	case 0x0d: // CR
		t.x = 0
		t.wrapNext = false
	case 0x0e: // SO
		t.cs.gl = 1
	case 0x0f: // SI
		t.cs.gl = 0
	}
}

func (t *Terminal) tabForward(n int) {
	if t.wrapNext {
		return // parked past the last column: nowhere to go (tmux)
	}
	for ; n > 0 && t.x < t.w-1; n-- {
		t.x++
		for t.x < t.w-1 && !t.tabs[t.x] {
			t.x++
		}
	}
	t.wrapNext = false
}

func (t *Terminal) tabBackward(n int) {
	for ; n > 0 && t.x > 0; n-- {
		t.x--
		for t.x > 0 && !t.tabs[t.x] {
			t.x--
		}
	}
	t.wrapNext = false
}

func (t *Terminal) esc(cmd ansi.Cmd) {
	t.lastR = 0
	inter, final := cmd.Intermediate(), cmd.Final()
	switch inter {
	case '(', ')', '*', '+':
		t.cs.g[inter-'('] = final
		return
	case '#':
		if final == '8' { // DECALN
			for y := range t.scr.lines {
				fill(t.scr.lines[y].Cells, Cell{R: 'E'})
				t.scr.lines[y].Wrapped = false
			}
			t.top, t.bot = 0, t.h-1
			t.setCursor(0, 0)
			t.markAll()
		}
		return
	case 0:
	default:
		return
	}
	switch final {
	case '7':
		t.saveCursor()
	case '8':
		t.restoreCursor()
	case 'D':
		t.index() // like LF, keeps a parked cursor parked (tmux)
	case 'E':
		t.wrapNext = false
		t.x = 0
		t.index()
	case 'M':
		t.reverseIndex() // keeps a parked cursor parked (tmux)
	case 'H':
		t.tabs[min(t.x, t.w-1)] = true
	case 'c': // RIS
		t.main.lines = newLines(t.w, t.h) // (it may be at an older size under the alternate screen)
		t.alt.lines = newLines(t.w, t.h)
		t.modes.AltScreen = false
		t.sb.clear()
		t.scr = &t.main
		t.reset()
	case '=':
		t.modes.AppKeypad = true
	case '>':
		t.modes.AppKeypad = false
	case 'n':
		t.cs.gl = 2
	case 'o':
		t.cs.gl = 3
	}
}

func (t *Terminal) osc(cmd int, data []byte) {
	t.lastR = 0
	// data is "N;text".
	s := string(data)
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[i+1:]
	} else {
		s = ""
	}
	switch cmd {
	case 0, 2:
		t.title = s
		if t.onTitle != nil {
			t.onTitle(s)
		}
	case 10, 11, 12:
		if s == "?" {
			v := "ffff/ffff/ffff"
			if cmd == 11 {
				v = "0000/0000/0000"
			}
			t.send(fmt.Sprintf("\x1b]%d;rgb:%s\x1b\\", cmd, v))
		}
	}
}

func (t *Terminal) send(s string) {
	if t.reply != nil {
		t.reply([]byte(s))
	}
}

func param(p ansi.Params, i, def int) int {
	v, _, _ := p.Param(i, def)
	if v == 0 && def != 0 {
		// A 0 parameter means "default" for counts and positions.
		return def
	}
	return v
}

func (t *Terminal) csi(cmd ansi.Cmd, p ansi.Params) {
	prefix, inter, final := cmd.Prefix(), cmd.Intermediate(), cmd.Final()
	if final != 'b' || prefix != 0 || inter != 0 {
		t.lastR = 0 // REP repeats only a character printed just before it
	}
	if prefix == '?' {
		switch final {
		case 'h', 'l':
			for i := range p {
				t.setPrivateMode(p[i].Param(0), final == 'h')
			}
		case 'p':
			if inter == '$' {
				t.reportMode(param(p, 0, 0), true)
			}
		}
		return
	}
	if prefix == '>' {
		if final == 'c' {
			t.send("\x1b[>1;10;0c")
		}
		return
	}
	if prefix != 0 {
		return
	}
	switch inter {
	case ' ':
		if final == 'q' {
			t.modes.CursorStyle, _, _ = p.Param(0, 0)
		}
		return
	case '!':
		if final == 'p' { // DECSTR soft reset
			t.modes.Insert, t.modes.Origin, t.modes.AutoWrap, t.modes.AppCursor, t.modes.AppKeypad = false, false, true, false, false
			t.modes.CursorVisible = true
			t.pen = Cell{}
			t.top, t.bot = 0, t.h-1
			t.cs = charsetState{g: [4]byte{'B', 'B', 'B', 'B'}}
			t.saved = savedCursor{}
		}
		return
	case '$':
		if final == 'p' {
			t.reportMode(param(p, 0, 0), false)
		}
		return
	case 0:
	default:
		return
	}
	n := param(p, 0, 1)
	switch final {
	case '@':
		t.insertCells(n)
	case 'A':
		t.cursorUp(n)
	case 'B', 'e':
		t.cursorDown(n)
	case 'C', 'a':
		t.x, t.wrapNext = min(t.x+n, t.w-1), false
	case 'D':
		t.x, t.wrapNext = max(min(t.x, t.w-1)-n, 0), false
	case 'E':
		t.cursorDown(n)
		t.x, t.wrapNext = 0, false
	case 'F':
		t.cursorUp(n)
		t.x, t.wrapNext = 0, false
	case 'G', '`':
		t.x, t.wrapNext = max(0, min(n-1, t.w-1)), false
	case 'H', 'f':
		t.setCursor(param(p, 1, 1)-1, n-1)
	case 'I':
		t.tabForward(n)
	case 'J':
		t.eraseDisplay(param(p, 0, 0))
	case 'K':
		switch param(p, 0, 0) {
		case 0:
			// With the cursor parked past the last column (pending wrap)
			// there is nothing right of it: tmux keeps the last cell.
			if !t.wrapNext {
				t.eraseCells(t.y, t.x, t.w)
			}
		case 1:
			t.eraseCells(t.y, 0, t.x+1)
		case 2:
			t.eraseCells(t.y, 0, t.w)
		}
	case 'L', 'M':
		// IL/DL work from the cursor row to the bottom of the scroll
		// region; outside the region tmux uses the whole screen below the
		// cursor (xterm would ignore it) and tmux is the reference here.
		top, bot := t.top, t.bot
		t.top = t.y
		if t.y < top || t.y > bot {
			t.bot = t.h - 1
			// tmux 3.3a inserts at most down to the row above the last
			// (so IL on the last row does nothing); DL has no such limit.
			if final == 'L' {
				n = min(n, t.h-1-t.y)
			}
			if n <= 0 {
				t.top, t.bot = top, bot
				break
			}
		}
		if final == 'L' {
			t.scrollDown(n)
		} else {
			t.scrollUpNoHistory(n) // deleted lines never go to the scrollback
		}
		t.top, t.bot = top, bot
		t.wrapNext = false // the column stays (tmux; xterm would go to the margin)
	case 'P':
		t.deleteCells(n)
	case 'S':
		t.scrollUp(n)
	case 'T':
		if len(p) <= 1 {
			t.scrollDown(n)
		}
	case 'X':
		t.eraseCells(t.y, t.x, t.x+n)
		t.wrapNext = false
	case 'Z':
		t.tabBackward(n)
	case 'b':
		// At most to the end of the line, never wrapping (tmux).
		room := t.w - t.x
		if t.wrapNext {
			room = 0
		}
		if r := t.lastR; r != 0 {
			for i := 0; i < min(n, room); i++ {
				t.printRune(r)
			}
		}
		t.lastR = 0 // once (tmux)
	case 'c':
		if param(p, 0, 0) == 0 {
			t.send("\x1b[?62;22c")
		}
	case 'd':
		// VPA keeps a cursor parked past the last column parked (tmux;
		// CUU/CUD do not).
		wrap := t.wrapNext
		t.setCursor(t.x, n-1)
		t.wrapNext = wrap
	case 'g':
		switch param(p, 0, 0) {
		case 0:
			t.tabs[min(t.x, t.w-1)] = false
		case 3:
			clear(t.tabs)
		}
	case 'h', 'l':
		for i := range p {
			switch p[i].Param(0) {
			case 4:
				t.modes.Insert = final == 'h'
			case 20:
				t.modes.NewlineMode = final == 'h'
			}
		}
	case 'm':
		t.sgr(p)
	case 'n':
		switch param(p, 0, 0) {
		case 5:
			t.send("\x1b[0n")
		case 6:
			y := t.y
			if t.modes.Origin {
				y -= t.top
			}
			t.send(fmt.Sprintf("\x1b[%d;%dR", y+1, min(t.x, t.w-1)+1))
		}
	case 'r':
		top, bot := param(p, 0, 1)-1, param(p, 1, t.h)-1
		bot = min(bot, t.h-1)
		if top < bot {
			t.top, t.bot = top, bot
			// Home, ignoring origin mode: tmux's choice (xterm honours
			// DECOM here); tmux is the reference.
			t.x, t.y, t.wrapNext = 0, 0, false
		}
	case 's':
		t.saveCursor()
	case 'u':
		t.restoreCursor()
	case 't':
		if param(p, 0, 0) == 18 {
			t.send(fmt.Sprintf("\x1b[8;%d;%dt", t.h, t.w))
		}
	}
}

// scrollUpNoHistory scrolls the region without feeding the scrollback (SU,
// DL): those rows are deleted, not scrolled off by output.
func (t *Terminal) scrollUpNoHistory(n int) { t.scrollUpRegion(n, false) }

func (t *Terminal) cursorUp(n int) {
	top := 0
	if t.y >= t.top {
		top = t.top
	}
	t.y, t.wrapNext = max(t.y-n, top), false
}

func (t *Terminal) cursorDown(n int) {
	bot := t.h - 1
	if t.y <= t.bot {
		bot = t.bot
	}
	t.y, t.wrapNext = min(t.y+n, bot), false
}

func (t *Terminal) eraseDisplay(mode int) {
	if t.scr == &t.main && (mode == 2 || mode == 0 && t.x == 0 && t.y == 0 && !t.wrapNext) {
		// Clearing the whole main screen keeps what was on it in the
		// scrollback (tmux does this; so do iTerm2 and Terminal.app), so
		// `clear` or a redrawing program never loses output.
		last := -1
		for y := t.h - 1; y >= 0; y-- {
			if len(trimBlank(t.main.lines[y].Cells)) > 0 {
				last = y
				break
			}
		}
		for y := 0; y <= last; y++ {
			t.sb.push(t.main.lines[y], t.w)
		}
	}
	switch mode {
	case 0:
		if !t.wrapNext {
			t.eraseCells(t.y, t.x, t.w)
		}
		for y := t.y + 1; y < t.h; y++ {
			t.eraseCells(y, 0, t.w)
		}
	case 1:
		for y := 0; y < t.y; y++ {
			t.eraseCells(y, 0, t.w)
		}
		t.eraseCells(t.y, 0, t.x+1)
	case 2:
		for y := 0; y < t.h; y++ {
			t.eraseCells(y, 0, t.w)
		}
	case 3:
		t.sb.clear()
		t.markAll()
	}
	t.wrapNext = false
}

func (t *Terminal) setPrivateMode(m int, on bool) {
	switch m {
	case 1:
		t.modes.AppCursor = on
	case 5:
		t.modes.ReverseVideo = on
		t.markAll()
	case 6:
		t.modes.Origin = on
		t.setCursor(0, 0)
	case 7:
		t.modes.AutoWrap = on
	case 9:
		t.setMouse(MouseX10, on)
	case 25:
		t.modes.CursorVisible = on
	case 47, 1047:
		if on && !t.modes.AltScreen {
			// tmux records the pen on every switch to the alternate
			// screen; ?1049l restores it.
			t.altSaved.pen = t.pen
		}
		t.switchScreen(on, true)
	case 1048:
		if on {
			t.saveCursor()
		} else {
			t.restoreCursor()
		}
	case 1049:
		if on {
			if !t.modes.AltScreen {
				t.altSaved = savedCursor{x: t.x, y: t.y, pen: t.pen, valid: true}
			}
			t.switchScreen(true, true)
		} else {
			t.switchScreen(false, false)
			// Restored even when the alternate screen was not on (tmux).
			if s := t.altSaved; s.valid {
				t.x, t.y, t.pen, t.wrapNext = min(s.x, t.w-1), min(s.y, t.h-1), s.pen, false
			}
		}
	case 1000:
		t.setMouse(MouseNormal, on)
	case 1002:
		t.setMouse(MouseDrag, on)
	case 1003:
		t.setMouse(MouseAny, on)
	case 1004:
		t.modes.FocusEvents = on
	case 1005:
		t.setMouseEnc(MouseEncUTF8, on)
	case 1006:
		t.setMouseEnc(MouseEncSGR, on)
	case 1015:
		t.setMouseEnc(MouseEncURXVT, on)
	case 2004:
		t.modes.BracketedPaste = on
	}
}

func (t *Terminal) setMouse(m MouseMode, on bool) {
	if on {
		t.modes.Mouse = m
	} else if t.modes.Mouse == m || m != MouseX10 {
		t.modes.Mouse = MouseOff
	}
}

func (t *Terminal) setMouseEnc(e MouseEncoding, on bool) {
	if on {
		t.modes.MouseEnc = e
	} else if t.modes.MouseEnc == e {
		t.modes.MouseEnc = MouseEncX10
	}
}

// reportMode answers DECRQM.
func (t *Terminal) reportMode(m int, private bool) {
	state := 0 // not recognised
	b := func(v bool) int {
		if v {
			return 1
		}
		return 2
	}
	if private {
		switch m {
		case 1:
			state = b(t.modes.AppCursor)
		case 5:
			state = b(t.modes.ReverseVideo)
		case 6:
			state = b(t.modes.Origin)
		case 7:
			state = b(t.modes.AutoWrap)
		case 25:
			state = b(t.modes.CursorVisible)
		case 1049, 1047, 47:
			state = b(t.modes.AltScreen)
		case 1000:
			state = b(t.modes.Mouse == MouseNormal)
		case 1002:
			state = b(t.modes.Mouse == MouseDrag)
		case 1003:
			state = b(t.modes.Mouse == MouseAny)
		case 1004:
			state = b(t.modes.FocusEvents)
		case 1006:
			state = b(t.modes.MouseEnc == MouseEncSGR)
		case 2004:
			state = b(t.modes.BracketedPaste)
		}
		t.send("\x1b[?" + strconv.Itoa(m) + ";" + strconv.Itoa(state) + "$y")
		return
	}
	switch m {
	case 4:
		state = b(t.modes.Insert)
	case 20:
		state = b(t.modes.NewlineMode)
	}
	t.send("\x1b[" + strconv.Itoa(m) + ";" + strconv.Itoa(state) + "$y")
}

// sgr applies Select Graphic Rendition parameters to the pen.
func (t *Terminal) sgr(p ansi.Params) {
	if len(p) == 0 {
		t.pen = Cell{}
		return
	}
	for i := 0; i < len(p); i++ {
		v := p[i].Param(0)
		switch {
		case v == 0:
			t.pen = Cell{}
		case v == 1:
			t.pen.A |= Bold
		case v == 2:
			t.pen.A |= Faint
		case v == 3:
			t.pen.A |= Italic
		case v == 4:
			t.pen.A &^= Underline | DoubleUnderline | CurlyUnderline
			style := 1
			if p[i].HasMore() && i+1 < len(p) {
				i++
				style = p[i].Param(0)
			}
			switch style {
			case 0:
			case 2:
				t.pen.A |= DoubleUnderline
			case 3, 4, 5:
				t.pen.A |= CurlyUnderline
			default:
				t.pen.A |= Underline
			}
		case v == 5 || v == 6:
			t.pen.A |= Blink
		case v == 7:
			t.pen.A |= Reverse
		case v == 8:
			t.pen.A |= Invisible
		case v == 9:
			t.pen.A |= Strike
		case v == 21:
			t.pen.A = t.pen.A&^(Underline|CurlyUnderline) | DoubleUnderline
		case v == 22:
			t.pen.A &^= Bold | Faint
		case v == 23:
			t.pen.A &^= Italic
		case v == 24:
			t.pen.A &^= Underline | DoubleUnderline | CurlyUnderline
		case v == 25:
			t.pen.A &^= Blink
		case v == 27:
			t.pen.A &^= Reverse
		case v == 28:
			t.pen.A &^= Invisible
		case v == 29:
			t.pen.A &^= Strike
		case v >= 30 && v <= 37:
			t.pen.Fg = Indexed(uint8(v - 30))
		case v == 38:
			var c Color
			c, i = extColor(p, i)
			if c != 0 {
				t.pen.Fg = c
			}
		case v == 39:
			t.pen.Fg = 0
		case v >= 40 && v <= 47:
			t.pen.Bg = Indexed(uint8(v - 40))
		case v == 48:
			var c Color
			c, i = extColor(p, i)
			if c != 0 {
				t.pen.Bg = c
			}
		case v == 49:
			t.pen.Bg = 0
		case v == 53:
			t.pen.A |= Overline
		case v == 55:
			t.pen.A &^= Overline
		case v == 58:
			_, i = extColor(p, i) // underline colour: accepted, not drawn
		case v >= 90 && v <= 97:
			t.pen.Fg = Indexed(uint8(v - 90 + 8))
		case v >= 100 && v <= 107:
			t.pen.Bg = Indexed(uint8(v - 100 + 8))
		}
	}
}

// extColor parses the arguments of SGR 38/48/58 starting at p[i], in both
// the ";" form (38;5;n, 38;2;r;g;b) and the ":" form (38:5:n, 38:2::r:g:b).
// It returns the colour (0 if malformed) and the index of the last
// parameter consumed.
func extColor(p ansi.Params, i int) (Color, int) {
	colon := p[i].HasMore()
	if i+1 >= len(p) {
		return 0, i
	}
	kind := p[i+1].Param(0)
	switch kind {
	case 5:
		if i+2 >= len(p) {
			return 0, len(p) - 1
		}
		return Indexed(uint8(p[i+2].Param(0))), i + 2
	case 2:
		// Colon form may carry a colour-space id before r:g:b.
		j := i + 2
		if colon {
			n := 0
			for k := i + 1; k < len(p); k++ {
				n++
				if !p[k].HasMore() {
					break
				}
			}
			// n counts 2 and its sub-parameters: 2:r:g:b (4) or 2:cs:r:g:b (5).
			if n >= 5 {
				j++
			}
			if j+2 >= len(p) {
				return 0, len(p) - 1
			}
			return RGB(uint8(p[j].Param(0)), uint8(p[j+1].Param(0)), uint8(p[j+2].Param(0))), i + n
		}
		if j+2 >= len(p) {
			return 0, len(p) - 1
		}
		return RGB(uint8(p[j].Param(0)), uint8(p[j+1].Param(0)), uint8(p[j+2].Param(0))), j + 2
	}
	return 0, i + 1
}
