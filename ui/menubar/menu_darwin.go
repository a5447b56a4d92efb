//go:build darwin

package menubar

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"time"

	"github.com/progrium/darwinkit/helper/action"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/objc"

	"github.com/berth-dev/berth/ui"
	"github.com/berth-dev/berth/ui/console"
	"github.com/berth-dev/berth/ui/model"
	"github.com/berth-dev/berth/ui/shell"
)

var (
	statusItem   appkit.StatusItem
	statusMenu   appkit.Menu
	menuDelegate *appkit.MenuDelegate
	menuOpen     bool
	lastSymbol   string
)

func setupStatusItem() {
	statusItem = appkit.StatusBar_SystemStatusBar().StatusItemWithLength(appkit.VariableStatusItemLength)
	statusItem.SetAutosaveName("Berth")
	statusMenu = appkit.NewMenuWithTitle("Berth")
	statusMenu.SetAutoenablesItems(false)
	// Rebuilt from live state whenever it opens, and while open on events.
	menuDelegate = &appkit.MenuDelegate{}
	menuDelegate.SetMenuNeedsUpdate(func(m appkit.Menu) {
		defer guard("menuNeedsUpdate")
		fillMenu(m, currentMenu().Items)
	})
	menuDelegate.SetMenuWillOpen(func(appkit.Menu) { menuOpen = true })
	menuDelegate.SetMenuDidClose(func(appkit.Menu) { menuOpen = false })
	statusMenu.SetDelegate(menuDelegate)
	statusItem.SetMenu(statusMenu)
	addStatusDropTarget() // image archives dropped on the icon are imported
	updateStatusItem()
}

func currentMenu() model.Menu {
	return ctl.Menu(time.Now(), shell.CLIInstalled(opts.Exe, shell.CLIDir))
}

// updateStatusItem sets the icon (filled while anything runs) and tooltip,
// and refreshes the menu's items if it is open right now.
func updateStatusItem() {
	m := currentMenu()
	if m.Icon.Symbol != lastSymbol {
		img := appkit.Image_ImageWithSystemSymbolNameAccessibilityDescription(m.Icon.Symbol, "Berth")
		img.SetTemplate(true) // adapts to light/dark menu bars
		statusItem.Button().SetImage(img)
		lastSymbol = m.Icon.Symbol
	}
	statusItem.Button().SetToolTip(m.Icon.Tooltip)
	if menuOpen {
		fillMenu(statusMenu, m.Items)
	}
}

// fillMenu maps model items onto the menu (old items and their action
// handlers are released with RemoveAllItems).
func fillMenu(m appkit.Menu, items []model.Item) {
	m.RemoveAllItems()
	m.SetAutoenablesItems(false)
	for _, it := range items {
		m.AddItem(menuItem(it))
	}
}

var stateSymbols = map[string]string{
	"running": "play.circle.fill", "restarting": "arrow.clockwise.circle", "paused": "pause.circle",
	"exited": "stop.circle", "dead": "xmark.circle", "created": "circle.dashed", "removing": "trash.circle",
}

func menuItem(it model.Item) appkit.MenuItem {
	if it.Separator {
		return appkit.MenuItem_SeparatorItem()
	}
	if it.Submenu != nil {
		mi := appkit.NewMenuItemWithSelector(it.Title, "", objc.Selector{})
		sub := appkit.NewMenuWithTitle(it.Title)
		sub.SetAutoenablesItems(false)
		for _, s := range it.Submenu {
			sub.AddItem(menuItem(s))
		}
		mi.SetSubmenu(sub)
		if sym, ok := stateSymbols[string(it.State)]; ok {
			img := appkit.Image_ImageWithSystemSymbolNameAccessibilityDescription(sym, string(it.State))
			img.SetTemplate(true)
			mi.SetImage(img)
		}
		return mi
	}
	if it.Action == model.ActNone {
		mi := appkit.NewMenuItemWithSelector(it.Title, "", objc.Selector{})
		mi.SetEnabled(false)
		return mi
	}
	item := it
	mi := appkit.NewMenuItemWithAction(it.Title, it.Key, func(objc.Object) {
		defer guard("menu " + string(item.Action))
		perform(item)
	})
	mi.SetEnabled(it.Enabled)
	return mi
}

// perform carries out a menu or window action (main thread).
func perform(it model.Item) {
	if it.Confirm != "" && it.Action != model.ActInstallCLI && !confirm(it.Confirm, actionVerb(it.Action)) {
		return
	}
	switch it.Action {
	case model.ActStart, model.ActStop, model.ActRestart, model.ActPause, model.ActUnpause, model.ActRemove:
		go func() {
			defer guard("engine action")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := ctl.Do(ctx, it); err != nil {
				showAlert(model.ErrorAlert(string(it.Action)+" "+containerName(it.Target), err))
			}
		}()
	case model.ActTerminal:
		openTerminal(it.Target)
	case model.ActLogs:
		showLogs(it.Target)
	case model.ActShowDetails:
		showDetails(it.Target)
	case model.ActCopyIP:
		pb := appkit.Pasteboard_GeneralPasteboard()
		pb.ClearContents()
		pb.SetStringForType(it.Arg, appkit.PasteboardTypeString)
	case model.ActOpenURL:
		appkit.Workspace_SharedWorkspace().OpenURL(foundation.URL_URLWithString(it.Arg))
	case model.ActRun:
		showRunDialog()
	case model.ActImport:
		chooseImport()
	case model.ActContainers:
		showContainers()
	case model.ActImages:
		showImages()
	case model.ActSettings:
		showSettings()
	case model.ActInstallCLI:
		installCLI(it.Confirm)
	case model.ActRetryEngine:
		go startEngine()
	case model.ActQuit:
		app.Terminate(nil)
	}
}

func actionVerb(a model.Action) string {
	switch a {
	case model.ActRemove:
		return "Remove"
	case model.ActStop:
		return "Stop"
	}
	return "OK"
}

func containerName(id string) string {
	for _, c := range ctl.Snap.Containers() {
		if c.ID == id {
			return model.ContainerName(c.Names, c.ID)
		}
	}
	return model.ShortID(id)
}

// openTerminal opens a shell in the container where Settings say: a Berth
// console window (ui/console session drawn by ui's TermView; reattaching to
// a live one) or a hand-off to the user's terminal app.
func openTerminal(id string) {
	s, _ := model.LoadSettings(opts.DataDir)
	name := containerName(id)
	if s.Terminal != "" && s.Terminal != model.TerminalEmbedded {
		h := console.Handoff{App: console.TerminalApp(s.Terminal), Template: s.TerminalCommand, Berth: opts.Exe, Shell: "sh"}
		argv, err := h.Command(name)
		if err != nil {
			showAlert(model.ErrorAlert("open a terminal for "+name, err))
			return
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+ctlSocket(), "BERTH_DATA_ROOT="+opts.EngineRoot)
		if err := cmd.Start(); err != nil {
			showAlert(model.ErrorAlert("open a terminal for "+name, err))
			return
		}
		go cmd.Wait() // reap it
		return
	}
	cli := ctl.Client()
	if cli == nil {
		showAlert(model.Alert{Title: "Could not open a terminal for " + name, Detail: "Berth's engine is not running."})
		return
	}
	if consoles == nil {
		consoles = console.NewRegistry(console.EngineDialer(cli, console.ExecOptions{}), console.SessionOptions{})
	}
	if sess, ok := consoles.Reattach(id); ok {
		ui.OpenConsoleWindow(sess)
		return
	}
	go func() {
		defer guard("console session")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sess, err := consoles.Open(ctx, id)
		if err != nil {
			showAlert(model.ErrorAlert("open a terminal for "+name, err))
			return
		}
		onMain(func() { ui.OpenConsoleWindow(sess) })
	}()
}

// consoles are the live console sessions (main thread).
var consoles *console.Registry

// installCLI asks, then links /usr/local/bin/berth to this binary, asking
// for administrator rights through macOS when needed.
func installCLI(question string) {
	if !confirm(question, "Install") {
		return
	}
	go func() {
		defer guard("install CLI")
		err := shell.InstallCLI(opts.Exe, shell.CLIDir)
		var na *shell.NeedsAdminError
		if errors.As(err, &na) {
			script := "do shell script " + shell.AppleScriptString(na.Script) + " with administrator privileges"
			if out, oerr := exec.Command("osascript", "-e", script).CombinedOutput(); oerr != nil {
				err = errors.New(string(out))
			} else {
				err = nil
			}
		}
		if err != nil {
			showAlert(model.ErrorAlert("install the command-line tool", err))
			return
		}
		showAlert(model.Alert{Title: "Command-line tool installed", Detail: "`berth` and `docker` (with DOCKER_HOST=unix://" + ctlSocket() + ") now work from Terminal."})
		onMain(updateStatusItem)
	}()
}

func ctlSocket() string { return opts.Engine.Socket() }

// chooseImport lets the user pick image tarballs to load.
func chooseImport() {
	p := appkit.OpenPanel_OpenPanel()
	p.SetCanChooseFiles(true)
	p.SetCanChooseDirectories(true) // OCI layout directories load too
	p.SetAllowsMultipleSelection(true)
	p.SetMessage("Choose image archives (docker save, OCI archive; .tar, .tar.gz, .tar.zst), OCI layout folders or root filesystem tars")
	app.ActivateIgnoringOtherApps(true)
	p.BeginWithCompletionHandler(func(r appkit.ModalResponse) {
		defer guard("import panel")
		if r != appkit.ModalResponseOK {
			return
		}
		var paths []string
		for _, u := range p.URLs() {
			paths = append(paths, u.Path())
		}
		importPaths(paths)
	})
}

// keepTarget keeps action targets made with action.Wrap alive (controls do
// not retain their targets).
var keptTargets []action.Target
