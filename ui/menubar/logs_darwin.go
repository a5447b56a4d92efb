//go:build darwin

package menubar

import (
	"context"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/moby/moby/api/types/container"
	"github.com/progrium/darwinkit/helper/action"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/objc"

	"github.com/berth-dev/berth/ui/model"
)

// logWindow is one container's Logs window: follow, search (show matching
// lines), timestamps toggle, copy; the buffer keeps memory bounded.
type logWindow struct {
	id       string
	win      appkit.Window
	text     appkit.TextView
	search   appkit.SearchField
	stamps   appkit.Button
	follow   appkit.Button
	status   appkit.TextField
	buf      *model.LogBuffer
	cancel   context.CancelFunc
	drawDue  atomic.Bool
	winDeleg *appkit.WindowDelegate
}

// logWins holds every Logs window (package-level: AppKit objects must stay
// reachable; closed windows are reused when reopened).
var logWins = map[string]*logWindow{}

func showLogs(id string) {
	lw, ok := logWins[id]
	if !ok {
		lw = newLogWindow(id)
		logWins[id] = lw
	}
	if lw.cancel == nil {
		lw.start()
	}
	lw.win.Center()
	bringForward(lw.win)
}

func newLogWindow(id string) *logWindow {
	lw := &logWindow{id: id, buf: model.NewLogBuffer(20000, 8<<20)}
	lw.win = appkit.NewWindowWithSize(820, 520)
	lw.win.SetReleasedWhenClosed(false)
	lw.win.SetTitle("Logs — " + containerName(id))
	content := lw.win.ContentView()

	sv := appkit.TextView_ScrollableTextView()
	sv.SetFrame(rect(10, 10, 800, 460))
	sv.SetAutoresizingMask(appkit.ViewWidthSizable | appkit.ViewHeightSizable)
	lw.text = appkit.TextViewFrom(sv.DocumentView().Ptr())
	lw.text.SetEditable(false)
	lw.text.SetRichText(false)
	lw.text.SetFont(appkit.Font_MonospacedSystemFontOfSizeWeight(11, appkit.FontWeightRegular))
	content.AddSubview(sv)

	lw.search = appkit.NewSearchFieldWithFrame(rect(10, 480, 260, 26))
	lw.search.SetPlaceholderString("Show lines containing…")
	lw.search.SetAutoresizingMask(appkit.ViewMinYMargin)
	action.Set(lw.search, func(objc.Object) { defer guard("log search"); lw.draw() })
	content.AddSubview(lw.search)

	lw.stamps = checkbox("Timestamps")
	lw.stamps.SetFrame(rect(280, 480, 110, 26))
	lw.stamps.SetAutoresizingMask(appkit.ViewMinYMargin)
	action.Set(lw.stamps, func(objc.Object) { defer guard("log timestamps"); lw.draw() })
	content.AddSubview(lw.stamps)

	lw.follow = checkbox("Follow")
	lw.follow.SetFrame(rect(390, 480, 80, 26))
	lw.follow.SetState(appkit.ControlStateValueOn)
	lw.follow.SetAutoresizingMask(appkit.ViewMinYMargin)
	content.AddSubview(lw.follow)

	cp := appkit.NewButtonWithTitle("Copy All")
	cp.SetFrame(rect(480, 478, 90, 28))
	cp.SetAutoresizingMask(appkit.ViewMinYMargin)
	action.Set(cp, func(objc.Object) {
		defer guard("log copy")
		pb := appkit.Pasteboard_GeneralPasteboard()
		pb.ClearContents()
		pb.SetStringForType(lw.rendered(), appkit.PasteboardTypeString)
	})
	content.AddSubview(cp)

	lw.status = appkit.NewLabel("")
	lw.status.SetFrame(rect(580, 482, 230, 20))
	lw.status.SetAutoresizingMask(appkit.ViewMinYMargin)
	content.AddSubview(lw.status)

	// Closing the window stops following (the buffer is kept for reopen).
	lw.winDeleg = &appkit.WindowDelegate{}
	lw.winDeleg.SetWindowWillClose(func(foundation.Notification) {
		defer guard("log window close")
		if lw.cancel != nil {
			lw.cancel()
			lw.cancel = nil
		}
	})
	lw.win.SetDelegate(lw.winDeleg)

	// Redraw on new output, coalesced to at most ten times a second; no
	// timer runs while nothing arrives.
	lw.buf.OnChange(func() {
		if lw.drawDue.CompareAndSwap(false, true) {
			time.AfterFunc(100*time.Millisecond, func() {
				onMain(func() { lw.drawDue.Store(false); lw.draw() })
			})
		}
	})
	return lw
}

func (lw *logWindow) start() {
	ctx, cancel := context.WithCancel(context.Background())
	lw.cancel = cancel
	lw.buf.Clear()
	tty := false
	for _, c := range ctl.Snap.Containers() {
		if c.ID == lw.id && c.State == container.StateRunning {
			lw.status.SetStringValue("following…")
		}
	}
	go func() {
		defer guard("follow logs")
		if in, err := ctl.Inspect(ctx, lw.id); err == nil && in.Config != nil {
			tty = in.Config.Tty
		}
		err := ctl.FollowLogs(ctx, lw.id, tty, lw.buf)
		onMain(func() {
			if err != nil {
				lw.status.SetStringValue("log stream ended: " + err.Error())
			} else if ctx.Err() == nil {
				lw.status.SetStringValue("container stopped")
			}
		})
	}()
}

func (lw *logWindow) rendered() string {
	ts := lw.stamps.State() == appkit.ControlStateValueOn
	if q := lw.search.StringValue(); q != "" {
		return lw.buf.Filter(q, ts)
	}
	return lw.buf.Text(ts)
}

func (lw *logWindow) draw() {
	s := lw.rendered()
	lw.text.SetString(s)
	if lw.follow.State() == appkit.ControlStateValueOn {
		// NSString ranges count UTF-16 units; the end is a valid empty range.
		lw.text.ScrollRangeToVisible(foundation.Range{Location: uint64(len(utf16.Encode([]rune(s))))})
	}
	if n := lw.buf.Trimmed(); n > 0 {
		lw.status.SetStringValue(model.FormatBytes(int64(lw.buf.Bytes())) + " shown; older lines trimmed")
	}
}

// checkbox is a switch-style button (no target needed; action.Set adds one).
func checkbox(title string) appkit.Button {
	b := appkit.NewButtonWithTitle(title)
	b.SetButtonType(appkit.ButtonTypeSwitch)
	return b
}
