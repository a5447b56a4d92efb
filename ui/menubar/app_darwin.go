//go:build darwin

package menubar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/progrium/darwinkit/dispatch"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/macos/foundation"

	"github.com/berth-dev/berth/ui"
	"github.com/berth-dev/berth/ui/model"
	"github.com/berth-dev/berth/ui/notify"
	"github.com/berth-dev/berth/ui/shell"
)

// AppKit must run on the process's main thread: keep the main goroutine
// there from the start (package init runs on it).
func init() { runtime.LockOSThread() }

// Options are what the app needs from app/ (the composition root).
type Options struct {
	Engine  shell.Engine
	DataDir string // the data root: single-instance lock, settings.json
	Exe     string // this executable (for the CLI symlink and terminals)
	// EngineRoot is the engine's data root (DataDir unless Settings moved it);
	// terminals run `berth --data-root EngineRoot exec …`.
	EngineRoot string
	Log        *slog.Logger
	Limits     model.RunLimits
	// Kernel, when set, is the default kernel's first-launch download,
	// offered before the engine starts if the kernel is missing.
	Kernel *shell.KernelFetch
}

// Long-lived AppKit objects and app state. Package-level so the GC never
// releases what AppKit still shows; touched only on the main thread.
var (
	opts     Options
	ctl      *shell.Controller
	app      appkit.Application
	delegate *appkit.ApplicationDelegate
	logger   *slog.Logger

	quitting   atomic.Bool
	refreshDue atomic.Bool // a Changed() is queued on the main thread
	quitProg   progressWindow
	kernelProg progressWindow
)

// Run runs the menu-bar app until the user quits. It returns the process
// exit status (only when the app could not start; Quit exits the process
// through AppKit).
func Run(o Options) int {
	opts = o
	logger = o.Log
	if logger == nil {
		logger = slog.Default()
	}
	inst, err := shell.Acquire(o.DataDir, func() { onMain(func() { showContainers() }) })
	if errors.Is(err, shell.ErrAlreadyRunning) {
		logger.Info("Berth is already running; asked it to come forward")
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		return 1
	}
	defer inst.Release()
	ctl = shell.New(o.Engine, view{})

	// Like macos.RunApp, but every delegate hook is set before the
	// delegate is installed, so AppKit sees them all (document opens at
	// launch arrive before didFinishLaunching).
	app = appkit.Application_SharedApplication()
	delegate = &appkit.ApplicationDelegate{}
	delegate.SetApplicationDidFinishLaunching(func(foundation.Notification) {
		defer guard("didFinishLaunching")
		launched()
	})
	delegate.SetApplicationShouldTerminate(func(appkit.Application) appkit.ApplicationTerminateReply {
		defer guard("shouldTerminate")
		return shouldTerminate()
	})
	delegate.SetApplicationShouldTerminateAfterLastWindowClosed(func(appkit.Application) bool { return false })
	delegate.SetApplicationOpenURLs(func(_ appkit.Application, urls []foundation.URL) {
		defer guard("openURLs")
		var paths []string
		for _, u := range urls {
			if u.IsFileURL() {
				paths = append(paths, u.Path())
			}
		}
		importPaths(paths) // one notification and one alert for the lot
	})
	app.SetDelegate(delegate)
	app.Run()
	return 0
}

func launched() {
	// Accessory: no Dock icon and no main menu bar (LSUIElement in Info.plist
	// does the same for the bundled app; this covers a bare binary).
	app.SetActivationPolicy(appkit.ApplicationActivationPolicyAccessory)
	setupStatusItem()
	startNotifications()
	go startEngine()
}

// startNotifications posts "stopped unexpectedly" notifications (policy in
// ui/notify, telling crashes from user stops; views in ui) for the engine
// events the controller sees. Their buttons lead to the logs or a restart.
func startNotifications() {
	ui.StartNotifications(func(act, id string) {
		defer guard("notification action")
		switch act {
		case notify.ActionShowLogs:
			if id != "" {
				showLogs(id)
			} else {
				showContainers()
			}
		case notify.ActionRestart:
			if id != "" {
				perform(model.Item{Action: model.ActRestart, Target: id})
			}
		default:
			showContainers()
		}
	})
	evs, _ := ctl.SubscribeEvents()
	go notify.Watch(context.Background(), notify.New(notify.Options{}), evs, func(n notify.Notification) {
		onMain(func() { ui.PostNotification(n) })
	})
}

func startEngine() {
	defer guard("startEngine")
	fetchKernel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := ctl.Start(ctx); err != nil {
		logger.Error("engine failed to start", "err", err)
		showAlert(model.ErrorAlert("start Berth's engine", err))
	}
}

// shouldTerminate runs the graceful quit: stop containers (with a progress
// window when it takes more than a second), shut the engine down, then let
// AppKit terminate.
func shouldTerminate() appkit.ApplicationTerminateReply {
	if !quitting.CompareAndSwap(false, true) {
		return appkit.TerminateLater // a quit is already under way
	}
	start := time.Now()
	go func() {
		defer guard("quit")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		err := ctl.Quit(ctx, func(done, total int) {
			if time.Since(start) > time.Second || total > 0 {
				onMain(func() { showQuitProgress(done, total, time.Since(start) > time.Second) })
			}
		})
		if err != nil {
			logger.Error("quit", "err", err)
		}
		onMain(func() { app.ReplyToApplicationShouldTerminate(true) })
	}()
	// Show the progress window only if stopping is not quick.
	time.AfterFunc(time.Second, func() { onMain(func() { showQuitProgress(-1, -1, true) }) })
	return appkit.TerminateLater
}

func showQuitProgress(done, total int, visible bool) {
	quitProg.make("Quitting Berth", "Stopping containers…")
	if total >= 0 {
		quitProg.set(float64(done), float64(max(total, 1)), fmt.Sprintf("Stopping containers… %d of %d", done, total))
	}
	if visible && quitting.Load() {
		quitProg.show()
	}
}

// fetchKernel offers the default kernel's download when it is missing
// (first launch), with progress; declining leaves the engine to report
// the missing kernel when a container starts.
func fetchKernel() {
	k := opts.Kernel
	if k == nil || !k.Needed() {
		return
	}
	answer := make(chan bool, 1)
	onMain(func() { answer <- confirm(k.Question(), "Download") })
	if !<-answer {
		return
	}
	onMain(func() { kernelProg.make("Downloading the Linux kernel", "Connecting…"); kernelProg.show() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	err := k.Run(ctx, func(done, total int64) {
		onMain(func() {
			text := model.FormatBytes(done)
			if total > 0 {
				text += " of " + model.FormatBytes(total)
			}
			kernelProg.set(float64(done), float64(max(total, done, 1)), "Downloading… "+text)
		})
	})
	onMain(func() { kernelProg.win.Close() })
	if err != nil {
		showAlert(model.ErrorAlert("download the Linux kernel", err))
	}
}

// progressWindow is a small titled window with a label and a bar.
type progressWindow struct {
	win   appkit.Window
	bar   appkit.ProgressIndicator
	label appkit.TextField
	made  bool
}

func (p *progressWindow) make(title, text string) {
	if p.made {
		return
	}
	p.win = appkit.NewWindowWithContentRectStyleMaskBackingDefer(rect(0, 0, 380, 90),
		appkit.WindowStyleMaskTitled, appkit.BackingStoreBuffered, false)
	p.win.SetReleasedWhenClosed(false)
	p.win.SetTitle(title)
	p.label = appkit.NewLabel(text)
	p.label.SetFrame(rect(20, 50, 340, 20))
	p.bar = appkit.NewProgressIndicatorWithFrame(rect(20, 20, 340, 20))
	p.bar.SetIndeterminate(false)
	p.bar.SetMinValue(0)
	p.win.ContentView().AddSubview(p.label)
	p.win.ContentView().AddSubview(p.bar)
	p.made = true
}

func (p *progressWindow) set(done, total float64, text string) {
	p.bar.SetMaxValue(total)
	p.bar.SetDoubleValue(done)
	p.label.SetStringValue(text)
}

func (p *progressWindow) show() {
	p.win.Center()
	bringForward(p.win)
}

// view implements shell.View: coalesce change notifications into one
// refresh on the main thread.
type view struct{}

func (view) Changed() {
	if refreshDue.CompareAndSwap(false, true) {
		onMain(func() {
			refreshDue.Store(false)
			refresh()
		})
	}
}

func (view) Alert(a model.Alert) { showAlert(a) }

// refresh updates everything visible from the controller's snapshot.
func refresh() {
	updateStatusItem()
	refreshContainers()
	refreshImages()
}

// onMain runs f on the main thread (AppKit's), recovering its panics.
func onMain(f func()) {
	dispatch.MainQueue().DispatchAsync(func() {
		defer guard("main queue")
		f()
	})
}

// guard is deferred first in every Go function that Objective-C calls: a
// panic must not unwind through Objective-C frames.
func guard(where string) {
	if r := recover(); r != nil {
		logger.Error("panic in AppKit callback", "where", where, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	}
}

func showAlert(a model.Alert) {
	onMain(func() {
		alert := appkit.NewAlert()
		alert.SetMessageText(a.Title)
		alert.SetInformativeText(a.Detail)
		alert.AddButtonWithTitle("OK")
		app.ActivateIgnoringOtherApps(true)
		alert.RunModal()
	})
}

// confirm asks a yes/no question (main thread only).
func confirm(question, yes string) bool {
	alert := appkit.NewAlert()
	alert.SetMessageText(question)
	alert.AddButtonWithTitle(yes)
	alert.AddButtonWithTitle("Cancel")
	app.ActivateIgnoringOtherApps(true)
	return alert.RunModal() == appkit.AlertFirstButtonReturn
}

func rect(x, y, w, h float64) foundation.Rect {
	return foundation.Rect{Origin: foundation.Point{X: x, Y: y}, Size: foundation.Size{Width: w, Height: h}}
}

// bringForward shows a window in front (accessory apps must activate first).
func bringForward(w appkit.Window) {
	app.ActivateIgnoringOtherApps(true)
	w.MakeKeyAndOrderFront(nil)
}
