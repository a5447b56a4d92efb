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

	"github.com/berth-dev/berth/ui/model"
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
}

// Long-lived AppKit objects and app state. Package-level so the GC never
// releases what AppKit still shows; touched only on the main thread.
var (
	opts     Options
	ctl      *shell.Controller
	app      appkit.Application
	delegate *appkit.ApplicationDelegate
	logger   *slog.Logger

	quitting    atomic.Bool
	refreshDue  atomic.Bool // a Changed() is queued on the main thread
	quitWin     appkit.Window
	quitBar     appkit.ProgressIndicator
	quitLabel   appkit.TextField
	quitWinMade bool
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
		for _, u := range urls {
			if u.IsFileURL() {
				importFile(u.Path())
			}
		}
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
	go startEngine()
}

func startEngine() {
	defer guard("startEngine")
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
	if !quitWinMade {
		quitWin = appkit.NewWindowWithContentRectStyleMaskBackingDefer(rect(0, 0, 360, 90),
			appkit.WindowStyleMaskTitled, appkit.BackingStoreBuffered, false)
		quitWin.SetReleasedWhenClosed(false)
		quitWin.SetTitle("Quitting Berth")
		quitLabel = appkit.NewLabel("Stopping containers…")
		quitLabel.SetFrame(rect(20, 50, 320, 20))
		quitBar = appkit.NewProgressIndicatorWithFrame(rect(20, 20, 320, 20))
		quitBar.SetIndeterminate(false)
		quitBar.SetMinValue(0)
		quitWin.ContentView().AddSubview(quitLabel)
		quitWin.ContentView().AddSubview(quitBar)
		quitWinMade = true
	}
	if total >= 0 {
		quitBar.SetMaxValue(float64(max(total, 1)))
		quitBar.SetDoubleValue(float64(done))
		quitLabel.SetStringValue(fmt.Sprintf("Stopping containers… %d of %d", done, total))
	}
	if visible && quitting.Load() {
		quitWin.Center()
		quitWin.MakeKeyAndOrderFront(nil)
		app.ActivateIgnoringOtherApps(true)
	}
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
