package shell

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LoginAgentLabel names the LaunchAgent that starts Berth at login.
const LoginAgentLabel = "dev.berth.app.login"

// LoginAgentPath is the LaunchAgent plist's path under home.
func LoginAgentPath(home string) string {
	return filepath.Join(home, "Library", "LaunchAgents", LoginAgentLabel+".plist")
}

// SetStartAtLogin writes or removes a per-user LaunchAgent that opens the app
// at login (a LaunchAgent works on every supported macOS and needs no extra
// framework; launchd reads it at the next login).
func SetStartAtLogin(home, bundle string, on bool) error {
	p := LoginAgentPath(home)
	if !on {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("start at login: %w", err)
		}
		return nil
	}
	if bundle == "" {
		return errors.New("start at login: Berth is not running from Berth.app")
	}
	var b strings.Builder
	esc := func(s string) string {
		var sb strings.Builder
		xml.EscapeText(&sb, []byte(s))
		return sb.String()
	}
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>` + esc(LoginAgentLabel) + `</string>
	<key>ProgramArguments</key>
	<array>
		<string>/usr/bin/open</string>
		<string>-g</string>
		<string>` + esc(bundle) + `</string>
	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>LimitLoadToSessionType</key>
	<string>Aqua</string>
</dict>
</plist>
`)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("start at login: %w", err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("start at login: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("start at login: %w", err)
	}
	return nil
}

// StartsAtLogin reports whether the LaunchAgent exists.
func StartsAtLogin(home string) bool {
	_, err := os.Stat(LoginAgentPath(home))
	return err == nil
}
