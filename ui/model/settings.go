package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// SettingsFile is the settings' file name inside the data root.
const SettingsFile = "settings.json"

// Kernel sources the Settings window offers.
const (
	KernelDefault = "default" // the pinned Kata release, downloaded on first use
	KernelCustom  = "custom"  // a user-chosen uncompressed arm64 Image
)

// Settings are the user's preferences, persisted as JSON in the data root.
type Settings struct {
	Version int `json:"version"`
	// DataRoot, when set, moves Berth's data elsewhere from the next start on
	// (the file that says so stays in the default location).
	DataRoot         string `json:"dataRoot,omitempty"`
	DefaultCPUs      int    `json:"defaultCPUs"`
	DefaultMemoryMiB int64  `json:"defaultMemoryMiB"`
	KernelSource     string `json:"kernelSource"`
	KernelPath       string `json:"kernelPath,omitempty"`
	StartAtLogin     bool   `json:"startAtLogin"`
	// Terminal is where Open Terminal goes: TerminalEmbedded (a Berth
	// console window) or one of ui/console's hand-off apps ("terminal",
	// "iterm2", "ghostty", "wezterm", "custom").
	Terminal        string `json:"terminal,omitempty"`
	TerminalCommand string `json:"terminalCommand,omitempty"` // for "custom"
}

// TerminalEmbedded opens consoles in Berth's own window.
const TerminalEmbedded = "berth"

const settingsVersion = 1

// DefaultSettings are what a first start uses.
func DefaultSettings() Settings {
	return Settings{Version: settingsVersion, DefaultCPUs: 2, DefaultMemoryMiB: 1024, KernelSource: KernelDefault, Terminal: TerminalEmbedded}
}

// Validate reports the first invalid field with what to do about it.
func (s Settings) Validate(lim RunLimits) error {
	switch {
	case s.DefaultCPUs < 1:
		return errors.New("default CPUs: at least 1")
	case lim.MaxCPUs > 0 && s.DefaultCPUs > lim.MaxCPUs:
		return fmt.Errorf("default CPUs: this Mac allows at most %d", lim.MaxCPUs)
	case s.DefaultMemoryMiB < MinMemoryMiB:
		return fmt.Errorf("default memory: at least %d MiB", MinMemoryMiB)
	case lim.MaxMemoryMiB > 0 && s.DefaultMemoryMiB > lim.MaxMemoryMiB:
		return fmt.Errorf("default memory: at most %s on this Mac", FormatMiB(lim.MaxMemoryMiB))
	case s.KernelSource != KernelDefault && s.KernelSource != KernelCustom:
		return fmt.Errorf("kernel source %q: choose %q or %q", s.KernelSource, KernelDefault, KernelCustom)
	case s.KernelSource == KernelCustom && s.KernelPath == "":
		return errors.New("kernel: choose the kernel image file")
	case s.KernelSource == KernelCustom && !filepath.IsAbs(s.KernelPath):
		return errors.New("kernel: the path must be absolute")
	case s.DataRoot != "" && !filepath.IsAbs(s.DataRoot):
		return errors.New("data location: the path must be absolute")
	case !slices.Contains(TerminalChoices, s.Terminal):
		return fmt.Errorf("terminal %q: choose one of %s", s.Terminal, strings.Join(TerminalChoices, ", "))
	case s.Terminal == "custom" && strings.TrimSpace(s.TerminalCommand) == "":
		return errors.New("terminal: enter the custom command (e.g. alacritty -e /bin/sh -c {command})")
	}
	return nil
}

// TerminalChoices are the Terminal setting's values, in menu order (the
// hand-off apps are ui/console's).
var TerminalChoices = []string{TerminalEmbedded, "terminal", "iterm2", "ghostty", "wezterm", "custom"}

// LoadSettings reads dir/settings.json. A missing file gives the defaults; a
// corrupt one is an error naming the file (it is left untouched so nothing
// the user set is lost), and fields missing from an older file keep their
// defaults.
func LoadSettings(dir string) (Settings, error) {
	p := filepath.Join(dir, SettingsFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultSettings(), nil
	}
	if err != nil {
		return DefaultSettings(), fmt.Errorf("settings: %w", err)
	}
	s := DefaultSettings()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&s); err != nil {
		return DefaultSettings(), fmt.Errorf("settings file %s is not valid JSON (%v): fix or delete it to use the defaults", p, err)
	}
	if s.Version > settingsVersion {
		return s, fmt.Errorf("settings file %s was written by a newer Berth (version %d); update Berth", p, s.Version)
	}
	s.Version = settingsVersion
	if s.Terminal == "" {
		s.Terminal = TerminalEmbedded
	}
	return s, nil
}

// SaveSettings writes dir/settings.json atomically (temp file + rename), so
// a crash leaves the old or the new file, never half of one.
func SaveSettings(dir string, s Settings) error {
	s.Version = settingsVersion
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".settings-*.json")
	if err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("settings: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("settings: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, SettingsFile)); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	return nil
}
