package term

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Key is a non-text key.
type Key uint8

const (
	KeyNone Key = iota
	KeyUp
	KeyDown
	KeyRight
	KeyLeft
	KeyHome
	KeyEnd
	KeyPageUp
	KeyPageDown
	KeyInsert
	KeyDelete
	KeyBackspace
	KeyTab
	KeyEnter
	KeyEscape
	KeyF1
	KeyF2
	KeyF3
	KeyF4
	KeyF5
	KeyF6
	KeyF7
	KeyF8
	KeyF9
	KeyF10
	KeyF11
	KeyF12
)

// Mod is a set of modifier keys. Meta is what Option sends when the "Option
// as Meta" setting is on; without it the view passes Option's composed
// character as text.
type Mod uint8

const (
	ModShift Mod = 1 << iota
	ModAlt
	ModCtrl
)

// xtermMod is the modifier parameter xterm puts in CSI 1;m X sequences.
func xtermMod(m Mod) int {
	v := 1
	if m&ModShift != 0 {
		v++
	}
	if m&ModAlt != 0 {
		v += 2
	}
	if m&ModCtrl != 0 {
		v += 4
	}
	return v
}

// EncodeKey returns the bytes a special key sends, following xterm (the
// terminal model advertises itself as xterm-256color).
func EncodeKey(k Key, m Mod, modes Modes) []byte {
	mod := xtermMod(m)
	ss3OrCSI := func(final byte) []byte {
		if mod > 1 {
			return []byte("\x1b[1;" + strconv.Itoa(mod) + string(final))
		}
		if modes.AppCursor {
			return []byte{0x1b, 'O', final}
		}
		return []byte{0x1b, '[', final}
	}
	tilde := func(n int) []byte {
		if mod > 1 {
			return []byte("\x1b[" + strconv.Itoa(n) + ";" + strconv.Itoa(mod) + "~")
		}
		return []byte("\x1b[" + strconv.Itoa(n) + "~")
	}
	alt := func(b []byte) []byte {
		if m&ModAlt != 0 {
			return append([]byte{0x1b}, b...)
		}
		return b
	}
	switch k {
	case KeyUp:
		return ss3OrCSI('A')
	case KeyDown:
		return ss3OrCSI('B')
	case KeyRight:
		return ss3OrCSI('C')
	case KeyLeft:
		return ss3OrCSI('D')
	case KeyHome:
		return ss3OrCSI('H')
	case KeyEnd:
		return ss3OrCSI('F')
	case KeyInsert:
		return tilde(2)
	case KeyDelete:
		return tilde(3)
	case KeyPageUp:
		return tilde(5)
	case KeyPageDown:
		return tilde(6)
	case KeyF1, KeyF2, KeyF3, KeyF4:
		final := byte('P' + (k - KeyF1))
		if mod > 1 {
			return []byte("\x1b[1;" + strconv.Itoa(mod) + string(final))
		}
		return []byte{0x1b, 'O', final}
	case KeyF5, KeyF6, KeyF7, KeyF8, KeyF9, KeyF10, KeyF11, KeyF12:
		codes := [...]int{15, 17, 18, 19, 20, 21, 23, 24}
		return tilde(codes[k-KeyF5])
	case KeyBackspace:
		if m&ModCtrl != 0 {
			return alt([]byte{0x08})
		}
		return alt([]byte{0x7f})
	case KeyTab:
		if m&ModShift != 0 {
			return []byte("\x1b[Z")
		}
		return alt([]byte{'\t'})
	case KeyEnter:
		if modes.NewlineMode {
			return alt([]byte("\r\n"))
		}
		return alt([]byte{'\r'})
	case KeyEscape:
		return alt([]byte{0x1b})
	}
	return nil
}

// EncodeText returns the bytes for typed text with modifiers: Ctrl turns
// a letter or one of @[\]^_? into its control code, Meta (Alt) prefixes ESC.
func EncodeText(s string, m Mod) []byte {
	var b []byte
	if m&ModCtrl != 0 && utf8.RuneCountInString(s) == 1 {
		r, _ := utf8.DecodeRuneInString(s)
		switch {
		case r >= 'a' && r <= 'z':
			s = string(r - 'a' + 1)
		case r >= '@' && r <= '_':
			s = string(r - '@')
		case r == ' ' || r == '2':
			s = "\x00"
		case r == '/':
			s = "\x1f"
		case r == '?':
			s = "\x7f"
		}
	}
	if m&ModAlt != 0 {
		b = append(b, 0x1b)
	}
	return append(b, s...)
}

// EncodePaste returns pasted text as the program should receive it: line
// breaks as CR (what Enter sends), and wrapped in bracketed-paste markers
// when the program asked for them. Escape characters are removed so pasted
// text can never end the bracket early and inject keystrokes.
func EncodePaste(text string, modes Modes) []byte {
	text = strings.ReplaceAll(text, "\r\n", "\r")
	text = strings.ReplaceAll(text, "\n", "\r")
	if modes.BracketedPaste {
		text = strings.ReplaceAll(text, "\x1b", "")
		return []byte("\x1b[200~" + text + "\x1b[201~")
	}
	return []byte(text)
}

// EncodeFocus returns the focus in/out report if the program asked for it.
func EncodeFocus(focused bool, modes Modes) []byte {
	if !modes.FocusEvents {
		return nil
	}
	if focused {
		return []byte("\x1b[I")
	}
	return []byte("\x1b[O")
}

// MouseButton identifies the button of a mouse event.
type MouseButton uint8

const (
	MouseLeft MouseButton = iota
	MouseMiddle
	MouseRight
	MouseNone // motion without a button, or a release in the X10 encoding
	MouseWheelUp
	MouseWheelDown
)

// MouseAction is what happened.
type MouseAction uint8

const (
	MousePress MouseAction = iota
	MouseRelease
	MouseMotion
)

// EncodeMouse returns the report for a mouse event at cell (x, y) (0-based)
// or nil if the program's mouse mode does not want it.
func EncodeMouse(btn MouseButton, act MouseAction, x, y int, m Mod, modes Modes) []byte {
	switch modes.Mouse {
	case MouseOff:
		return nil
	case MouseX10:
		if act != MousePress {
			return nil
		}
		m = 0
	case MouseNormal:
		if act == MouseMotion {
			return nil
		}
	case MouseDrag:
		if act == MouseMotion && btn == MouseNone {
			return nil
		}
	}
	var code int
	switch btn {
	case MouseLeft, MouseMiddle, MouseRight:
		code = int(btn)
	case MouseNone:
		code = 3
	case MouseWheelUp:
		code = 64
	case MouseWheelDown:
		code = 65
	}
	if act == MouseRelease && modes.MouseEnc != MouseEncSGR {
		code = 3
	}
	if act == MouseMotion {
		code += 32
	}
	if m&ModShift != 0 {
		code += 4
	}
	if m&ModAlt != 0 {
		code += 8
	}
	if m&ModCtrl != 0 {
		code += 16
	}
	x, y = x+1, y+1
	switch modes.MouseEnc {
	case MouseEncSGR:
		final := "M"
		if act == MouseRelease {
			final = "m"
		}
		return []byte("\x1b[<" + strconv.Itoa(code) + ";" + strconv.Itoa(x) + ";" + strconv.Itoa(y) + final)
	case MouseEncURXVT:
		return []byte("\x1b[" + strconv.Itoa(code+32) + ";" + strconv.Itoa(x) + ";" + strconv.Itoa(y) + "M")
	case MouseEncUTF8:
		b := []byte("\x1b[M")
		b = utf8.AppendRune(b, rune(code+32))
		b = utf8.AppendRune(b, rune(min(x+32, 2047)))
		return utf8.AppendRune(b, rune(min(y+32, 2047)))
	}
	// Legacy encoding cannot express coordinates past 223.
	if x > 223 || y > 223 {
		return nil
	}
	return []byte{0x1b, '[', 'M', byte(code + 32), byte(x + 32), byte(y + 32)}
}
