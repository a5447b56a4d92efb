package term

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestSplitUTF8AcrossWrites(t *testing.T) {
	m := New(20, 2, 0)
	s := []byte("ä中😀x")
	for i := range s {
		m.Write(s[i : i+1])
	}
	if got := m.Line(0).String(); got != "ä中😀x" {
		t.Fatalf("got %q", got)
	}
	if x, _ := m.Cursor(); x != 6 {
		t.Fatalf("cursor at %d, want 6 (1+2+2+1)", x)
	}
	// An invalid sequence becomes U+FFFD and does not swallow what follows.
	m = New(20, 2, 0)
	m.Write([]byte("a\xe4\x1b[31mb"))
	if got := m.Line(0).String(); got != "a\uFFFDb" {
		t.Fatalf("got %q", got)
	}
	if m.Cell(2, 0).Fg != Indexed(1) {
		t.Fatalf("escape after broken UTF-8 was lost")
	}
}

func TestOverwriteWideTail(t *testing.T) {
	// Writing over the second half of a wide character blanks its first half
	// (xterm); tmux 3.3a leaves a stale half in its captures, so this case is
	// checked here rather than against tmux.
	m := New(10, 1, 0)
	m.Write([]byte("中文\x1b[1;2Hx"))
	if got := m.Line(0).String(); got != " x文" {
		t.Fatalf("got %q", got)
	}
}

func TestRepliesToQueries(t *testing.T) {
	m := New(80, 24, 0)
	var out bytes.Buffer
	m.SetReply(func(b []byte) { out.Write(b) })
	m.Write([]byte("\x1b[5;7H\x1b[6n\x1b[c\x1b[>c\x1b[5n\x1b[?2004$p\x1b]11;?\x07"))
	want := "\x1b[5;7R\x1b[?62;22c\x1b[>1;10;0c\x1b[0n\x1b[?2004;2$y\x1b]11;rgb:0000/0000/0000\x1b\\"
	if out.String() != want {
		t.Fatalf("replies %q, want %q", out.String(), want)
	}
}

func TestDirtyRows(t *testing.T) {
	m := New(10, 5, 0)
	m.TakeDirty()
	m.Write([]byte("\x1b[3;1Hx"))
	if d := m.TakeDirty(); fmt.Sprint(d) != "[2]" {
		t.Fatalf("dirty %v, want [2]", d)
	}
	if d := m.TakeDirty(); len(d) != 0 {
		t.Fatalf("dirty twice: %v", d)
	}
	m.Write([]byte("\x1b[5;1H\n"))
	if d := m.TakeDirty(); len(d) != 5 {
		t.Fatalf("a scroll dirties every row, got %v", d)
	}
}

func TestScrollbackBounded(t *testing.T) {
	m := New(20, 5, 100)
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(m, "line %d\r\n", i)
	}
	if m.HistoryRows() != 100 {
		t.Fatalf("history %d rows, want 100", m.HistoryRows())
	}
	if got := m.HistoryLine(0).String(); got != "line 896" {
		t.Fatalf("oldest kept %q", got)
	}
	if got := m.HistoryLine(99).String(); got != "line 995" {
		t.Fatalf("newest %q", got)
	}
	m.Write([]byte("\x1b[3J"))
	if m.HistoryRows() != 0 {
		t.Fatal("ED 3 should clear history")
	}
}

func TestSelectionText(t *testing.T) {
	m := New(10, 4, 0)
	m.Write([]byte("hello   \r\n" + "0123456789abc\r\n中文 x"))
	hr := m.HistoryRows()
	// Across a wrapped row: no newline; across a real line end: newline.
	got := m.SelectionText(Pos{hr + 0, 0}, Pos{hr + 2, 1})
	if got != "hello\n0123456789ab" {
		t.Fatalf("got %q", got)
	}
	if got := m.SelectionText(Pos{hr + 3, 0}, Pos{hr + 3, 9}); got != "中文 x" {
		t.Fatalf("got %q", got)
	}
	s, e := m.WordAt(Pos{hr + 1, 4})
	if s.Col != 0 || e.Col != 9 {
		t.Fatalf("word %v-%v", s, e)
	}
}

func TestKeyEncoding(t *testing.T) {
	n := Modes{}
	app := Modes{AppCursor: true}
	cases := []struct {
		k    Key
		m    Mod
		md   Modes
		want string
	}{
		{KeyUp, 0, n, "\x1b[A"}, {KeyUp, 0, app, "\x1bOA"}, {KeyLeft, ModCtrl, app, "\x1b[1;5D"},
		{KeyRight, ModShift | ModAlt, n, "\x1b[1;4C"}, {KeyHome, 0, n, "\x1b[H"}, {KeyEnd, 0, app, "\x1bOF"},
		{KeyF1, 0, n, "\x1bOP"}, {KeyF4, ModShift, n, "\x1b[1;2S"}, {KeyF5, 0, n, "\x1b[15~"}, {KeyF12, ModCtrl, n, "\x1b[24;5~"},
		{KeyDelete, 0, n, "\x1b[3~"}, {KeyPageDown, ModShift, n, "\x1b[6;2~"}, {KeyBackspace, 0, n, "\x7f"},
		{KeyBackspace, ModAlt, n, "\x1b\x7f"}, {KeyTab, ModShift, n, "\x1b[Z"}, {KeyEnter, 0, n, "\r"},
		{KeyEnter, 0, Modes{NewlineMode: true}, "\r\n"}, {KeyEscape, 0, n, "\x1b"},
	}
	for _, c := range cases {
		if got := string(EncodeKey(c.k, c.m, c.md)); got != c.want {
			t.Errorf("key %d mod %d: %q, want %q", c.k, c.m, got, c.want)
		}
	}
	text := []struct {
		s    string
		m    Mod
		want string
	}{{"c", ModCtrl, "\x03"}, {"C", ModCtrl, "\x03"}, {"[", ModCtrl, "\x1b"}, {" ", ModCtrl, "\x00"}, {"x", ModAlt, "\x1bx"},
		{"é", 0, "é"}, {"b", ModCtrl | ModAlt, "\x1b\x02"}}
	for _, c := range text {
		if got := string(EncodeText(c.s, c.m)); got != c.want {
			t.Errorf("text %q mod %d: %q, want %q", c.s, c.m, got, c.want)
		}
	}
}

func TestPasteAndMouse(t *testing.T) {
	if got := string(EncodePaste("a\nb\x1b[201~rm -rf /\r\n", Modes{BracketedPaste: true})); got != "\x1b[200~a\rb[201~rm -rf /\r\x1b[201~" {
		t.Fatalf("bracketed paste %q", got)
	}
	if got := string(EncodePaste("a\nb", Modes{})); got != "a\rb" {
		t.Fatalf("paste %q", got)
	}
	sgr := Modes{Mouse: MouseNormal, MouseEnc: MouseEncSGR}
	if got := string(EncodeMouse(MouseLeft, MousePress, 4, 2, 0, sgr)); got != "\x1b[<0;5;3M" {
		t.Fatalf("sgr press %q", got)
	}
	if got := string(EncodeMouse(MouseLeft, MouseRelease, 4, 2, ModCtrl, sgr)); got != "\x1b[<16;5;3m" {
		t.Fatalf("sgr release %q", got)
	}
	if EncodeMouse(MouseNone, MouseMotion, 1, 1, 0, sgr) != nil {
		t.Fatal("1000 mode must not report motion")
	}
	drag := Modes{Mouse: MouseDrag}
	if got := EncodeMouse(MouseLeft, MouseMotion, 0, 0, 0, drag); string(got) != "\x1b[M@!!" {
		t.Fatalf("drag %q", got)
	}
	if EncodeMouse(MouseWheelUp, MousePress, 300, 1, 0, drag) != nil {
		t.Fatal("legacy encoding cannot report column 301")
	}
	if got := string(EncodeMouse(MouseWheelDown, MousePress, 0, 0, 0, Modes{Mouse: MouseAny, MouseEnc: MouseEncSGR})); got != "\x1b[<65;1;1M" {
		t.Fatalf("wheel %q", got)
	}
	if EncodeMouse(MouseLeft, MousePress, 0, 0, 0, Modes{}) != nil {
		t.Fatal("mouse off must not report")
	}
}

func TestResizeKeepsHistoryAndCursor(t *testing.T) {
	m := New(80, 24, 0)
	for i := 0; i < 200; i++ {
		fmt.Fprintf(m, "%03d %s\r\n", i, strings.Repeat("ab", 30))
	}
	m.Write([]byte("$ "))
	for _, sz := range [][2]int{{30, 10}, {200, 60}, {3, 2}, {80, 24}} {
		m.Resize(sz[0], sz[1])
		x, y := m.Cursor()
		if got := m.Line(y).String(); !strings.HasPrefix(got, "$") || x != 2 {
			t.Fatalf("after %v cursor (%d,%d) on %q", sz, x, y, got)
		}
	}
	// Every line survives the round trip, in order.
	var all []string
	for r := 0; r < m.HistoryRows()+24; r++ {
		l := m.Row(r)
		all = append(all, l.String())
		if !l.Wrapped {
			all = append(all, "\n")
		}
	}
	text := strings.Join(all, "")
	for i := 0; i < 200; i++ {
		want := fmt.Sprintf("%03d %s\n", i, strings.Repeat("ab", 30))
		if !strings.Contains(text, want) {
			t.Fatalf("line %d lost after resizes", i)
		}
	}
}

func TestAltScreenResizeAndRestore(t *testing.T) {
	m := New(20, 5, 0)
	m.Write([]byte("shell$ vi\x1b[?1049h\x1b[Hfull screen"))
	m.Resize(10, 3)
	m.Write([]byte("\x1b[?1049l"))
	if got := m.Line(0).String(); got != "shell$ vi" {
		t.Fatalf("main screen after alt resize: %q", got)
	}
}

// FuzzWrite: arbitrary output never panics the model and keeps its
// invariants (cursor on screen, every row exactly the width).
func FuzzWrite(f *testing.F) {
	for _, s := range synthetic {
		f.Add([]byte(s), uint8(80), uint8(24))
	}
	f.Add([]byte("\x1b[?1049h\x1b[1;999r\x1b[999@\x1b[999P\x1b[999L"), uint8(3), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, w, h uint8) {
		m := New(int(w%200)+1, int(h%60)+1, 50)
		m.SetReply(func([]byte) {})
		half := len(data) / 2
		m.Write(data[:half])
		m.Resize(int(h%150)+1, int(w%50)+1)
		m.Write(data[half:])
		cw, ch := m.Size()
		x, y := m.Cursor()
		if x < 0 || x >= cw || y < 0 || y >= ch {
			t.Fatalf("cursor (%d,%d) outside %dx%d", x, y, cw, ch)
		}
		for r := 0; r < ch; r++ {
			if len(m.Line(r).Cells) != cw {
				t.Fatalf("row %d has %d cells, width %d", r, len(m.Line(r).Cells), cw)
			}
		}
		for r := 0; r < m.HistoryRows(); r++ {
			if len(m.HistoryLine(r).Cells) > cw {
				t.Fatalf("history row %d wider than %d", r, cw)
			}
		}
		_ = m.SelectionText(Pos{0, 0}, Pos{m.HistoryRows() + ch, cw})

		// The fast paths must agree with the byte-at-a-time parser.
		if len(data) < 2000 {
			whole, bytewise := New(40, 10, 20), New(40, 10, 20)
			whole.Write(data)
			for i := range data {
				bytewise.Write(data[i : i+1])
			}
			if err := sameScreen(whole, bytewise); err != "" {
				t.Fatal(err)
			}
		}
	})
}

// Writing a stream whole or one byte at a time (which defeats the fast
// paths for printable runs and CSI) must give the same screen.
func TestFastPathsMatchParser(t *testing.T) {
	for name, s := range synthetic {
		whole, bytewise := New(80, 24, 100), New(80, 24, 100)
		whole.Write([]byte(s))
		for i := 0; i < len(s); i++ {
			bytewise.Write([]byte{s[i]})
		}
		if err := sameScreen(whole, bytewise); err != "" {
			t.Errorf("%s: %s", name, err)
		}
	}
}

func sameScreen(a, b *Terminal) string {
	ax, ay := a.Cursor()
	bx, by := b.Cursor()
	if ax != bx || ay != by || a.Modes() != b.Modes() || a.HistoryRows() != b.HistoryRows() {
		return fmt.Sprintf("cursor/modes/history differ: (%d,%d) %+v %d vs (%d,%d) %+v %d", ax, ay, a.Modes(), a.HistoryRows(), bx, by, b.Modes(), b.HistoryRows())
	}
	_, h := a.Size()
	for y := 0; y < h; y++ {
		la, lb := a.Line(y), b.Line(y)
		if la.Wrapped != lb.Wrapped {
			return fmt.Sprintf("row %d wrapped flag differs", y)
		}
		for x := range la.Cells {
			if la.Cells[x] != lb.Cells[x] {
				return fmt.Sprintf("row %d col %d: %+v vs %+v", y, x, la.Cells[x], lb.Cells[x])
			}
		}
	}
	return ""
}
