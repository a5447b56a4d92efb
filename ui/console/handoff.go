package console

import (
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
)

// TerminalApp is the user's choice for "Open in Terminal".
type TerminalApp string

const (
	AppTerminal TerminalApp = "terminal" // Terminal.app (default)
	AppITerm2   TerminalApp = "iterm2"
	AppGhostty  TerminalApp = "ghostty"
	AppWezTerm  TerminalApp = "wezterm"
	AppCustom   TerminalApp = "custom"
)

// Apps lists the choices in the order a settings menu shows them.
var Apps = []TerminalApp{AppTerminal, AppITerm2, AppGhostty, AppWezTerm, AppCustom}

// Label is the app's display name.
func (a TerminalApp) Label() string {
	switch a {
	case AppTerminal:
		return "Terminal"
	case AppITerm2:
		return "iTerm2"
	case AppGhostty:
		return "Ghostty"
	case AppWezTerm:
		return "WezTerm"
	case AppCustom:
		return "Custom Command…"
	}
	return string(a)
}

// Handoff is the hand-off setting.
type Handoff struct {
	App TerminalApp
	// Template is the custom command, split into words like a shell would
	// (quotes respected, no expansion). Placeholders, each replaced inside a
	// word after splitting (so a value can never become extra words):
	//   {command}  the whole `berth exec -it NAME sh` as one shell command string
	//   {berth}    path of the berth executable
	//   {name}     the container name
	//   {shell}    the shell to run
	// Example: `alacritty -e /bin/sh -c {command}` or `kitty {berth} exec -it {name} {shell}`.
	Template string
	// Berth is the path of the berth CLI (the one inside Berth.app).
	Berth string
	// Shell is what to run in the container (default "sh"); words are split
	// like SplitWords, e.g. "bash -l".
	Shell string
}

// containerName matches Docker's rule for names and IDs.
var containerName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// ShellQuote quotes s for a POSIX shell: one word, nothing expanded.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// appleScriptString quotes s as an AppleScript string literal.
func appleScriptString(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + s + `"`
}

// ExecCommandLine is the shell command the hand-off runs:
// `'/path/berth' exec -it NAME sh`.
func (h Handoff) ExecCommandLine(container string) (string, error) {
	if !containerName.MatchString(container) {
		return "", fmt.Errorf("open in terminal: %q is not a container name (letters, digits, _ . - only)", container)
	}
	berth := h.Berth
	if berth == "" {
		berth = "berth"
	}
	shell, err := SplitWords(h.Shell)
	if err != nil {
		return "", fmt.Errorf("terminal shell setting: %w", err)
	}
	if len(shell) == 0 {
		shell = []string{"sh"}
	}
	words := []string{ShellQuote(berth), "exec", "-it", ShellQuote(container)}
	for _, w := range shell {
		words = append(words, ShellQuote(w))
	}
	return strings.Join(words, " "), nil
}

// Command returns the argv that opens the chosen terminal app running a
// shell in container.
func (h Handoff) Command(container string) ([]string, error) {
	line, err := h.ExecCommandLine(container)
	if err != nil {
		return nil, err
	}
	switch h.App {
	case AppTerminal, "":
		return []string{"/usr/bin/osascript",
			"-e", `tell application "Terminal"`,
			"-e", "activate",
			"-e", "do script " + appleScriptString(line),
			"-e", "end tell"}, nil
	case AppITerm2:
		// Typed into a new window's login shell, like Terminal's do script.
		return []string{"/usr/bin/osascript",
			"-e", `tell application "iTerm"`,
			"-e", "activate",
			"-e", "set w to (create window with default profile)",
			"-e", "tell current session of w to write text " + appleScriptString(line),
			"-e", "end tell"}, nil
	case AppGhostty:
		// -n: a new instance receives the arguments even if Ghostty runs.
		return []string{"/usr/bin/open", "-na", "Ghostty", "--args", "-e", "/bin/sh", "-c", line}, nil
	case AppWezTerm:
		return []string{"/usr/bin/open", "-na", "WezTerm", "--args", "start", "--", "/bin/sh", "-c", line}, nil
	case AppCustom:
		return h.custom(container, line)
	}
	return nil, fmt.Errorf("open in terminal: unknown terminal app %q (choose one of terminal, iterm2, ghostty, wezterm, custom)", h.App)
}

func (h Handoff) custom(container, line string) ([]string, error) {
	words, err := SplitWords(h.Template)
	if err != nil {
		return nil, fmt.Errorf("custom terminal command: %w", err)
	}
	if len(words) == 0 {
		return nil, errors.New("custom terminal command is empty: set one in Settings, e.g. `alacritty -e /bin/sh -c {command}`")
	}
	berth, shell := h.Berth, h.Shell
	if berth == "" {
		berth = "berth"
	}
	if shell == "" {
		shell = "sh"
	}
	r := strings.NewReplacer("{command}", line, "{berth}", berth, "{name}", container, "{shell}", shell)
	used := false
	for i, w := range words {
		if strings.Contains(w, "{") {
			used = true
		}
		words[i] = r.Replace(w)
	}
	if !used {
		return nil, errors.New("custom terminal command has no placeholder: include {command} (or {berth}/{name}/{shell}) so it knows what to run")
	}
	return words, nil
}

// SplitWords splits a command template into words the way a POSIX shell
// does for quoting ('…', "…", backslash), without any expansion.
func SplitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated ' quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New(`unterminated " quote`)
			}
			inWord = true
		case c == '\\':
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// Open runs the hand-off: it starts the terminal app (which returns at
// once for osascript/open) and reports a failure with the tool's own
// message. The app itself keeps running after Berth exits.
func (h Handoff) Open(container string) error {
	argv, err := h.Command(container)
	if err != nil {
		return err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("open %s in %s: %s", container, h.App.Label(), msg)
	}
	return nil
}
