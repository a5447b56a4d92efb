//go:build darwin

package menubar

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/progrium/darwinkit/helper/action"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/objc"

	"github.com/berth-dev/berth/ui"
	"github.com/berth-dev/berth/ui/console"
	"github.com/berth-dev/berth/ui/model"
)

// form lays out labelled controls top-down in a window's content view.
type form struct {
	view appkit.View
	y    float64
}

func newForm(w appkit.Window, height float64) *form {
	return &form{view: w.ContentView(), y: height - 40}
}

func (f *form) field(label, placeholder string) appkit.TextField {
	f.label(label)
	t := appkit.NewTextFieldWithFrame(rect(150, f.y, 320, 24))
	t.SetPlaceholderString(placeholder)
	f.view.AddSubview(t)
	f.y -= 34
	return t
}

func (f *form) label(s string) {
	l := appkit.NewLabel(s)
	l.SetFrame(rect(20, f.y+2, 125, 20))
	l.SetAlignment(appkit.TextAlignmentRight)
	f.view.AddSubview(l)
}

func (f *form) popup(label string, items []string) appkit.PopUpButton {
	f.label(label)
	p := appkit.NewPopUpButtonWithFramePullsDown(rect(148, f.y-2, 200, 28), false)
	p.AddItemsWithTitles(items)
	f.view.AddSubview(p)
	f.y -= 34
	return p
}

func (f *form) textArea(label string, lines float64) appkit.TextView {
	f.label(label)
	h := 18*lines + 8
	sv := appkit.TextView_ScrollableTextView()
	sv.SetFrame(rect(150, f.y-h+24, 320, h))
	sv.SetBorderType(appkit.BezelBorder)
	f.view.AddSubview(sv)
	tv := appkit.TextViewFrom(sv.DocumentView().Ptr())
	tv.SetRichText(false)
	tv.SetFont(appkit.Font_MonospacedSystemFontOfSizeWeight(11, appkit.FontWeightRegular))
	f.y -= h + 10
	return tv
}

func (f *form) check(title string) appkit.Button {
	b := checkbox(title)
	b.SetFrame(rect(148, f.y, 320, 24))
	f.view.AddSubview(b)
	f.y -= 30
	return b
}

func (f *form) errors() appkit.TextField {
	l := appkit.NewLabel("")
	l.SetFrame(rect(20, 56, 450, 60))
	l.SetTextColor(appkit.Color_SystemRedColor())
	f.view.AddSubview(l)
	return l
}

func (f *form) button(title string, x float64, h action.Handler) appkit.Button {
	b := appkit.NewButtonWithTitle(title)
	b.SetFrame(rect(x, 14, 110, 30))
	action.Set(b, h)
	f.view.AddSubview(b)
	return b
}

// --- Run dialog -------------------------------------------------------------

var (
	runWin                                               appkit.Window
	runImage, runName, runCmd, runPorts, runCPUs, runMem appkit.TextField
	runEnv                                               appkit.TextView
	runRestart                                           appkit.PopUpButton
	runRemove                                            appkit.Button
	runErr                                               appkit.TextField
	runWinMade                                           bool
)

func showRunDialog() {
	if !runWinMade {
		runWin = appkit.NewWindowWithSize(500, 520)
		runWin.SetReleasedWhenClosed(false)
		runWin.SetTitle("Run Image")
		f := newForm(runWin, 520)
		runImage = f.field("Image", "busybox, nginx:latest, ghcr.io/org/app:1.2")
		runName = f.field("Name", "optional")
		runCmd = f.field("Command", `optional, e.g. sh -c "echo hi"`)
		runEnv = f.textArea("Environment", 4)
		runPorts = f.field("Ports", "8080:80, 127.0.0.1:5432:5432")
		runCPUs = f.field("CPUs", "default")
		runMem = f.field("Memory", "default, e.g. 512m or 2g")
		runRestart = f.popup("Restart", model.RestartPolicies)
		runRemove = f.check("Remove the container when it exits")
		runErr = f.errors()
		f.button("Cancel", 260, func(objc.Object) { defer guard("run cancel"); runWin.Close() })
		f.button("Run", 375, func(objc.Object) { defer guard("run"); submitRun() })
		runWinMade = true
	}
	runErr.SetStringValue("")
	runWin.Center()
	bringForward(runWin)
}

func submitRun() {
	form := model.RunForm{
		Image: runImage.StringValue(), Name: runName.StringValue(), Command: runCmd.StringValue(),
		Env: runEnv.String(), Ports: runPorts.StringValue(), CPUs: runCPUs.StringValue(), Memory: runMem.StringValue(),
		Restart: runRestart.TitleOfSelectedItem(), Remove: runRemove.State() == appkit.ControlStateValueOn,
	}
	req, err := form.Validate(opts.Limits)
	if err != nil {
		runErr.SetStringValue(strings.ReplaceAll(err.Error(), "; ", "\n"))
		return
	}
	runErr.SetStringValue("Starting…")
	go func() {
		defer guard("run container")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		_, err := ctl.Run(ctx, req, func(p model.PullProgress) {
			text := p.Text()
			onMain(func() { runErr.SetStringValue(text) })
		})
		onMain(func() {
			if err != nil {
				runErr.SetStringValue(model.ErrorAlert("run "+req.Create.Config.Image, err).Detail)
				return
			}
			runErr.SetStringValue("")
			runWin.Close()
		})
	}()
}

// --- Settings -----------------------------------------------------------------

var (
	setWin                              appkit.Window
	setData, setCPUs, setMem, setKernel appkit.TextField
	setSource, setTerm                  appkit.PopUpButton
	setTermCmd                          appkit.TextField
	setLogin                            appkit.Button
	setErr                              appkit.TextField
	setWinMade                          bool
)

func showSettings() {
	s, err := model.LoadSettings(opts.DataDir)
	if !setWinMade {
		setWin = appkit.NewWindowWithSize(500, 450)
		setWin.SetReleasedWhenClosed(false)
		setWin.SetTitle("Berth Settings")
		f := newForm(setWin, 450)
		setData = f.field("Data location", opts.DataDir)
		setCPUs = f.field("Default CPUs", "2")
		setMem = f.field("Default memory (MiB)", "1024")
		setSource = f.popup("Kernel", []string{model.KernelDefault, model.KernelCustom})
		setKernel = f.field("Custom kernel", "uncompressed arm64 Image")
		setTerm = f.popup("Open Terminal in", terminalLabels())
		setTermCmd = f.field("Custom terminal", "e.g. alacritty -e /bin/sh -c {command}")
		setLogin = f.check("Start Berth at login")
		setErr = f.errors()
		f.button("Choose Kernel…", 20, func(objc.Object) {
			defer guard("choose kernel")
			choosePath(false, func(p string) { setKernel.SetStringValue(p); setSource.SelectItemWithTitle(model.KernelCustom) })
		})
		f.button("Choose Data…", 140, func(objc.Object) {
			defer guard("choose data")
			choosePath(true, func(p string) { setData.SetStringValue(p) })
		})
		f.button("Save", 375, func(objc.Object) { defer guard("settings save"); saveSettings() })
		setWinMade = true
	}
	setErr.SetStringValue("")
	if err != nil {
		setErr.SetStringValue(err.Error())
	}
	setData.SetStringValue(s.DataRoot)
	setCPUs.SetStringValue(strconv.Itoa(s.DefaultCPUs))
	setMem.SetStringValue(strconv.FormatInt(s.DefaultMemoryMiB, 10))
	setSource.SelectItemWithTitle(s.KernelSource)
	setKernel.SetStringValue(s.KernelPath)
	setTerm.SelectItemWithTitle(terminalLabel(s.Terminal))
	setTermCmd.SetStringValue(s.TerminalCommand)
	// The login item's real state is macOS's (the user may change it in
	// System Settings > General > Login Items).
	if st, err := ui.StartAtLogin(); err == nil && st == ui.LoginItemEnabled {
		setLogin.SetState(appkit.ControlStateValueOn)
	} else {
		setLogin.SetState(appkit.ControlStateValueOff)
	}
	setWin.Center()
	bringForward(setWin)
}

func saveSettings() {
	s, _ := model.LoadSettings(opts.DataDir)
	s.DataRoot = strings.TrimSpace(setData.StringValue())
	cpus, err1 := strconv.Atoi(strings.TrimSpace(setCPUs.StringValue()))
	mem, err2 := strconv.ParseInt(strings.TrimSpace(setMem.StringValue()), 10, 64)
	if err1 != nil || err2 != nil {
		setErr.SetStringValue("CPUs and memory must be whole numbers")
		return
	}
	s.DefaultCPUs, s.DefaultMemoryMiB = cpus, mem
	s.KernelSource = setSource.TitleOfSelectedItem()
	s.KernelPath = strings.TrimSpace(setKernel.StringValue())
	s.StartAtLogin = setLogin.State() == appkit.ControlStateValueOn
	s.Terminal = terminalID(setTerm.TitleOfSelectedItem())
	s.TerminalCommand = strings.TrimSpace(setTermCmd.StringValue())
	if err := s.Validate(opts.Limits); err != nil {
		setErr.SetStringValue(err.Error())
		return
	}
	if err := model.SaveSettings(opts.DataDir, s); err != nil {
		setErr.SetStringValue(err.Error())
		return
	}
	if st, _ := ui.StartAtLogin(); (st == ui.LoginItemEnabled) != s.StartAtLogin {
		if err := ui.SetStartAtLogin(s.StartAtLogin); err != nil {
			setErr.SetStringValue(err.Error())
			return
		}
	}
	setErr.SetStringValue("Saved. New defaults apply to new containers; a new data location or kernel after Berth restarts.")
}

func choosePath(dirs bool, done func(string)) {
	p := appkit.OpenPanel_OpenPanel()
	p.SetCanChooseFiles(!dirs)
	p.SetCanChooseDirectories(dirs)
	p.SetAllowsMultipleSelection(false)
	if dirs {
		p.SetCanCreateDirectories(true)
	}
	app.ActivateIgnoringOtherApps(true)
	p.BeginWithCompletionHandler(func(r appkit.ModalResponse) {
		defer guard("choose path")
		if r == appkit.ModalResponseOK && len(p.URLs()) > 0 {
			done(p.URLs()[0].Path())
		}
	})
}

// terminalLabels are the Terminal popup's titles, in model.TerminalChoices order.
func terminalLabels() []string {
	out := make([]string, len(model.TerminalChoices))
	for i, id := range model.TerminalChoices {
		out[i] = terminalLabel(id)
	}
	return out
}

func terminalLabel(id string) string {
	if id == "" || id == model.TerminalEmbedded {
		return "Berth Console Window"
	}
	return console.TerminalApp(id).Label()
}

func terminalID(label string) string {
	for _, id := range model.TerminalChoices {
		if terminalLabel(id) == label {
			return id
		}
	}
	return model.TerminalEmbedded
}
