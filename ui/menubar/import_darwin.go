//go:build darwin

package menubar

// Image import from drops (status item, Images window), Finder's Open With
// and the Import… panel. Every decision is portable ui/importer's: which
// files are what, whether a name is needed and valid, the one notification
// and the one alert per drop. This file only asks for names and shows
// progress and results.

import (
	"context"
	"path/filepath"
	"time"

	"github.com/progrium/darwinkit/helper/action"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/objc"

	"github.com/berth-dev/berth/ui"
	"github.com/berth-dev/berth/ui/importer"
	"github.com/berth-dev/berth/ui/model"
)

// BerthStatusDrop is a transparent view laid over the status item's button
// (NSStatusBarButton cannot be replaced by a subclass). It is a dragging
// destination for file URLs and answers hitTest: with nil, so clicks still
// reach the button underneath (AppKit finds drag destinations among views
// registered for the dragged types, not through hitTest:). No Go fields.
type BerthStatusDrop struct {
	appkit.View `objc:"NSView"`
}

var statusDropClass = registered(objc.NewClass[BerthStatusDrop](
	objc.Sel("draggingEntered:"),
	objc.Sel("draggingExited:"),
	objc.Sel("performDragOperation:"),
	objc.Sel("hitTest:"),
))

var statusDrop BerthStatusDrop // long-lived: the button does not own our Go side

func (v BerthStatusDrop) DraggingEntered(info appkit.DraggingInfoObject) appkit.DragOperation {
	defer guard("status draggingEntered")
	statusItem.Button().Highlight(true)
	return appkit.DragOperationCopy
}

func (v BerthStatusDrop) DraggingExited(info appkit.DraggingInfoObject) {
	defer guard("status draggingExited")
	statusItem.Button().Highlight(false)
}

func (v BerthStatusDrop) PerformDragOperation(info appkit.DraggingInfoObject) bool {
	defer guard("status performDragOperation")
	statusItem.Button().Highlight(false)
	paths := droppedPaths(info)
	importPaths(paths)
	return len(paths) > 0
}

func (v BerthStatusDrop) HitTest(p foundation.Point) appkit.View {
	defer guard("status hitTest")
	return appkit.View{} // nil: clicks go to the button
}

// addStatusDropTarget lays the drop view over the status item's button
// (main thread, after the status item exists).
func addStatusDropTarget() {
	b := statusItem.Button()
	statusDrop = BerthStatusDrop{View: appkit.ViewFrom(statusDropClass.CreateInstance(0).Ptr()).InitWithFrame(b.Bounds())}
	statusDrop.Retain()
	statusDrop.SetAutoresizingMask(appkit.ViewWidthSizable | appkit.ViewHeightSizable)
	statusDrop.RegisterForDraggedTypes([]appkit.PasteboardType{appkit.PasteboardTypeFileURL})
	b.AddSubview(statusDrop)
}

// droppedPaths reads the file URLs of a drag (files and folders).
func droppedPaths(info appkit.DraggingInfoObject) []string {
	objs := info.DraggingPasteboard().ReadObjectsForClassesOptions([]objc.IClass{foundation.URLClass},
		map[appkit.PasteboardReadingOptionKey]objc.IObject{appkit.PasteboardURLReadingFileURLsOnlyKey: foundation.Number_NumberWithBool(true)})
	var paths []string
	for _, o := range objs {
		paths = append(paths, foundation.URLFrom(o.Ptr()).Path())
	}
	return paths
}

var (
	importProg   progressWindow
	importCancel context.CancelFunc // the running import's, while its window shows (main thread)
	importStop   appkit.Button
)

// addCancelButton gives the import progress window a Cancel button (once):
// cancelling stops the upload; the engine then commits nothing of the
// file being sent (the store stages everything before it commits).
func addCancelButton() {
	if importStop.Ptr() != nil {
		return
	}
	importProg.win.SetContentSize(foundation.Size{Width: 380, Height: 120})
	importProg.label.SetFrame(rect(20, 80, 340, 20))
	importProg.bar.SetFrame(rect(20, 52, 340, 20))
	importStop = appkit.NewButtonWithTitle("Cancel")
	importStop.SetFrame(rect(270, 12, 90, 28))
	action.Set(importStop, func(objc.Object) {
		defer guard("cancel import")
		if importCancel != nil {
			importCancel()
		}
	})
	importProg.win.ContentView().AddSubview(importStop)
}

// importPaths imports a drop (or Finder's open, or the panel's choice):
// classify off the main thread, ask names for root filesystem tars on it,
// import with progress, then one notification for what loaded and one
// alert for what was refused.
func importPaths(paths []string) {
	if len(paths) == 0 {
		return
	}
	go func() {
		defer guard("import")
		accepted, refused := importer.Plan(paths) // reads the files: not on the main thread
		var reqs []importer.Request
		for _, it := range accepted {
			if !it.NeedsName() {
				reqs = append(reqs, importer.Request{Item: it})
				continue
			}
			answer := make(chan *importer.Request, 1)
			onMain(func() { answer <- askName(it) })
			if req := <-answer; req != nil {
				reqs = append(reqs, *req)
			}
		}
		var results []importer.Result
		if len(reqs) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			onMain(func() {
				importProg.make("Importing images", "Starting…")
				addCancelButton()
				importCancel = cancel
				importProg.show()
				if imgWinMade {
					imgProgress.SetHidden(false)
				}
			})
			last := time.Time{}
			results = ctl.ImportAll(ctx, reqs, func(p importer.Progress) {
				if time.Since(last) < 100*time.Millisecond && p.Done < p.Total {
					return // at most ~10 redraws a second
				}
				last = time.Now()
				text, frac := p.Text(), p.Fraction()
				onMain(func() {
					importProg.set(frac, 1, text)
					if imgWinMade {
						imgProgress.SetDoubleValue(frac)
						imgStatus.SetStringValue(text)
					}
				})
			})
			cancel()
			onMain(func() {
				importCancel = nil
				importProg.win.Close()
				if imgWinMade {
					imgProgress.SetHidden(true)
				}
			})
		}
		out := importer.Summarize(append(results, refused...))
		if n := out.Notification; n != nil {
			setImagesStatus(n.Title + ": " + n.Body)
			onMain(func() {
				if foundation.Bundle_MainBundle().BundleIdentifier() == "" {
					// A bare binary cannot post notifications: say it here.
					showAlert(model.Alert{Title: n.Title, Detail: n.Body})
					return
				}
				ui.PostNotification(*n)
			})
		}
		if a := out.Alert; a != nil {
			showAlert(*a)
		}
	}()
}

// askName asks for the name of the image made from a root filesystem tar
// (main thread): an alert with a text field, asked again while the name is
// invalid. nil means the user skipped the file.
func askName(it importer.Item) *importer.Request {
	field := appkit.NewTextFieldWithFrame(rect(0, 0, 300, 24))
	field.SetStringValue(importer.SuggestName(it.Path))
	info := "This is a " + it.Describe() + ", not an image archive. Berth makes a one-layer image from it; name that image."
	for {
		alert := appkit.NewAlert()
		alert.SetMessageText("Name the image for " + filepath.Base(it.Path))
		alert.SetInformativeText(info)
		alert.SetAccessoryView(field)
		alert.AddButtonWithTitle("Import")
		alert.AddButtonWithTitle("Skip")
		alert.Window().SetInitialFirstResponder(field)
		app.ActivateIgnoringOtherApps(true)
		if alert.RunModal() != appkit.AlertFirstButtonReturn {
			return nil
		}
		req, err := importer.NewRequest(it, field.StringValue())
		if err == nil {
			return &req
		}
		info = err.Error()
	}
}
