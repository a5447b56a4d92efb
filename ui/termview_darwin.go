//go:build darwin

package ui

// The console window: an NSView subclass that draws a console.Session's
// terminal model and sends keyboard, mouse and paste input to it. All
// terminal logic (key encoding, runs, colours, selection text, grid size)
// lives in portable ui/term and ui/console; this file maps it onto AppKit.
// Everything here runs on the main thread; every callback recovers.

import (
	"fmt"
	"log"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/progrium/darwinkit/dispatch"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/objc"

	"github.com/berth-dev/berth/ui/console"
	"github.com/berth-dev/berth/ui/term"
)

// ConsoleOptions are the console settings.
type ConsoleOptions struct {
	OptionAsMeta bool    // Option sends Meta (ESC-prefixed) instead of composing characters
	FontSize     float64 // points; default 13
}

var consoleOpts = ConsoleOptions{FontSize: 13}

// SetConsoleOptions applies the console settings to new and open windows.
func SetConsoleOptions(o ConsoleOptions) {
	if o.FontSize <= 0 {
		o.FontSize = 13
	}
	consoleOpts = o
}

const pad = 4.0

var (
	defFg = [3]uint8{229, 229, 229}
	defBg = [3]uint8{28, 28, 30}
)

// TermView is the NSView subclass. It has no Go fields (darwinkit rebuilds
// the receiver per call); state lives in views, keyed by the view pointer.
type TermView struct {
	appkit.View `objc:"NSView"`
}

type viewState struct {
	s        *console.Session
	view     appkit.View
	win      appkit.Window
	detach   func()
	observer objc.Object
	fonts    [4]appkit.Font // regular, bold, italic, bold italic
	cellW    float64
	cellH    float64
	ascent   float64
	scroll   int // rows scrolled back into history (0 = live)
	selA     term.Pos
	selB     term.Pos
	selOn    bool
	pending  atomic.Bool  // a redraw is scheduled
	last     atomic.Int64 // last redraw, UnixNano (for the 60 fps cap)
	runs     []term.Run
	attrs    map[attrKey]objc.Object // text attribute dictionaries, retained
	exited   bool
	cols     int
	rows     int
}

var (
	views   = map[unsafe.Pointer]*viewState{}
	windows = map[*console.Session]*viewState{}
	colors  = map[[3]uint8]appkit.Color{}
)

var termViewClass = sync.OnceValue(func() objc.UserClass[TermView] {
	c := objc.NewClass[TermView](
		objc.Sel("drawRect:"), objc.Sel("isFlipped"), objc.Sel("acceptsFirstResponder"),
		objc.Sel("becomeFirstResponder"), objc.Sel("resignFirstResponder"),
		objc.Sel("keyDown:"), objc.Sel("mouseDown:"), objc.Sel("mouseDragged:"), objc.Sel("mouseUp:"),
		objc.Sel("rightMouseDown:"), objc.Sel("scrollWheel:"),
		objc.Sel("copy:"), objc.Sel("paste:"), objc.Sel("selectAll:"),
	)
	objc.RegisterClass(c)
	return c
})

// guard recovers a panic in a callback from Objective-C (unwinding through
// ObjC frames would crash the app) and logs it.
func guard(where string) {
	if r := recover(); r != nil {
		log.Printf("console: panic in %s: %v\n%s", where, r, debug.Stack())
	}
}

func (v TermView) state() *viewState { return views[v.Ptr()] }

// OpenConsoleWindow shows s in a window, or brings its window forward if it
// has one. Closing the window detaches; the session keeps running until its
// shell exits or End is called. Call on the main thread.
func OpenConsoleWindow(s *console.Session) {
	defer guard("OpenConsoleWindow")
	if st, ok := windows[s]; ok {
		st.win.MakeKeyAndOrderFront(nil)
		appkit.Application_SharedApplication().ActivateIgnoringOtherApps(true)
		return
	}
	st := &viewState{s: s}
	st.loadFonts()
	var cols, rows int
	s.With(func(m *term.Terminal) { cols, rows = m.Size() })
	size := foundation.Size{Width: float64(cols)*st.cellW + 2*pad, Height: float64(rows)*st.cellH + 2*pad}
	frame := foundation.Rect{Size: size}
	win := appkit.NewWindowWithContentRectStyleMaskBackingDefer(frame,
		appkit.WindowStyleMaskTitled|appkit.WindowStyleMaskClosable|appkit.WindowStyleMaskResizable|appkit.WindowStyleMaskMiniaturizable,
		appkit.BackingStoreBuffered, false)
	win.SetReleasedWhenClosed(false)
	win.Retain()
	win.SetTitle(s.Title() + " — Berth")
	win.SetContentResizeIncrements(foundation.Size{Width: st.cellW, Height: st.cellH})

	view := appkit.ViewFrom(termViewClass().CreateInstance(0).Ptr()).InitWithFrame(frame)
	st.view, st.win, st.cols, st.rows = view, win, cols, rows
	views[view.Ptr()] = st
	windows[s] = st
	win.SetContentView(view)
	view.Release() // the window owns it now (CreateInstance returned +1)

	view.SetPostsFrameChangedNotifications(true)
	st.observer = foundation.NotificationCenter_DefaultCenter().AddObserverForNameObjectQueueUsingBlock(
		"NSViewFrameDidChangeNotification", view, foundation.OperationQueue_MainQueue(),
		func(foundation.Notification) { defer guard("frame change"); st.resized() })
	st.observer.Retain()

	del := &appkit.WindowDelegate{}
	del.SetWindowWillClose(func(foundation.Notification) { defer guard("windowWillClose"); st.close() })
	win.SetDelegate(del)

	st.detach = s.Attach(st.schedule)
	go func() {
		<-s.Done()
		dispatch.MainQueue().DispatchAsync(func() { defer guard("session ended"); st.ended() })
	}()
	win.Center()
	win.MakeKeyAndOrderFront(nil)
	win.MakeFirstResponder(view)
	appkit.Application_SharedApplication().ActivateIgnoringOtherApps(true)
}

// close detaches the window from its session (which keeps running).
func (st *viewState) close() {
	if st.detach != nil {
		st.detach()
		st.detach = nil
	}
	if st.observer.Ptr() != nil {
		foundation.NotificationCenter_DefaultCenter().RemoveObserver(st.observer)
		st.observer.Release()
		st.observer = objc.Object{}
	}
	for _, d := range st.attrs {
		d.Release()
	}
	st.attrs = nil
	delete(views, st.view.Ptr())
	delete(windows, st.s)
	win := st.win
	dispatch.MainQueue().DispatchAsync(func() { win.Release() })
}

func (st *viewState) ended() {
	if _, open := windows[st.s]; !open {
		return
	}
	st.exited = true
	code, _ := st.s.ExitCode()
	st.win.SetTitle(fmt.Sprintf("%s — exited (%d) — Berth", st.s.Title(), code))
	st.view.SetNeedsDisplay(true)
}

func (st *viewState) loadFonts() {
	size := consoleOpts.FontSize
	reg := appkit.Font_MonospacedSystemFontOfSizeWeight(size, appkit.FontWeightRegular)
	bold := appkit.Font_MonospacedSystemFontOfSizeWeight(size, appkit.FontWeightBold)
	fm := appkit.FontManager_SharedFontManager()
	st.fonts = [4]appkit.Font{reg, bold, fm.ConvertFontToHaveTrait(reg, appkit.ItalicFontMask), fm.ConvertFontToHaveTrait(bold, appkit.ItalicFontMask)}
	for i := range st.fonts {
		st.fonts[i].Retain()
	}
	m := foundation.NewStringWithString("M").SizeWithAttributes(map[foundation.AttributedStringKey]objc.IObject{"NSFont": reg})
	st.cellW = math.Ceil(m.Width)
	st.cellH = math.Ceil(reg.Ascender() - reg.Descender() + reg.Leading())
	st.ascent = reg.Ascender()
}

// schedule is the session's change callback (any goroutine): it asks for one
// redraw on the main thread, at most 60 per second.
func (st *viewState) schedule() {
	if !st.pending.CompareAndSwap(false, true) {
		return
	}
	delay := time.Until(time.Unix(0, st.last.Load()).Add(time.Second / 60))
	run := func() {
		dispatch.MainQueue().DispatchAsync(func() { defer guard("redraw"); st.invalidate() })
	}
	if delay > 0 {
		time.AfterFunc(delay, run)
	} else {
		run()
	}
}

// invalidate marks the model's dirty rows for redrawing.
func (st *viewState) invalidate() {
	st.pending.Store(false)
	st.last.Store(time.Now().UnixNano())
	if _, open := windows[st.s]; !open {
		return
	}
	var dirty []int
	var title string
	st.s.With(func(m *term.Terminal) { dirty = m.TakeDirty(); title = m.Title() })
	if title != "" && !st.exited {
		st.win.SetTitle(title + " — Berth")
	}
	if st.scroll > 0 || st.selOn {
		// Scrolled back or selecting: rows move under the view; redraw all.
		st.view.SetNeedsDisplay(true)
		return
	}
	w := st.view.Bounds().Size.Width
	for _, y := range dirty {
		st.view.SetNeedsDisplayInRect(foundation.Rect{Origin: foundation.Point{X: 0, Y: pad + float64(y)*st.cellH}, Size: foundation.Size{Width: w, Height: st.cellH}})
	}
}

func (st *viewState) resized() {
	b := st.view.Bounds()
	cols, rows := term.GridSize(b.Size.Width, b.Size.Height, st.cellW, st.cellH, pad)
	if cols == st.cols && rows == st.rows {
		return
	}
	st.cols, st.rows = cols, rows
	s := st.s
	go func() {
		s.Resize(cols, rows) // the model now; the process's terminal over the engine
		st.schedule()
	}()
}

func color(rgb [3]uint8) appkit.Color {
	if c, ok := colors[rgb]; ok {
		return c
	}
	c := appkit.Color_ColorWithSRGBRedGreenBlueAlpha(float64(rgb[0])/255, float64(rgb[1])/255, float64(rgb[2])/255, 1)
	if len(colors) < 4096 {
		c.Retain()
		colors[rgb] = c
	}
	return c
}

// DrawRect draws the rows that intersect the dirty area, one attributed
// string per run of equal style.
func (v TermView) DrawRect(rect foundation.Rect) {
	defer guard("drawRect")
	st := v.state()
	if st == nil {
		return
	}
	bounds := v.Bounds()
	color(defBg).SetFill()
	appkit.BezierPath_FillRect(rect)
	first := max(int((rect.Origin.Y-pad)/st.cellH), 0)
	last := int((rect.Origin.Y + rect.Size.Height - pad) / st.cellH)
	st.s.With(func(m *term.Terminal) {
		cols, rows := m.Size()
		hist := m.HistoryRows()
		st.scroll = min(st.scroll, hist)
		md := m.Modes()
		cx, cy := m.Cursor()
		for y := first; y <= last && y < rows; y++ {
			rowRect := foundation.Rect{Origin: foundation.Point{X: 0, Y: pad + float64(y)*st.cellH}, Size: foundation.Size{Width: bounds.Size.Width, Height: st.cellH}}
			if !v.NeedsToDrawRect(rowRect) {
				continue
			}
			abs := hist - st.scroll + y
			line := m.Row(abs)
			var sel func(int) bool
			if st.selOn {
				a, b := orderPos(st.selA, st.selB)
				sel = func(c int) bool {
					p := term.Pos{Row: abs, Col: c}
					return !posBefore(p, a) && !posBefore(b, p)
				}
			}
			st.runs = term.Runs(line.Cells, sel, st.runs)
			for _, r := range st.runs {
				st.drawRun(r, y, md.ReverseVideo)
			}
			if st.scroll == 0 && y == cy && md.CursorVisible && !st.exited {
				st.drawCursor(m, cx, cy, cols, md.ReverseVideo)
			}
		}
	})
}

func (st *viewState) drawRun(r term.Run, y int, screenRev bool) {
	fg, bg := r.Style.Colors(defFg, defBg, screenRev)
	x := pad + float64(r.Col)*st.cellW
	top := pad + float64(y)*st.cellH
	if bg != defBg {
		color(bg).SetFill()
		appkit.BezierPath_FillRect(foundation.Rect{Origin: foundation.Point{X: x, Y: top}, Size: foundation.Size{Width: float64(r.Cols) * st.cellW, Height: st.cellH}})
	}
	if r.Blank && r.Style.A&(term.Underline|term.DoubleUnderline|term.CurlyUnderline|term.Strike) == 0 {
		return
	}
	key := attrKey{fg: fg, strike: r.Style.A&term.Strike != 0}
	if r.Style.A&term.Bold != 0 {
		key.font |= 1
	}
	if r.Style.A&term.Italic != 0 {
		key.font |= 2
	}
	if r.Style.A&(term.Underline|term.CurlyUnderline) != 0 {
		key.underline = 1
	} else if r.Style.A&term.DoubleUnderline != 0 {
		key.underline = 9 // NSUnderlineStyleDouble
	}
	str := foundation.NewStringWithString(r.Text)
	objc.Call[objc.Void](str, objc.Sel("drawAtPoint:withAttributes:"), foundation.Point{X: x, Y: top}, st.attrDict(key))
}

// attrKey identifies a text attribute dictionary; dictionaries are built
// once per view and style (not per run), which keeps drawing cheap.
type attrKey struct {
	font      int
	fg        [3]uint8
	underline int
	strike    bool
}

func (st *viewState) attrDict(k attrKey) objc.Object {
	if d, ok := st.attrs[k]; ok {
		return d
	}
	keys := []objc.IObject{foundation.NewStringWithString("NSFont"), foundation.NewStringWithString("NSColor")}
	vals := []objc.IObject{st.fonts[k.font], color(k.fg)}
	if k.underline != 0 {
		keys = append(keys, foundation.NewStringWithString("NSUnderline"))
		vals = append(vals, foundation.Number_NumberWithInt(k.underline))
	}
	if k.strike {
		keys = append(keys, foundation.NewStringWithString("NSStrikethrough"))
		vals = append(vals, foundation.Number_NumberWithInt(1))
	}
	d := objc.Call[objc.Object](objc.GetClass("NSDictionary"), objc.Sel("dictionaryWithObjects:forKeys:"), vals, keys)
	d.Retain()
	if st.attrs == nil {
		st.attrs = map[attrKey]objc.Object{}
	}
	if len(st.attrs) < 1024 {
		st.attrs[k] = d
	} else {
		d.Autorelease()
	}
	return d
}

func (st *viewState) drawCursor(m *term.Terminal, cx, cy, cols int, screenRev bool) {
	c := m.Cell(cx, cy)
	w := 1
	if c.A&term.Wide != 0 && cx+1 < cols {
		w = 2
	}
	rect := foundation.Rect{Origin: foundation.Point{X: pad + float64(cx)*st.cellW, Y: pad + float64(cy)*st.cellH}, Size: foundation.Size{Width: float64(w) * st.cellW, Height: st.cellH}}
	focused := st.win.IsKeyWindow()
	color(defFg).SetFill()
	switch style := m.Modes().CursorStyle; {
	case !focused:
		appkit.BezierPath_StrokeRect(rect)
	case style == 3 || style == 4: // underline
		rect.Origin.Y += st.cellH - 2
		rect.Size.Height = 2
		appkit.BezierPath_FillRect(rect)
	case style == 5 || style == 6: // bar
		rect.Size.Width = 2
		appkit.BezierPath_FillRect(rect)
	default: // block, with the character reversed on it
		appkit.BezierPath_FillRect(rect)
		r := term.Runs([]term.Cell{c}, nil, nil)
		if len(r) > 0 {
			r[0].Col = cx
			r[0].Style.A ^= term.Reverse
			r[0].Style.Bg = 0
			st.drawRun(r[0], cy, screenRev)
		}
	}
}

func orderPos(a, b term.Pos) (term.Pos, term.Pos) {
	if posBefore(b, a) {
		return b, a
	}
	return a, b
}

func posBefore(p, q term.Pos) bool { return p.Row < q.Row || p.Row == q.Row && p.Col < q.Col }

func (v TermView) IsFlipped() bool             { return true }
func (v TermView) AcceptsFirstResponder() bool { return true }

func (v TermView) BecomeFirstResponder() bool {
	defer guard("becomeFirstResponder")
	if st := v.state(); st != nil {
		st.focus(true)
	}
	return true
}

func (v TermView) ResignFirstResponder() bool {
	defer guard("resignFirstResponder")
	if st := v.state(); st != nil {
		st.focus(false)
	}
	return true
}

func (st *viewState) focus(on bool) {
	var md term.Modes
	st.s.With(func(m *term.Terminal) { md = m.Modes() })
	st.s.Send(term.EncodeFocus(on, md))
	st.view.SetNeedsDisplay(true)
}

func modifierFlags(e appkit.Event) appkit.EventModifierFlags {
	// The instance -modifierFlags is not bound in darwinkit v0.5.0.
	return objc.Call[appkit.EventModifierFlags](e, objc.Sel("modifierFlags"))
}

// KeyDown sends the key to the program; Command shortcuts act on the view.
func (v TermView) KeyDown(e appkit.Event) {
	defer guard("keyDown")
	st := v.state()
	if st == nil {
		return
	}
	if st.exited {
		st.win.Close()
		return
	}
	f := modifierFlags(e)
	k := term.KeyPress{
		Code: e.KeyCode(), Chars: e.Characters(), CharsNoMod: e.CharactersIgnoringModifiers(),
		Shift: f&appkit.EventModifierFlagShift != 0, Ctrl: f&appkit.EventModifierFlagControl != 0,
		Option: f&appkit.EventModifierFlagOption != 0, Command: f&appkit.EventModifierFlagCommand != 0,
	}
	if k.Command {
		switch k.CharsNoMod {
		case "c":
			v.Copy(objc.Object{})
		case "v":
			v.Paste(objc.Object{})
		case "a":
			v.SelectAll(objc.Object{})
		case "k":
			st.s.With(func(m *term.Terminal) { m.ClearHistory(); m.MarkAllDirty() })
			st.scroll = 0
			v.SetNeedsDisplay(true)
		case "w":
			st.win.Close()
		}
		return
	}
	if k.Shift && (term.MacKey(k.Code) == term.KeyPageUp || term.MacKey(k.Code) == term.KeyPageDown) {
		d := st.rows - 1
		if term.MacKey(k.Code) == term.KeyPageDown {
			d = -d
		}
		st.scrollBy(d)
		return
	}
	var md term.Modes
	st.s.With(func(m *term.Terminal) { md = m.Modes() })
	if b := term.EncodeKeyPress(k, consoleOpts.OptionAsMeta, md); len(b) > 0 {
		st.selOn = false
		if st.scroll != 0 {
			st.scroll = 0
			v.SetNeedsDisplay(true)
		}
		st.s.Send(b)
	}
}

func (st *viewState) scrollBy(rows int) {
	var hist int
	st.s.With(func(m *term.Terminal) { hist = m.HistoryRows() })
	st.scroll = max(0, min(hist, st.scroll+rows))
	st.view.SetNeedsDisplay(true)
}

// cellAt converts a mouse event to a cell (column, visible row).
func (st *viewState) cellAt(e appkit.Event) (int, int) {
	p := st.view.ConvertPointFromView(e.LocationInWindow(), nil)
	x := int((p.X - pad) / st.cellW)
	y := int((p.Y - pad) / st.cellH)
	return max(0, min(x, st.cols-1)), max(0, min(y, st.rows-1))
}

// mouse reports an event to the program if it asked for mouse input (Shift
// overrides, for selecting). It returns whether it did.
func (st *viewState) mouse(e appkit.Event, btn term.MouseButton, act term.MouseAction) bool {
	f := modifierFlags(e)
	if f&appkit.EventModifierFlagShift != 0 || st.scroll != 0 {
		return false
	}
	var md term.Modes
	st.s.With(func(m *term.Terminal) { md = m.Modes() })
	if md.Mouse == term.MouseOff {
		return false
	}
	var mod term.Mod
	if f&appkit.EventModifierFlagControl != 0 {
		mod |= term.ModCtrl
	}
	if f&appkit.EventModifierFlagOption != 0 {
		mod |= term.ModAlt
	}
	x, y := st.cellAt(e)
	st.s.Send(term.EncodeMouse(btn, act, x, y, mod, md))
	return true
}

func (st *viewState) absPos(e appkit.Event) term.Pos {
	x, y := st.cellAt(e)
	var hist int
	st.s.With(func(m *term.Terminal) { hist = m.HistoryRows() })
	return term.Pos{Row: hist - st.scroll + y, Col: x}
}

func (v TermView) MouseDown(e appkit.Event) {
	defer guard("mouseDown")
	st := v.state()
	if st == nil || st.mouse(e, term.MouseLeft, term.MousePress) {
		return
	}
	p := st.absPos(e)
	st.selA, st.selB, st.selOn = p, p, false
	switch e.ClickCount() {
	case 2:
		st.s.With(func(m *term.Terminal) { st.selA, st.selB = m.WordAt(p) })
		st.selOn = true
	case 3:
		st.selA, st.selB, st.selOn = term.Pos{Row: p.Row}, term.Pos{Row: p.Row, Col: st.cols - 1}, true
	}
	v.SetNeedsDisplay(true)
}

func (v TermView) MouseDragged(e appkit.Event) {
	defer guard("mouseDragged")
	st := v.state()
	if st == nil || st.mouse(e, term.MouseLeft, term.MouseMotion) {
		return
	}
	st.selB, st.selOn = st.absPos(e), true
	v.SetNeedsDisplay(true)
}

func (v TermView) MouseUp(e appkit.Event) {
	defer guard("mouseUp")
	if st := v.state(); st != nil {
		st.mouse(e, term.MouseLeft, term.MouseRelease)
	}
}

func (v TermView) RightMouseDown(e appkit.Event) {
	defer guard("rightMouseDown")
	if st := v.state(); st != nil && !st.mouse(e, term.MouseRight, term.MousePress) {
		v.Paste(objc.Object{})
	}
}

func (v TermView) ScrollWheel(e appkit.Event) {
	defer guard("scrollWheel")
	st := v.state()
	if st == nil {
		return
	}
	dy := e.ScrollingDeltaY()
	lines := int(math.Round(dy))
	if e.HasPreciseScrollingDeltas() {
		lines = int(math.Round(dy / st.cellH))
	}
	if lines == 0 {
		return
	}
	var md term.Modes
	st.s.With(func(m *term.Terminal) { md = m.Modes() })
	if md.Mouse != term.MouseOff && st.scroll == 0 {
		btn := term.MouseWheelUp
		if lines < 0 {
			btn = term.MouseWheelDown
		}
		for i := 0; i < min(abs(lines), 5); i++ {
			st.mouse(e, btn, term.MousePress)
		}
		return
	}
	if md.AltScreen {
		// Full-screen programs without mouse support get arrow keys.
		key := term.KeyUp
		if lines < 0 {
			key = term.KeyDown
		}
		for i := 0; i < min(abs(lines), 5); i++ {
			st.s.Send(term.EncodeKey(key, 0, md))
		}
		return
	}
	st.scrollBy(lines)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// Copy puts the selection on the pasteboard.
func (v TermView) Copy(sender objc.Object) {
	defer guard("copy")
	st := v.state()
	if st == nil || !st.selOn {
		return
	}
	var text string
	st.s.With(func(m *term.Terminal) { text = m.SelectionText(st.selA, st.selB) })
	pb := appkit.Pasteboard_GeneralPasteboard()
	pb.ClearContents()
	pb.SetStringForType(text, appkit.PasteboardTypeString)
}

// Paste sends the pasteboard's text (bracketed when the program asked).
func (v TermView) Paste(sender objc.Object) {
	defer guard("paste")
	st := v.state()
	if st == nil || st.exited {
		return
	}
	text := appkit.Pasteboard_GeneralPasteboard().StringForType(appkit.PasteboardTypeString)
	if text == "" {
		return
	}
	var md term.Modes
	st.s.With(func(m *term.Terminal) { md = m.Modes() })
	st.s.Send(term.EncodePaste(text, md))
}

func (v TermView) SelectAll(sender objc.Object) {
	defer guard("selectAll")
	st := v.state()
	if st == nil {
		return
	}
	var hist int
	st.s.With(func(m *term.Terminal) { hist = m.HistoryRows() })
	st.selA, st.selB, st.selOn = term.Pos{}, term.Pos{Row: hist + st.rows - 1, Col: st.cols - 1}, true
	v.SetNeedsDisplay(true)
}
