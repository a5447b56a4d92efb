package term

// MacKey maps a macOS virtual key code (NSEvent keyCode) to a special key,
// or KeyNone for keys that produce text.
func MacKey(code int) Key {
	switch code & 0xffff {
	case 126:
		return KeyUp
	case 125:
		return KeyDown
	case 123:
		return KeyLeft
	case 124:
		return KeyRight
	case 115:
		return KeyHome
	case 119:
		return KeyEnd
	case 116:
		return KeyPageUp
	case 121:
		return KeyPageDown
	case 114:
		return KeyInsert // Help key on Apple keyboards
	case 117:
		return KeyDelete
	case 51:
		return KeyBackspace
	case 48:
		return KeyTab
	case 36, 76:
		return KeyEnter
	case 53:
		return KeyEscape
	case 122:
		return KeyF1
	case 120:
		return KeyF2
	case 99:
		return KeyF3
	case 118:
		return KeyF4
	case 96:
		return KeyF5
	case 97:
		return KeyF6
	case 98:
		return KeyF7
	case 100:
		return KeyF8
	case 101:
		return KeyF9
	case 109:
		return KeyF10
	case 103:
		return KeyF11
	case 111:
		return KeyF12
	}
	return KeyNone
}

// KeyPress is a key event as the view sees it, in portable form.
type KeyPress struct {
	Code       int    // virtual key code
	Chars      string // characters with all modifiers applied (Option-composed)
	CharsNoMod string // characters ignoring modifiers
	Shift      bool
	Ctrl       bool
	Option     bool
	Command    bool
}

// EncodeKeyPress returns what a key press sends to the program, or nil
// when the view should handle it itself (Command shortcuts). With
// optionAsMeta, Option sends ESC-prefixed keys (Meta) instead of composing
// characters like "å".
func EncodeKeyPress(k KeyPress, optionAsMeta bool, modes Modes) []byte {
	if k.Command {
		return nil
	}
	var m Mod
	if k.Shift {
		m |= ModShift
	}
	if k.Ctrl {
		m |= ModCtrl
	}
	if k.Option && optionAsMeta {
		m |= ModAlt
	}
	if key := MacKey(k.Code); key != KeyNone {
		return EncodeKey(key, m, modes)
	}
	text := k.Chars
	if m&(ModCtrl|ModAlt) != 0 {
		// Control and Meta apply to the unmodified key ("c", not "ç").
		text = k.CharsNoMod
		if m&ModCtrl == 0 && k.Shift {
			text = k.Chars
			if k.Option && optionAsMeta {
				text = shiftASCII(k.CharsNoMod)
			}
		}
	}
	if text == "" {
		return nil
	}
	return EncodeText(text, m&^ModShift)
}

// shiftASCII upper-cases a single ASCII letter (Shift+Option+a as Meta-A).
func shiftASCII(s string) string {
	if len(s) == 1 && s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0] - 32)
	}
	return s
}

// GridSize returns how many columns and rows fit in a view of the given
// size (points) with the given cell size and padding.
func GridSize(width, height, cellW, cellH, pad float64) (cols, rows int) {
	if cellW <= 0 || cellH <= 0 {
		return 80, 24
	}
	cols = int((width - 2*pad) / cellW)
	rows = int((height - 2*pad) / cellH)
	return max(cols, 2), max(rows, 1)
}
