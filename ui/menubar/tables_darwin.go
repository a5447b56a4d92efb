//go:build darwin

package menubar

import (
	"context"
	"time"
	"unsafe"

	"github.com/moby/moby/client"
	"github.com/progrium/darwinkit/helper/action"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/objc"

	"github.com/berth-dev/berth/ui/model"
)

// BerthTableSource is the one Objective-C class serving every table's data
// (NSTableViewDataSource, cell-based). It has no Go fields: the rows of each
// instance live in tableData, keyed by the instance's pointer.
type BerthTableSource struct {
	objc.Object `objc:"NSObject"`
}

type tableRows struct {
	count func() int
	cell  func(row int, col string) string
}

var (
	tableData        = map[unsafe.Pointer]*tableRows{}
	tableSourceClass = registered(objc.NewClass[BerthTableSource](
		objc.Sel("numberOfRowsInTableView:"),
		objc.Sel("tableView:objectValueForTableColumn:row:"),
	))
)

func (s BerthTableSource) NumberOfRowsInTableView(tv appkit.TableView) int {
	defer guard("numberOfRows")
	if d := tableData[s.Ptr()]; d != nil {
		return d.count()
	}
	return 0
}

func (s BerthTableSource) TableViewObjectValueForTableColumnRow(tv appkit.TableView, col appkit.TableColumn, row int) objc.Object {
	defer guard("objectValue")
	d := tableData[s.Ptr()]
	if d == nil || row < 0 || row >= d.count() {
		return foundation.String_StringWithString("").Object
	}
	return foundation.String_StringWithString(d.cell(row, string(col.Identifier()))).Object
}

// newTable builds a scrollable table with columns (identifier, title,
// width) served by a new BerthTableSource instance.
func newTable(cols [][2]string, widths map[string]float64, rows *tableRows) (appkit.ScrollView, appkit.TableView, BerthTableSource) {
	tv := appkit.NewTableView()
	tv.SetUsesAlternatingRowBackgroundColors(true)
	tv.SetColumnAutoresizingStyle(appkit.TableViewUniformColumnAutoresizingStyle)
	for _, c := range cols {
		col := appkit.NewTableColumn().InitWithIdentifier(appkit.UserInterfaceItemIdentifier(c[0]))
		col.SetTitle(c[1])
		w := widths[c[0]]
		if w == 0 {
			w = 110
		}
		col.SetWidth(w)
		col.SetEditable(false)
		tv.AddTableColumn(col)
	}
	src := objc.ObjectFrom(tableSourceClass.CreateInstance(0).Ptr())
	src = objc.Call[objc.Object](src, objc.Sel("init"))
	ds := BerthTableSource{Object: src}
	tableData[ds.Ptr()] = rows
	// SetDataSourceObject does not retain (dataSource is weak): the
	// package-level window state below keeps ds; the ObjC side is
	// retained once here for the life of the process.
	ds.Retain()
	tv.SetDataSourceObject(ds)
	sv := appkit.NewScrollView()
	sv.SetDocumentView(tv)
	sv.SetHasVerticalScroller(true)
	sv.SetHasHorizontalScroller(true)
	sv.SetAutohidesScrollers(true)
	return sv, tv, ds
}

// --- Containers window ---------------------------------------------------

var (
	ctrWin     appkit.Window
	ctrTable   appkit.TableView
	ctrSource  BerthTableSource
	ctrRows    []model.ContainerRow
	ctrWinMade bool
	ctrButtons = map[model.Action]appkit.Button{}
	ctrDeleg   *appkit.WindowDelegate
	ctrStats   context.CancelFunc // live stats streams while the window is open
)

func showContainers() {
	if !ctrWinMade {
		ctrWin = appkit.NewWindowWithSize(900, 420)
		ctrWin.SetReleasedWhenClosed(false)
		ctrWin.SetTitle("Berth — Containers")
		sv, tv, ds := newTable(model.ContainerColumns, map[string]float64{"name": 150, "image": 180, "state": 170, "ports": 200},
			&tableRows{count: func() int { return len(ctrRows) }, cell: func(r int, c string) string { return ctrRows[r].Cell(c) }})
		ctrTable, ctrSource = tv, ds
		target, sel := action.Wrap(func(objc.Object) {
			defer guard("containers double-click")
			if r := ctrTable.ClickedRow(); r >= 0 && r < len(ctrRows) {
				showDetails(ctrRows[r].ID)
			}
		})
		keptTargets = append(keptTargets, target)
		tv.SetTarget(target)
		tv.SetDoubleAction(sel)

		content := ctrWin.ContentView()
		sv.SetFrame(rect(10, 50, 880, 360))
		sv.SetAutoresizingMask(appkit.ViewWidthSizable | appkit.ViewHeightSizable)
		content.AddSubview(sv)
		x := 10.0
		for _, a := range []struct {
			act   model.Action
			title string
		}{{model.ActStart, "Start"}, {model.ActStop, "Stop"}, {model.ActRestart, "Restart"}, {model.ActTerminal, "Terminal"},
			{model.ActLogs, "Logs"}, {model.ActShowDetails, "Details"}, {model.ActRemove, "Remove…"}, {model.ActRun, "Run Image…"}} {
			act := a.act
			b := appkit.NewButtonWithTitle(a.title)
			b.SetFrame(rect(x, 12, 100, 28))
			action.Set(b, func(objc.Object) {
				defer guard("containers button")
				containerButton(act)
			})
			content.AddSubview(b)
			ctrButtons[act] = b
			x += 108
		}
		ctrDeleg = &appkit.WindowDelegate{}
		ctrDeleg.SetWindowWillClose(func(foundation.Notification) {
			defer guard("containers close")
			if ctrStats != nil {
				ctrStats()
				ctrStats = nil
			}
		})
		ctrWin.SetDelegate(ctrDeleg)
		ctrWinMade = true
	}
	if ctrStats == nil {
		ctx, cancel := context.WithCancel(context.Background())
		ctrStats = cancel
		go func() { defer guard("stats"); ctl.WatchStats(ctx) }()
	}
	refreshContainers()
	ctrWin.Center()
	bringForward(ctrWin)
}

// containerButton applies an action to the selected row, with the same
// enabling rules and confirmations as the menu.
func containerButton(act model.Action) {
	if act == model.ActRun {
		showRunDialog()
		return
	}
	r := ctrTable.SelectedRow()
	if r < 0 || r >= len(ctrRows) {
		return
	}
	for _, it := range ctrRows[r].Actions {
		if it.Action == act && it.Enabled {
			perform(it)
			return
		}
	}
}

func refreshContainers() {
	if !ctrWinMade {
		return
	}
	ctrRows = model.ContainerRows(ctl.Snap.Containers(), ctl.Snap.Stats(), time.Now())
	ctrTable.ReloadData()
}

// --- Details --------------------------------------------------------------

var detailWins = map[string]appkit.Window{}

func showDetails(id string) {
	go func() {
		defer guard("details")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		in, err := ctl.Inspect(ctx, id)
		if err != nil {
			showAlert(model.ErrorAlert("inspect "+containerName(id), err))
			return
		}
		text := ""
		for _, d := range model.ContainerDetails(in, time.Now()) {
			text += d.Label + ":\t" + d.Value + "\n"
		}
		onMain(func() {
			w, ok := detailWins[id]
			if !ok {
				w = appkit.NewWindowWithSize(560, 380)
				w.SetReleasedWhenClosed(false)
				sv := appkit.TextView_ScrollableTextView()
				sv.SetFrame(rect(0, 0, 560, 380))
				sv.SetAutoresizingMask(appkit.ViewWidthSizable | appkit.ViewHeightSizable)
				w.SetContentView(sv)
				detailWins[id] = w
			}
			w.SetTitle("Details — " + containerName(id))
			tv := appkit.TextViewFrom(appkit.ScrollViewFrom(w.ContentView().Ptr()).DocumentView().Ptr())
			tv.SetEditable(false)
			tv.SetString(text)
			w.Center()
			bringForward(w)
		})
	}()
}

// --- Images window --------------------------------------------------------

// BerthDropView is the Images window's content view: it accepts image
// archives dragged from Finder (NSDraggingDestination on an NSView
// subclass; no Go fields).
type BerthDropView struct {
	appkit.View `objc:"NSView"`
}

var dropViewClass = registered(objc.NewClass[BerthDropView](
	objc.Sel("draggingEntered:"),
	objc.Sel("performDragOperation:"),
))

// registered finishes a class made by objc.NewClass (objc_registerClassPair);
// classes are made once, at package init, since their names are global.
func registered[T objc.IObject](c objc.UserClass[T]) objc.UserClass[T] {
	objc.RegisterClass(c)
	return c
}

func (v BerthDropView) DraggingEntered(info appkit.DraggingInfoObject) appkit.DragOperation {
	defer guard("draggingEntered")
	return appkit.DragOperationCopy
}

func (v BerthDropView) PerformDragOperation(info appkit.DraggingInfoObject) bool {
	defer guard("performDragOperation")
	paths := droppedPaths(info)
	importPaths(paths)
	return len(paths) > 0
}

var (
	imgWin      appkit.Window
	imgTable    appkit.TableView
	imgSource   BerthTableSource
	imgRows     []model.ImageRow
	imgPull     appkit.TextField
	imgProgress appkit.ProgressIndicator
	imgStatus   appkit.TextField
	imgDrop     BerthDropView
	imgWinMade  bool
)

func showImages() {
	if !imgWinMade {
		imgWin = appkit.NewWindowWithSize(820, 440)
		imgWin.SetReleasedWhenClosed(false)
		imgWin.SetTitle("Berth — Images (drop an image archive here to import it)")
		imgDrop = BerthDropView{View: appkit.ViewFrom(dropViewClass.CreateInstance(0).Ptr()).InitWithFrame(rect(0, 0, 820, 440))}
		imgDrop.Retain()
		imgDrop.RegisterForDraggedTypes([]appkit.PasteboardType{appkit.PasteboardTypeFileURL})
		imgWin.SetContentView(imgDrop)

		sv, tv, ds := newTable(model.ImageColumns, map[string]float64{"repository": 220, "digest": 120, "created": 130},
			&tableRows{count: func() int { return len(imgRows) }, cell: func(r int, c string) string { return imgRows[r].Cell(c) }})
		imgTable, imgSource = tv, ds
		sv.SetFrame(rect(10, 80, 800, 350))
		sv.SetAutoresizingMask(appkit.ViewWidthSizable | appkit.ViewHeightSizable)
		imgDrop.AddSubview(sv)

		imgPull = appkit.NewTextFieldWithFrame(rect(10, 46, 420, 24))
		imgPull.SetPlaceholderString("Image to pull, e.g. nginx:latest")
		imgDrop.AddSubview(imgPull)
		pull := appkit.NewButtonWithTitle("Pull")
		pull.SetFrame(rect(440, 44, 80, 28))
		action.Set(pull, func(objc.Object) {
			defer guard("pull")
			startPull(imgPull.StringValue())
		})
		imgDrop.AddSubview(pull)
		imp := appkit.NewButtonWithTitle("Import…")
		imp.SetFrame(rect(530, 44, 90, 28))
		action.Set(imp, func(objc.Object) { defer guard("import button"); chooseImport() })
		imgDrop.AddSubview(imp)
		rm := appkit.NewButtonWithTitle("Remove")
		rm.SetFrame(rect(630, 44, 90, 28))
		action.Set(rm, func(objc.Object) { defer guard("remove image"); removeSelectedImage() })
		imgDrop.AddSubview(rm)

		imgProgress = appkit.NewProgressIndicatorWithFrame(rect(10, 14, 300, 20))
		imgProgress.SetIndeterminate(false)
		imgProgress.SetMinValue(0)
		imgProgress.SetMaxValue(1)
		imgProgress.SetHidden(true)
		imgDrop.AddSubview(imgProgress)
		imgStatus = appkit.NewLabel("")
		imgStatus.SetFrame(rect(320, 14, 490, 20))
		imgDrop.AddSubview(imgStatus)
		imgWinMade = true
	}
	refreshImages()
	imgWin.Center()
	bringForward(imgWin)
}

func refreshImages() {
	if !imgWinMade {
		return
	}
	imgRows = model.ImageRows(ctl.Snap.Images(), time.Now())
	imgTable.ReloadData()
}

func setImagesStatus(s string) {
	onMain(func() {
		if imgWinMade {
			imgStatus.SetStringValue(s)
		}
	})
}

func startPull(ref string) {
	if ref == "" {
		return
	}
	imgProgress.SetHidden(false)
	imgProgress.SetDoubleValue(0)
	go func() {
		defer guard("pull")
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		err := ctl.Pull(ctx, ref, func(p model.PullProgress) {
			frac, text := p.Fraction(), p.Text()
			onMain(func() { imgProgress.SetDoubleValue(frac); imgStatus.SetStringValue(text) })
		})
		onMain(func() { imgProgress.SetHidden(true) })
		if err != nil {
			setImagesStatus("")
			showAlert(model.ErrorAlert("pull "+ref, err))
			return
		}
		setImagesStatus("Pulled " + ref)
	}()
}

func removeSelectedImage() {
	r := imgTable.SelectedRow()
	if r < 0 || r >= len(imgRows) {
		return
	}
	row := imgRows[r]
	q := "Remove image " + row.Ref + "?"
	if row.InUse {
		q = "Image " + row.Ref + " is used by a container. Remove the tag anyway?"
	}
	if !confirm(q, "Remove") {
		return
	}
	go func() {
		defer guard("remove image")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cli := ctl.Client()
		if cli == nil {
			return
		}
		if _, err := cli.ImageRemove(ctx, row.Ref, client.ImageRemoveOptions{}); err != nil {
			showAlert(model.ErrorAlert("remove "+row.Ref, err))
		}
	}()
}
