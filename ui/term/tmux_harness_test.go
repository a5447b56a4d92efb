package term

// Differential tests: the same byte stream goes to tmux (a terminal nobody
// here wrote) and to the model, and the visible screens must agree cell by
// cell on text and on every attribute tmux reports.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

func requireTool(t testing.TB, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %q (packaging/setup-linux.sh)", tool, pkg)
	}
	return p
}

// tcell is one cell as tmux reports it.
type tcell struct {
	text  string
	fg    Color
	bg    Color
	attrs Attr
}

type tmuxState struct {
	rows  [][]tcell
	flags map[string]string
}

const tmuxFlags = "cursor_x cursor_y alternate_on cursor_flag keypad_cursor_flag keypad_flag insert_flag origin_flag wrap_flag " +
	"mouse_standard_flag mouse_button_flag mouse_any_flag mouse_all_flag mouse_sgr_flag scroll_region_upper scroll_region_lower history_size"

// tmuxRun feeds data to a fresh tmux pane of w×h and returns what it shows.
func tmuxRun(t testing.TB, w, h int, data []byte, resizes ...[2]int) tmuxState {
	t.Helper()
	requireTool(t, "tmux", "tmux")
	dir := t.TempDir()
	in := filepath.Join(dir, "in.bin")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	conf := filepath.Join(dir, "tmux.conf") // nothing from the machine's config
	if err := os.WriteFile(conf, []byte("set -g history-limit 10000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tm := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("tmux", append([]string{"-S", sock, "-f", conf}, args...)...)
		cmd.Env = append(os.Environ(), "TMUX=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	// The pane's tty must pass bytes through untouched (no LF->CRLF).
	// After the stream, a title change (invisible in the pane) tells us
	// tmux has processed every byte before it: waiting for `cat` to exit
	// is not enough, tmux reads the pane's output asynchronously. CAN
	// first ends any sequence a recording was cut in the middle of.
	nonce := fmt.Sprintf("fed-%d", time.Now().UnixNano())
	script := fmt.Sprintf("stty raw -echo; cat %s; printf '\\030\\033]2;%s\\033\\\\'; exec sleep 600", in, nonce)
	tm("new-session", "-d", "-x", strconv.Itoa(w), "-y", strconv.Itoa(h), "sh", "-c", script)
	t.Cleanup(func() { exec.Command("tmux", "-S", sock, "kill-server").Run() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if strings.TrimSpace(tm("display-message", "-p", "#{pane_title}")) == nonce {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tmux did not finish reading the stream within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, r := range resizes {
		tm("resize-window", "-t", "0", "-x", strconv.Itoa(r[0]), "-y", strconv.Itoa(r[1]))
		h = r[1]
	}
	st := tmuxState{flags: map[string]string{}}
	names := strings.Fields(tmuxFlags)
	var f strings.Builder
	for _, n := range names {
		f.WriteString("#{" + n + "} ")
	}
	vals := strings.Fields(tm("display-message", "-p", f.String()))
	for i, n := range names {
		if i < len(vals) {
			st.flags[n] = vals[i]
		}
	}
	st.rows = parseCapture(t, tm("capture-pane", "-e", "-p", "-N"), h)
	return st
}

// parseCapture reads `capture-pane -e -p -N` output: text with SGR runs (the
// rendition carries across rows) and SO/SI around DEC line-drawing text.
func parseCapture(t testing.TB, s string, h int) [][]tcell {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	var rows [][]tcell
	var cur tcell
	acs := false
	for _, line := range lines {
		var row []tcell
		for i := 0; i < len(line); {
			switch {
			case line[i] == 0x0e:
				acs = true
				i++
			case line[i] == 0x0f:
				acs = false
				i++
			case line[i] == 0x1b && i+1 < len(line) && line[i+1] == '[':
				j := i + 2
				for j < len(line) && (line[j] < 0x40 || line[j] > 0x7e) {
					j++
				}
				if j < len(line) && line[j] == 'm' {
					applyCaptureSGR(t, &cur, line[i+2:j])
				}
				i = j + 1
			default:
				r, size := decodeRune(line[i:])
				i += size
				c := cur
				if acs && r >= 0x5f && r <= 0x7e {
					r = decGraphics[r-0x5f]
				}
				c.text = string(r)
				// Combining marks follow their base in tmux's output.
				if runeWidth(r) == 0 && len(row) > 0 && r >= 0x300 {
					row[len(row)-1].text += string(r)
					continue
				}
				row = append(row, c)
			}
		}
		rows = append(rows, row)
	}
	for len(rows) < h {
		rows = append(rows, nil)
	}
	return rows
}

func decodeRune(s string) (rune, int) {
	for _, r := range s {
		return r, len(string(r))
	}
	return 0, 1
}

func applyCaptureSGR(t testing.TB, c *tcell, params string) {
	f := strings.Split(params, ";")
	if params == "" {
		f = []string{"0"}
	}
	for i := 0; i < len(f); i++ {
		p := f[i]
		switch p {
		case "0", "":
			*c = tcell{}
		case "1":
			c.attrs |= Bold
		case "2":
			c.attrs |= Faint
		case "3":
			c.attrs |= Italic
		case "4":
			c.attrs |= Underline
		case "4:2":
			c.attrs |= DoubleUnderline
		case "4:3", "4:4", "4:5":
			c.attrs |= CurlyUnderline
		case "5":
			c.attrs |= Blink
		case "7":
			c.attrs |= Reverse
		case "8":
			c.attrs |= Invisible
		case "9":
			c.attrs |= Strike
		case "53", "5:3": // tmux 3.3a writes overline as "5:3"
			c.attrs |= Overline
		case "39":
			c.fg = 0
		case "49":
			c.bg = 0
		case "38", "48", "58":
			var col Color
			if f[i+1] == "5" {
				n, _ := strconv.Atoi(f[i+2])
				col = Indexed(uint8(n))
				i += 2
			} else {
				r, _ := strconv.Atoi(f[i+2])
				g, _ := strconv.Atoi(f[i+3])
				b, _ := strconv.Atoi(f[i+4])
				col = RGB(uint8(r), uint8(g), uint8(b))
				i += 4
			}
			switch p {
			case "38":
				c.fg = col
			case "48":
				c.bg = col
			}
		default:
			n, err := strconv.Atoi(p)
			switch {
			case err != nil:
				t.Fatalf("capture-pane: unknown SGR %q in %q", p, params)
			case n >= 30 && n <= 37:
				c.fg = Indexed(uint8(n - 30))
			case n >= 40 && n <= 47:
				c.bg = Indexed(uint8(n - 40))
			case n >= 90 && n <= 97:
				c.fg = Indexed(uint8(n - 90 + 8))
			case n >= 100 && n <= 107:
				c.bg = Indexed(uint8(n - 100 + 8))
			default:
				t.Fatalf("capture-pane: unknown SGR %q in %q", p, params)
			}
		}
	}
}

func (c tcell) blank() bool { return c.text == " " && c.bg == 0 && c.attrs == 0 }

func modelRow(m *Terminal, y int) []tcell {
	var row []tcell
	for _, c := range m.Line(y).Cells {
		if c.A&WideTail != 0 {
			continue
		}
		row = append(row, tcell{text: c.Text(), fg: c.Fg, bg: c.Bg, attrs: c.A & styleMask})
	}
	return row
}

func trimRow(r []tcell) []tcell {
	for len(r) > 0 && r[len(r)-1].blank() {
		r = r[:len(r)-1]
	}
	return r
}

func b2s(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// compareWithTmux runs data through both terminals at w×h and reports every
// difference.
func compareWithTmux(t *testing.T, w, h int, data []byte, resizes ...[2]int) *Terminal {
	t.Helper()
	return compareWithTmuxOpts(t, w, h, data, true, resizes...)
}

// compareWithTmuxOpts can leave out history_size: after erasing blank rows,
// tmux counts rows it merely touched (its "used" cell extent), which has no
// visible effect and which the model does not track.
func compareWithTmuxOpts(t *testing.T, w, h int, data []byte, history bool, resizes ...[2]int) *Terminal {
	t.Helper()
	want := tmuxRun(t, w, h, data, resizes...)
	m := New(w, h, 10000)
	m.Write(data)
	for _, r := range resizes {
		m.Resize(r[0], r[1])
		w, h = r[0], r[1]
	}
	bad := 0
	for y := 0; y < h; y++ {
		got, exp := modelRow(m, y), trimRow(want.rows[y])
		// tmux reports cells up to the extent of what was written on the
		// row; beyond it (cleared cells) only the background could differ,
		// and capture-pane does not report it. So: exact up to tmux's
		// extent, blank text without attributes after it.
		for x := 0; x < max(len(got), len(exp)); x++ {
			var g, e tcell
			g, e = tcell{text: " "}, tcell{text: " "}
			if x < len(got) {
				g = got[x]
			}
			if x < len(exp) {
				e = exp[x]
			} else {
				g.bg, g.fg = 0, 0
			}
			if g != e {
				t.Errorf("row %d cell %d: model %+v, tmux %+v\nmodel: %q\ntmux:  %q", y, x, g, e, rowText(got), rowText(exp))
				bad++
				break
			}
		}
		if bad > 8 {
			t.Fatal("too many differences")
		}
	}
	x, y := m.Cursor()
	if m.wrapNext {
		x = w // tmux reports a cursor parked past the last column as column w
	}
	md := m.Modes()
	mouseMode := md.Mouse
	got := map[string]string{
		"cursor_x": strconv.Itoa(x), "cursor_y": strconv.Itoa(y),
		"alternate_on": b2s(md.AltScreen), "cursor_flag": b2s(md.CursorVisible),
		"keypad_cursor_flag": b2s(md.AppCursor), "keypad_flag": b2s(md.AppKeypad),
		"insert_flag": b2s(md.Insert), "origin_flag": b2s(md.Origin), "wrap_flag": b2s(md.AutoWrap),
		"mouse_standard_flag": b2s(mouseMode == MouseNormal || mouseMode == MouseX10),
		"mouse_button_flag":   b2s(mouseMode == MouseDrag), "mouse_all_flag": b2s(mouseMode == MouseAny),
		"mouse_any_flag":      b2s(mouseMode != MouseOff),
		"mouse_sgr_flag":      b2s(md.MouseEnc == MouseEncSGR),
		"scroll_region_upper": strconv.Itoa(m.top), "scroll_region_lower": strconv.Itoa(m.bot),
		"history_size": strconv.Itoa(m.HistoryRows()),
	}
	if tx, _ := strconv.Atoi(want.flags["cursor_x"]); tx > w {
		// After a resize of the alternate screen tmux leaves the cursor
		// column beyond the new width (it clamps when drawing); the
		// model clamps at once.
		want.flags["cursor_x"] = strconv.Itoa(w - 1)
	}
	if !history {
		got["history_size"] = want.flags["history_size"]
	}
	for _, k := range strings.Fields(tmuxFlags) {
		if got[k] != want.flags[k] {
			t.Errorf("%s: model %s, tmux %s", k, got[k], want.flags[k])
		}
	}
	if t.Failed() {
		t.Logf("model screen:\n%s", m.String())
	}
	return m
}

func rowText(r []tcell) string {
	var b strings.Builder
	for _, c := range r {
		b.WriteString(c.text)
	}
	return b.String()
}

// record runs argv under a pseudo-terminal of w×h (TERM=xterm-256color)
// with the model as its live terminal (so queries get answers), types the
// steps' input after their delays, and returns every byte the program wrote.
type step struct {
	wait  time.Duration
	input string
}

func record(t testing.TB, w, h int, argv []string, env []string, steps []step) []byte {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append([]string{"TERM=xterm-256color", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "HOME=" + t.TempDir(),
		"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}, env...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: uint16(w), Rows: uint16(h)})
	if err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	defer f.Close()
	live := New(w, h, 1000)
	live.SetReply(func(b []byte) { f.Write(b) })
	var out bytes.Buffer
	readDone := make(chan struct{})
	chunks := make(chan []byte, 64)
	go func() {
		defer close(chunks)
		buf := make([]byte, 32<<10)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				chunks <- append([]byte(nil), buf[:n]...)
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer close(readDone)
		for c := range chunks {
			out.Write(c)
			live.Write(c)
		}
	}()
	for _, s := range steps {
		time.Sleep(s.wait)
		if s.input != "" {
			f.Write([]byte(s.input))
		}
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(2 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	// Drain what the program wrote before it exited: the master reads it,
	// then EIO once no slave fd is left. Closing first lost the tail of a
	// fast program's output (all of it, for a short ls, on a loaded
	// machine). A leftover background process keeping the slave open is
	// cut off after a grace period.
	select {
	case <-readDone:
	case <-time.After(5 * time.Second):
	}
	f.Close()
	<-readDone
	return out.Bytes()
}
