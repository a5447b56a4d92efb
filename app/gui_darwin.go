//go:build darwin

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/app/api"
	"github.com/berth-dev/berth/app/cli"
	"github.com/berth-dev/berth/app/engine"
	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/kernel"
	"github.com/berth-dev/berth/ui/menubar"
	"github.com/berth-dev/berth/ui/model"
	"github.com/berth-dev/berth/ui/shell"
)

// guiLaunch: started from Berth.app with no arguments (or Finder's -psn_…).
func guiLaunch(args []string) bool {
	exe, err := os.Executable()
	return err == nil && shell.IsAppLaunch(args, exe)
}

// runGUI composes the menu-bar app: settings from the default data root, the
// engine (vz backend) in-process, the AppKit shell on the main thread.
func runGUI() int {
	exe, _ := os.Executable()
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	home, err := dataroot.Resolve("")
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		return 1
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		return 1
	}
	// An app has no terminal: log to a file in the data root.
	logFile, err := os.OpenFile(filepath.Join(home, "berth.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		logFile = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))
	settings, serr := model.LoadSettings(home)
	if serr != nil {
		log.Error("settings", "err", serr) // defaults are used; the Settings window shows the error
	}
	engineDir := home
	if settings.DataRoot != "" {
		engineDir = settings.DataRoot
	}
	root, err := dataroot.Open(engineDir)
	if err != nil {
		log.Error("data root", "err", err)
		fmt.Fprintln(os.Stderr, "berth:", err)
		return 1
	}
	eng := &appEngine{root: root, log: log, settings: settings}
	o := menubar.Options{
		Engine: eng, DataDir: home, EngineRoot: engineDir, Exe: exe, Log: log,
		Limits: hostLimits(),
	}
	if settings.KernelSource != model.KernelCustom && runtime.GOARCH == "arm64" {
		o.Kernel = &shell.KernelFetch{KernelsDir: root.Kernels(), Source: kernel.Kata}
	}
	return menubar.Run(o)
}

// appEngine is the engine `berth daemon` runs, hosted by the app.
type appEngine struct {
	root     dataroot.Root
	log      *slog.Logger
	settings model.Settings
	eng      *engine.Engine
	srv      *api.Server
}

func (e *appEngine) Socket() string { return e.root.Socket() }

func (e *appEngine) Start(ctx context.Context) error {
	if e.eng != nil { // Retry after a failure that happened later on
		return nil
	}
	o := engine.Options{Root: e.root, Log: e.log, DefaultCPUs: e.settings.DefaultCPUs, DefaultMemoryMiB: int(e.settings.DefaultMemoryMiB)}
	if e.settings.KernelSource == model.KernelCustom {
		o.Kernel = e.settings.KernelPath
	}
	eng, err := engine.Open(ctx, o)
	if err != nil {
		return err
	}
	srv := api.New(api.Options{Version: cli.Version, Backend: cli.APIBackend(eng, e.root.Dir)})
	ln, err := api.ListenUnix(e.root.Socket())
	if err != nil {
		eng.Close(context.Background())
		return err
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			e.log.Error("engine API", "err", err)
		}
	}()
	e.eng, e.srv = eng, srv
	return nil
}

func (e *appEngine) Shutdown(ctx context.Context) error {
	if e.srv != nil {
		e.srv.Shutdown(ctx)
	}
	var err error
	if e.eng != nil {
		err = e.eng.Close(ctx)
		e.eng = nil
	}
	os.Remove(e.root.Socket())
	return err
}

// hostLimits bound the Run dialog and Settings: this Mac's CPUs and memory.
func hostLimits() model.RunLimits {
	lim := model.RunLimits{MaxCPUs: runtime.NumCPU()}
	if mem, err := unix.SysctlUint64("hw.memsize"); err == nil {
		lim.MaxMemoryMiB = int64(mem >> 20)
	}
	return lim
}
