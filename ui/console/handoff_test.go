package console

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeBerth writes an executable "berth" into a directory whose name needs
// quoting, that prints its arguments one per line.
func fakeBerth(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), `it's "a" dir $HOME`)
	os.MkdirAll(dir, 0o755)
	p := filepath.Join(dir, "berth")
	os.WriteFile(p, []byte("#!/bin/sh\nfor a in \"$@\"; do printf '<%s>\\n' \"$a\"; done\n"), 0o755)
	return p
}

func TestExecCommandLineRunsInAShell(t *testing.T) {
	h := Handoff{Berth: fakeBerth(t), Shell: "/bin/bash -l"}
	line, err := h.ExecCommandLine("web-1.prod_x")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/bin/sh", "-c", line).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v %s", line, err, out)
	}
	if want := "<exec>\n<-it>\n<web-1.prod_x>\n</bin/bash>\n<-l>\n"; string(out) != want {
		t.Fatalf("got %q", out)
	}
}

func TestExecCommandLineRejectsBadNames(t *testing.T) {
	for _, n := range []string{"", "a;rm -rf ~", "$(reboot)", "-rf", "a b", "x'y"} {
		if _, err := (Handoff{}).ExecCommandLine(n); err == nil {
			t.Errorf("%q accepted", n)
		}
	}
}

func TestShellQuoteRoundTrip(t *testing.T) {
	for _, s := range []string{"plain", "", "a b", "it's", `"dq"`, "$HOME", "`id`", "new\nline", "back\\slash", "ünï", "*"} {
		out, err := exec.Command("/bin/sh", "-c", "printf %s "+ShellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("ShellQuote(%q) = %s → %q, %v", s, ShellQuote(s), out, err)
		}
	}
}

// parseAppleScriptString reads an AppleScript string literal (the inverse
// of appleScriptString) to check the escaping.
func parseAppleScriptString(t *testing.T, lit string) string {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		t.Fatalf("not a literal: %s", lit)
	}
	var b strings.Builder
	body := lit[1 : len(lit)-1]
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '\\':
			i++
			b.WriteByte(body[i])
		case '"':
			t.Fatalf("unescaped quote in %s", lit)
		default:
			b.WriteByte(body[i])
		}
	}
	return b.String()
}

func TestAppleScriptHandoffs(t *testing.T) {
	h := Handoff{Berth: `/Applications/Berth "beta".app/Contents/MacOS/berth\x`}
	line, _ := h.ExecCommandLine("db")
	for _, app := range []TerminalApp{AppTerminal, AppITerm2, ""} {
		h.App = app
		argv, err := h.Command("db")
		if err != nil {
			t.Fatal(err)
		}
		if argv[0] != "/usr/bin/osascript" {
			t.Fatalf("%s: %v", app, argv)
		}
		var script string
		for i := 1; i < len(argv); i += 2 {
			if argv[i] != "-e" {
				t.Fatalf("%s: expected -e pairs: %q", app, argv)
			}
			script += argv[i+1] + "\n"
		}
		i := strings.LastIndex(script, "script ")
		if app == AppITerm2 {
			i = strings.LastIndex(script, "write text ")
			i += len("write text ")
		} else {
			i += len("script ")
		}
		lit := script[i : strings.Index(script[i:], "\n")+i]
		if got := parseAppleScriptString(t, lit); got != line {
			t.Errorf("%s: script runs %q, want %q", app, got, line)
		}
	}
}

func TestOpenAndCustomHandoffsRun(t *testing.T) {
	berth := fakeBerth(t)
	want := "<exec>\n<-it>\n<db>\n<sh>\n"
	for _, app := range []TerminalApp{AppGhostty, AppWezTerm} {
		argv, err := Handoff{App: app, Berth: berth}.Command("db")
		if err != nil {
			t.Fatal(err)
		}
		// Everything after the app's own flags is `/bin/sh -c LINE`: run it.
		i := len(argv) - 3
		if argv[i] != "/bin/sh" || argv[i+1] != "-c" || argv[0] != "/usr/bin/open" {
			t.Fatalf("%s: %q", app, argv)
		}
		out, err := exec.Command(argv[i], argv[i+1:]...).CombinedOutput()
		if err != nil || string(out) != want {
			t.Errorf("%s: %q %v", app, out, err)
		}
	}
	// Custom templates: placeholders are substituted inside words, never
	// re-split, so odd paths stay one argument.
	for _, tmpl := range []string{`/bin/sh -c {command}`, `"{berth}" exec -it {name} {shell}`, `env X='a b' {berth} exec -it {name} {shell}`} {
		argv, err := Handoff{App: AppCustom, Template: tmpl, Berth: berth}.Command("db")
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil || string(out) != want {
			t.Errorf("template %s → %q: %q %v", tmpl, argv, out, err)
		}
	}
}

func TestCustomTemplateErrors(t *testing.T) {
	for tmpl, msg := range map[string]string{"": "empty", "alacritty -e 'sh": "unterminated", "alacritty": "placeholder"} {
		_, err := Handoff{App: AppCustom, Template: tmpl}.Command("db")
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want %q", tmpl, err, msg)
		}
	}
	if _, err := (Handoff{App: "xterm"}).Command("db"); err == nil {
		t.Error("unknown app accepted")
	}
}

func TestSplitWords(t *testing.T) {
	got, err := SplitWords(`a 'b c' "d \"e\" \$f" g\ h  ''`)
	want := []string{"a", "b c", `d "e" $f`, "g h", ""}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%q %v", got, err)
	}
}

func TestOpenRunsTheHandoff(t *testing.T) {
	out := filepath.Join(t.TempDir(), "ran")
	berth := fakeBerth(t)
	h := Handoff{App: AppCustom, Berth: berth, Template: `/bin/sh -c '{command} > "$0"' ` + ShellQuote(out)}
	if err := h.Open("db"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if string(got) != "<exec>\n<-it>\n<db>\n<sh>\n" {
		t.Fatalf("hand-off ran %q", got)
	}
	// A failing terminal command reports its own message.
	h.Template = `/bin/sh -c 'echo no such terminal >&2; exit 1' {name}`
	if err := h.Open("db"); err == nil || !strings.Contains(err.Error(), "no such terminal") {
		t.Fatalf("error %v", err)
	}
}
