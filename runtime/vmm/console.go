package vmm

import (
	"io"
	"os"
	"strings"
)

// consoleWindow bounds how much of a console log ConsoleTail reads: the
// lines worth quoting in an error are at its end.
const consoleWindow = 64 << 10

// ConsoleTail returns the last n non-empty lines written to the console log
// at path from offset on (0: the whole log), for error messages about a VM
// that did not boot. Terminal escape sequences and control bytes are
// removed (firmware paints the screen with them). A missing log gives nil.
func ConsoleTail(path string, offset int64, n int) []string {
	return consoleTail(path, offset, n, consoleWindow)
}

func consoleTail(path string, offset int64, n int, window int64) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil
	}
	cut := st.Size()-offset > window
	if cut {
		offset = st.Size() - window
	}
	b, err := io.ReadAll(io.NewSectionReader(f, offset, st.Size()-offset))
	if err != nil {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = cleanLine(l); l != "" {
			lines = append(lines, l)
		}
	}
	if cut && len(lines) > 0 {
		lines = lines[1:] // the window began inside this line
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// cleanLine drops CSI escape sequences and control bytes (but tabs) from a
// console line and trims it.
func cleanLine(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0x1b: // ESC [ ... final byte in 0x40..0x7e
			if i+1 < len(s) && s[i+1] == '[' {
				i += 2
				for i < len(s) && (s[i] < 0x40 || s[i] > 0x7e) {
					i++
				}
			}
		case c == '\t' || c >= 0x20 && c != 0x7f:
			b.WriteByte(c)
		}
	}
	return strings.TrimSpace(b.String())
}
