//go:build darwin

package menubar

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/progrium/darwinkit/helper/action"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/objc"

	"github.com/berth-dev/berth/ui/model"
	"github.com/berth-dev/berth/ui/shell"
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
	setSource                           appkit.PopUpButton
	setLogin                            appkit.Button
	setErr                              appkit.TextField
	setWinMade                          bool
)

func showSettings() {
	s, err := model.LoadSettings(opts.DataDir)
	if !setWinMade {
		setWin = appkit.NewWindowWithSize(500, 380)
		setWin.SetReleasedWhenClosed(false)
		setWin.SetTitle("Berth Settings")
		f := newForm(setWin, 380)
		setData = f.field("Data location", opts.DataDir)
		setCPUs = f.field("Default CPUs", "2")
		setMem = f.field("Default memory (MiB)", "1024")
		setSource = f.popup("Kernel", []string{model.KernelDefault, model.KernelCustom})
		setKernel = f.field("Custom kernel", "uncompressed arm64 Image")
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
	home, _ := os.UserHomeDir()
	if shell.StartsAtLogin(home) {
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
	if err := s.Validate(opts.Limits); err != nil {
		setErr.SetStringValue(err.Error())
		return
	}
	if err := model.SaveSettings(opts.DataDir, s); err != nil {
		setErr.SetStringValue(err.Error())
		return
	}
	home, _ := os.UserHomeDir()
	if err := shell.SetStartAtLogin(home, shell.BundleDir(opts.Exe), s.StartAtLogin); err != nil {
		setErr.SetStringValue(err.Error())
		return
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
