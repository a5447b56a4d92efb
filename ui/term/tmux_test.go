package term

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Synthetic streams exercising one feature each.
var synthetic = map[string]string{
	"sgr": "plain \x1b[1mbold\x1b[22m \x1b[2mfaint\x1b[0m \x1b[3mitalic\x1b[23m \x1b[4munder\x1b[24m \x1b[4:3mcurly\x1b[0m \x1b[21mdouble\x1b[0m " +
		"\x1b[5mblink\x1b[25m \x1b[7mrev\x1b[27m \x1b[8mhid\x1b[28m \x1b[9mstrike\x1b[29m \x1b[53mover\x1b[55m\r\n" +
		"\x1b[31mred\x1b[92mbrightgreen\x1b[44mbluebg\x1b[103myellowbg\x1b[39;49m\r\n" +
		"\x1b[38;5;196m256red\x1b[48;5;21m256bg\x1b[38;2;10;200;30mtrue\x1b[48;2;1;2;3mtruebg\x1b[m\r\n" +
		"\x1b[38:2::255:128:0mcolon-true\x1b[38:5:99mcolon-256\x1b[0m\x1b[1;4;31;42mcombo\x1b[0m\r\n",
	"wrap":   strings.Repeat("0123456789", 25) + "\r\nnext\r\n" + strings.Repeat("x", 80) + "y\r\n",
	"nowrap": "\x1b[?7l" + strings.Repeat("abcdefghij", 10) + "\x1b[?7h\r\nafter",
	"scroll-region": func() string {
		var b strings.Builder
		for i := 0; i < 24; i++ {
			fmt.Fprintf(&b, "line %d\r\n", i)
		}
		b.WriteString("\x1b[5;15r\x1b[15;1H")
		for i := 0; i < 7; i++ {
			fmt.Fprintf(&b, "\nregion %d", i)
		}
		b.WriteString("\x1b[5;1H\x1bM\x1bMrev\x1b[r\x1b[24;1Hend")
		return b.String()
	}(),
	"insert-delete": "abcdefghij\r\n1234567890\r\nline3\r\nline4\r\n\x1b[1;3H\x1b[2@XY\x1b[2;3H\x1b[3P\x1b[3;1H\x1b[L\x1b[1;1H\x1b[M\x1b[3;2H\x1b[4X" +
		"\x1b[4;1H\x1b[4hINS\x1b[4l",
	"erase": "\x1b[41m" + strings.Repeat("fill line with text\r\n", 6) + "\x1b[3;5H\x1b[K\x1b[4;5H\x1b[1K\x1b[44m\x1b[5;1H\x1b[2K\x1b[1;10H\x1b[1J\x1b[6;3H\x1b[0J\x1b[m",
	"tabs":  "a\tb\tc\r\n\x1b[3g\x1b[5GX\x1bH\x1b[1G\tY\r\n\x1b[10G\x1b[Zback\tz", // tmux 3.3a ignores CHT (CSI I), so it is not used,
	"cursor": "\x1b[10;20Hmid\x1b[3Aup\x1b[2Bdn\x1b[5Crt\x1b[4Dlf\x1b[2Enl\x1b[Fpl\x1b[30Gcol\x1b[20dvpa\x1b7\x1b[1;1Hsave\x1b8restored" +
		"\x1b[s\x1b[2;2Hx\x1b[urest2\x1b[999;999Hcorner",
	"origin": "\x1b[5;10r\x1b[?6h\x1b[1;1Horigin-top\x1b[99;1Horigin-bottom\x1b[?6l\x1b[r\x1b[1;1Hhome",
	"utf8": "héllo wörld ñ — “quotes” ✓ ☃\r\nCJK: 中文字符 日本語 한국어\r\nemoji: 😀🎉👍 ok\r\ncombining: e\u0301 a\u0308 n\u0303 x\u20dd\r\n" +
		"wide at edge:" + strings.Repeat("-", 66) + "中x\r\n",
	"acs":            "\x1b(0lqqqwqqqk\r\nx   x   x\r\ntqqqnqqqu\r\nmqqqvqqqj\x1b(B ascii\r\n\x0e\x1b)0lqk\x0f back",
	"alt-screen":     "main text\r\nsecond\x1b[?1049h\x1b[Halt screen\x1b[5;5Hbox\x1b[?1049lback",
	"alt-stay":       "main\x1b[?1049h\x1b[2J\x1b[Halt content\x1b[?25l\x1b[?1h\x1b=\x1b[?1000h\x1b[?1006h",
	"modes":          "\x1b[?1002h\x1b[?7l\x1b[4hx",
	"overwrite-wide": "中文中文\r\n\x1b[1;3Hx\x1b[2;1H中文\x1b[2;1Hab",
	"rep":            "ab\x1b[5bc",
	"decaln":         "\x1b#8\x1b[3;3Hhello",
	"scroll-history": func() string {
		var b strings.Builder
		for i := 0; i < 100; i++ {
			fmt.Fprintf(&b, "\x1b[3%dmhistory line %d %s\x1b[m\r\n", i%8, i, strings.Repeat("=", i%90))
		}
		return b.String()
	}(),
	"su-sd":             "1\r\n2\r\n3\r\n4\r\n\x1b[2S\x1b[1T",
	"bce":               "\x1b[42m\x1b[2J\x1b[Hgreen screen\x1b[m",
	"bs-at-margin":      strings.Repeat("z", 80) + "\bq\r\n" + strings.Repeat("y", 80) + "\r\nafter",
	"reverse-index-top": "top\x1bM\x1bMnew top",
}

func TestTmuxSynthetic(t *testing.T) {
	for name, data := range synthetic {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			compareWithTmux(t, 80, 24, []byte(data))
		})
	}
}

func TestTmuxLsColor(t *testing.T) {
	t.Parallel()
	requireTool(t, "ls", "coreutils")
	dir := t.TempDir()
	for _, n := range []string{"a.tar", "b.png", "exe", "link", "sub", "ünïcode-名前"} {
		os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644)
	}
	os.Chmod(filepath.Join(dir, "exe"), 0o755)
	os.Remove(filepath.Join(dir, "sub"))
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.Remove(filepath.Join(dir, "link"))
	os.Symlink("a.tar", filepath.Join(dir, "link"))
	data := record(t, 80, 24, []string{"sh", "-c", "ls --color=always -la " + dir + " /usr/bin | head -60"}, nil, nil)
	if !strings.Contains(string(data), "\x1b[") {
		t.Fatalf("ls wrote no colours: %q", data[:min(len(data), 200)])
	}
	compareWithTmux(t, 80, 24, data)
}

func TestTmuxVim(t *testing.T) {
	t.Parallel()
	vim := requireTool(t, "vim", "vim")
	dir := t.TempDir()
	file := filepath.Join(dir, "demo.go")
	var src strings.Builder
	src.WriteString("package main\n\nimport \"fmt\"\n\n// 中文 comment with ümlaut and emoji 😀\nfunc main() {\n")
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&src, "\tfmt.Println(%d, \"a fairly long string literal that will wrap past the edge of an eighty column window\")\n", i)
	}
	src.WriteString("}\n")
	os.WriteFile(file, []byte(src.String()), 0o644)
	argv := []string{vim, "-u", "NONE", "-i", "NONE", "-N", "-n", "-c", "syntax on", "-c", "set nu ruler laststatus=2", file}
	steps := []step{
		{wait: 800 * time.Millisecond},
		{wait: 100 * time.Millisecond, input: "10j"},
		{wait: 100 * time.Millisecond, input: "oinserted line 挿入 \x1b"},
		{wait: 100 * time.Millisecond, input: ":vsplit\r"},
		{wait: 200 * time.Millisecond, input: "\x06"}, // page down
		{wait: 300 * time.Millisecond},
	}
	data := record(t, 80, 24, argv, nil, steps)
	m := compareWithTmux(t, 80, 24, data)
	if !m.Modes().AltScreen {
		t.Errorf("vim should be on the alternate screen")
	}
	// And after quitting: back on the main screen.
	data = record(t, 80, 24, argv, nil, append(steps, step{wait: 100 * time.Millisecond, input: ":qa!\r"}, step{wait: 300 * time.Millisecond}))
	compareWithTmux(t, 80, 24, data)
}

func TestTmuxTop(t *testing.T) {
	t.Parallel()
	top := requireTool(t, "top", "procps")
	data := record(t, 100, 30, []string{top, "-d", "0.3", "-n", "3"}, nil, []step{{wait: 1500 * time.Millisecond}})
	compareWithTmux(t, 100, 30, data)
}

func TestTmuxLess(t *testing.T) {
	t.Parallel()
	less := requireTool(t, "less", "less")
	dir := t.TempDir()
	file := filepath.Join(dir, "f.txt")
	var b strings.Builder
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&b, "%03d \x1b[3%dmcoloured\x1b[0m text 中文 %s\n", i, i%8, strings.Repeat("long ", i%30))
	}
	os.WriteFile(file, []byte(b.String()), 0o644)
	data := record(t, 80, 24, []string{less, "-R", file}, nil, []step{
		{wait: 500 * time.Millisecond}, {wait: 100 * time.Millisecond, input: " "}, {wait: 100 * time.Millisecond, input: "/text 中\r"},
		{wait: 300 * time.Millisecond},
	})
	compareWithTmux(t, 80, 24, data)
}

func TestTmuxBusybox(t *testing.T) {
	t.Parallel()
	bb := requireTool(t, "busybox", "busybox-static")
	dir := t.TempDir()
	file := filepath.Join(dir, "f.txt")
	os.WriteFile(file, []byte(strings.Repeat("busybox vi line with some text\n", 40)), 0o644)
	t.Run("vi", func(t *testing.T) {
		data := record(t, 80, 24, []string{bb, "vi", file}, nil, []step{
			{wait: 500 * time.Millisecond}, {wait: 100 * time.Millisecond, input: "5jddOnew line\x1b"}, {wait: 300 * time.Millisecond},
		})
		compareWithTmux(t, 80, 24, data)
	})
	t.Run("top", func(t *testing.T) {
		data := record(t, 80, 24, []string{bb, "top", "-d", "1", "-n", "2"}, nil, []step{{wait: 1500 * time.Millisecond}})
		compareWithTmux(t, 80, 24, data)
	})
}

// Resizing reflows the main screen; tmux does too, so the result after a
// resize is compared the same way.
func TestTmuxResize(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&b, "\x1b[3%dm%02d %s\x1b[m\r\n", i%8, i, strings.Repeat("word ", i%25))
	}
	b.WriteString("$ prompt")
	data := []byte(b.String())
	cases := map[string][][2]int{
		"narrower":         {{50, 24}},
		"wider":            {{120, 24}},
		"shorter":          {{80, 10}},
		"taller":           {{80, 40}},
		"narrow-then-wide": {{40, 24}, {100, 24}},
		"both":             {{60, 30}},
	}
	for name, rs := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			compareWithTmux(t, 80, 24, data, rs...)
		})
	}
	// Wide characters across the rewrap points, and a cursor mid-screen.
	var w strings.Builder
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&w, "%02d %s|\r\n", i, strings.Repeat("中文字", i%9+1))
	}
	w.WriteString("\x1b[10;5Hcursor here")
	for _, rs := range [][][2]int{{{33, 24}}, {{47, 20}, {120, 30}}} {
		t.Run(fmt.Sprint("wide", rs), func(t *testing.T) {
			t.Parallel()
			compareWithTmux(t, 80, 24, []byte(w.String()), rs...)
		})
	}
	// The alternate screen is cut, not reflowed; the main screen under it is.
	alt := string(data) + "\x1b[?1049h\x1b[H" + strings.Repeat("full screen program line\r\n", 20) + "\x1b[5;70Hedge"
	t.Run("alt-screen", func(t *testing.T) {
		t.Parallel()
		compareWithTmux(t, 80, 24, []byte(alt), [2]int{60, 20})
	})
}

func TestTmuxHtop(t *testing.T) {
	t.Parallel()
	htop := requireTool(t, "htop", "htop")
	data := record(t, 120, 40, []string{htop, "-d", "5"}, nil, []step{
		{wait: 1500 * time.Millisecond},
		{wait: 100 * time.Millisecond, input: "\x1b[B\x1b[B"}, // select a process
		{wait: 100 * time.Millisecond, input: "t"},            // tree view
		{wait: 500 * time.Millisecond, input: "\x1bOQ"},       // F2: setup screen
		{wait: 500 * time.Millisecond},
	})
	compareWithTmux(t, 120, 40, data)
}
