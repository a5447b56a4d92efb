// Command berth is Berth's one binary: launched from Berth.app with no
// arguments it is the menu-bar app; `berth daemon` is the same engine
// headless; any other `berth <command>` is a client of a running engine.
package main

import (
	"os"

	"github.com/berth-dev/berth/app/cli"
)

func main() {
	if guiLaunch(os.Args[1:]) { // Berth.app: the menu-bar app (gui_darwin.go)
		os.Exit(runGUI())
	}
	os.Exit(cli.Main(os.Args[1:]))
}
