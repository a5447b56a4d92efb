//go:build !darwin

package main

// The menu-bar app exists only on macOS; elsewhere berth is always the CLI
// (and `berth daemon` the headless engine).
func guiLaunch(args []string) bool { return false }

func runGUI() int { return 0 }
