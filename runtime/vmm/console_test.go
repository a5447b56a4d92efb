package vmm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestConsoleTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "console.log")
	old := "previous boot line\n"
	now := "\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS\r\n\r\n" + strings.Repeat("line\r\n", 30) + "last \x1b[1mbold\x1b[0m line\r\n"
	os.WriteFile(p, []byte(old+now), 0o644)
	got := ConsoleTail(p, int64(len(old)), 3)
	want := []string{"line", "line", "last bold line"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("tail %q, want %q", got, want)
	}
	if all := ConsoleTail(p, int64(len(old)), 100); all[0] != "cSeaBIOS" || len(all) != 32 {
		t.Fatalf("this boot only, escapes stripped: %q", all[:2])
	}
	if all := ConsoleTail(p, 0, 100); all[0] != "previous boot line" || len(all) != 33 {
		t.Fatalf("offset 0 reads the whole log: %q", all[:2])
	}
	if ConsoleTail(filepath.Join(t.TempDir(), "missing"), 0, 3) != nil || ConsoleTail("", 0, 3) != nil {
		t.Fatal("missing log should give no lines")
	}
}

func TestConsoleTailWindowDropsTheCutLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := 0; i < 100; i++ {
		b.WriteString("line ")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString("\n")
	}
	b.WriteString("final\n\n")
	os.WriteFile(p, []byte(b.String()), 0o644)
	if got := consoleTail(p, 0, 3, 1<<20); len(got) != 3 || got[2] != "final" {
		t.Fatalf("got %q", got)
	}
	got := consoleTail(p, 0, 100, 20)
	if len(got) == 0 {
		t.Fatal("no lines from a 20-byte window")
	}
	for _, l := range got {
		if !strings.HasPrefix(l, "line") && l != "final" {
			t.Fatalf("partial line kept: %q", got)
		}
	}
}

// Console bytes come from the guest: whatever it prints, the cleaned line
// holds no control bytes and is no longer than the input.
func FuzzCleanLine(f *testing.F) {
	f.Add("\x1b[?7l\x1b[2J[    0.000000] Linux version 6.1.0")
	f.Add("\x1b[")
	f.Add("plain\ttext\x7f\x00")
	f.Fuzz(func(t *testing.T, s string) {
		c := cleanLine(s)
		if len(c) > len(s) {
			t.Fatalf("grew: %q -> %q", s, c)
		}
		for i := 0; i < len(c); i++ {
			if b := c[i]; b < 0x20 && b != '\t' || b == 0x7f {
				t.Fatalf("control byte %#x left in %q", b, c)
			}
		}
		_ = utf8.ValidString(c)
	})
}
