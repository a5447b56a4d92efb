// Package menubar is Berth's AppKit shell (darwin only, through darwinkit):
// the status item, its menu and the Containers, Images, Logs, Run and
// Settings windows. It only maps ui/model values onto AppKit objects and
// forwards clicks to ui/shell; everything it shows is computed and tested in
// portable code. It cannot be compiled on Linux; packaging/darwincheck
// type-checks it for darwin/arm64 and darwin/amd64.
//
// AppKit rules kept throughout (see shared/notes/darwinkit.md §3-4):
//   - AppKit is touched only on the main thread: Go code running elsewhere
//     hops there with dispatch.MainQueue().DispatchAsync (onMain).
//   - Every Go function that Objective-C calls starts with defer guard(…),
//     so a Go panic becomes a logged error instead of unwinding through
//     Objective-C frames.
//   - The status item, menus and windows live in package-level variables
//     (the GC would release them otherwise); windows never release
//     themselves when closed (SetReleasedWhenClosed(false)).
//   - One Go type per Objective-C protocol; subclasses made with
//     objc.NewClass have no Go fields (per-instance state is in maps keyed
//     by the object's pointer).
package menubar
