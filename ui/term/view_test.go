package term

import (
	"fmt"
	"testing"
)

func TestRuns(t *testing.T) {
	m := New(20, 2, 0)
	m.Write([]byte("ab\x1b[31mcd\x1b[m 中é\x1b[7m  \x1b[m"))
	runs := Runs(m.Line(0).Cells, nil, nil)
	var got string
	for _, r := range runs {
		got += fmt.Sprintf("[%d+%d %q b=%v]", r.Col, r.Cols, r.Text, r.Blank)
	}
	want := `[0+2 "ab" b=false][2+2 "cd" b=false][4+1 " " b=true][5+2 "中" b=false][7+1 "é" b=false][8+2 "  " b=true][10+10 "          " b=true]`
	if got != want {
		t.Fatalf("runs\n got %s\nwant %s", got, want)
	}
	// Selection splits runs and reverses.
	runs = Runs(m.Line(0).Cells, func(c int) bool { return c == 1 }, nil)
	if runs[0].Text != "a" || runs[1].Text != "b" || runs[1].Style.A&Reverse == 0 {
		t.Fatalf("selection runs %+v", runs[:2])
	}
}

func TestStyleColors(t *testing.T) {
	fgD, bgD := [3]uint8{200, 200, 200}, [3]uint8{10, 10, 10}
	fg, bg := Style{Fg: Indexed(1), A: Bold}.Colors(fgD, bgD, false)
	if fg != [3]uint8{255, 0, 0} || bg != bgD {
		t.Fatalf("bold red: %v %v", fg, bg)
	}
	fg, bg = Style{A: Reverse}.Colors(fgD, bgD, false)
	if fg != bgD || bg != fgD {
		t.Fatal("reverse")
	}
	fg, _ = Style{Fg: RGB(1, 2, 3)}.Colors(fgD, bgD, false)
	if fg != [3]uint8{1, 2, 3} {
		t.Fatal("truecolour")
	}
	if fg, bg := (Style{A: Invisible}).Colors(fgD, bgD, false); fg != bg {
		t.Fatal("invisible")
	}
}

func TestEncodeKeyPress(t *testing.T) {
	n := Modes{}
	cases := []struct {
		k    KeyPress
		meta bool
		want string
	}{
		{KeyPress{Code: 126}, false, "\x1b[A"},
		{KeyPress{Code: 126, Option: true}, true, "\x1b[1;3A"},
		{KeyPress{Code: 0, Chars: "a", CharsNoMod: "a"}, false, "a"},
		{KeyPress{Code: 0, Chars: "å", CharsNoMod: "a", Option: true}, false, "å"},
		{KeyPress{Code: 0, Chars: "å", CharsNoMod: "a", Option: true}, true, "\x1ba"},
		{KeyPress{Code: 0, Chars: "Å", CharsNoMod: "a", Option: true, Shift: true}, true, "\x1bA"},
		{KeyPress{Code: 8, Chars: "\x03", CharsNoMod: "c", Ctrl: true}, false, "\x03"},
		{KeyPress{Code: 51}, false, "\x7f"},
		{KeyPress{Code: 51, Option: true}, true, "\x1b\x7f"},
		{KeyPress{Code: 122}, false, "\x1bOP"},
		{KeyPress{Code: 111, Shift: true}, false, "\x1b[24;2~"},
		{KeyPress{Code: 8, Chars: "c", CharsNoMod: "c", Command: true}, false, ""},
		{KeyPress{Code: 36}, false, "\r"},
		{KeyPress{Code: 0, Chars: "A", CharsNoMod: "a", Shift: true}, false, "A"},
	}
	for i, c := range cases {
		if got := string(EncodeKeyPress(c.k, c.meta, n)); got != c.want {
			t.Errorf("%d %+v meta=%v: %q, want %q", i, c.k, c.meta, got, c.want)
		}
	}
	if cols, rows := GridSize(808, 488, 10, 20, 4); cols != 80 || rows != 24 {
		t.Fatalf("grid %dx%d", cols, rows)
	}
}
