//go:build darwin

package ui

// Container-exit notifications through UNUserNotificationCenter, by raw
// objc calls (darwinkit v0.5.0 has no UserNotifications binding). What to
// post is decided by portable ui/notify. UNUserNotificationCenter only works
// inside a signed app bundle; outside one (a bare `berth` binary) posting is
// skipped rather than crashing on the framework's exception.

// #cgo LDFLAGS: -framework UserNotifications
import "C"

import (
	"strings"
	"sync"

	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/objc"

	"github.com/berth-dev/berth/ui/notify"
)

const (
	unAuthBadge, unAuthSound, unAuthAlert = 1 << 0, 1 << 1, 1 << 2
	unActionForeground                    = 1 << 2
	unPresentSound, unPresentList         = 1 << 1, 1 << 3
	unPresentBanner                       = 1 << 4
	unDefaultAction                       = "com.apple.UNNotificationDefaultActionIdentifier"
	requestPrefix                         = "berth.exit."
)

// NotificationDelegate is the UNUserNotificationCenterDelegate: it routes
// the user's choice (Show Logs, Restart, or a click) to the app.
type NotificationDelegate struct {
	objc.Object `objc:"NSObject"`
}

var (
	notifyOnce    sync.Once
	notifyCenter  objc.Object
	notifyDel     objc.Object
	notifyHandler func(action, containerID string)
)

func notificationsAvailable() bool {
	return foundation.Bundle_MainBundle().BundleIdentifier() != ""
}

// StartNotifications registers Berth's notification category (with Show
// Logs and Restart), installs the delegate and asks for permission. handler
// is called on the main thread with notify.ActionShowLogs or
// notify.ActionRestart and the container ID ("" for a summary). Call once on
// the main thread after launch.
func StartNotifications(handler func(action, containerID string)) {
	defer guard("StartNotifications")
	if !notificationsAvailable() {
		return
	}
	notifyOnce.Do(func() {
		notifyHandler = handler
		notifyCenter = objc.Call[objc.Object](objc.GetClass("UNUserNotificationCenter"), objc.Sel("currentNotificationCenter"))
		notifyCenter.Retain()

		logs := objc.Call[objc.Object](objc.GetClass("UNNotificationAction"), objc.Sel("actionWithIdentifier:title:options:"),
			notify.ActionShowLogs, "Show Logs", uint(unActionForeground))
		restart := objc.Call[objc.Object](objc.GetClass("UNNotificationAction"), objc.Sel("actionWithIdentifier:title:options:"),
			notify.ActionRestart, "Restart", uint(0))
		cat := objc.Call[objc.Object](objc.GetClass("UNNotificationCategory"), objc.Sel("categoryWithIdentifier:actions:intentIdentifiers:options:"),
			notify.Category, []objc.Object{logs, restart}, []string{}, uint(0))
		set := objc.Call[objc.Object](objc.GetClass("NSSet"), objc.Sel("setWithObject:"), cat)
		objc.Call[objc.Void](notifyCenter, objc.Sel("setNotificationCategories:"), set)

		cls := objc.NewClass[NotificationDelegate](
			objc.Sel("userNotificationCenter:didReceiveNotificationResponse:withCompletionHandler:"),
			objc.Sel("userNotificationCenter:willPresentNotification:withCompletionHandler:"),
		)
		objc.RegisterClass(cls)
		notifyDel = cls.CreateInstance(0)
		notifyDel = objc.Call[objc.Object](notifyDel, objc.Sel("init"))
		// The center holds its delegate weakly; notifyDel stays retained here.
		objc.Call[objc.Void](notifyCenter, objc.Sel("setDelegate:"), notifyDel)

		objc.Call[objc.Void](notifyCenter, objc.Sel("requestAuthorizationWithOptions:completionHandler:"),
			uint(unAuthAlert|unAuthSound|unAuthBadge), func(granted bool, err objc.Object) {})
	})
}

// PostNotification shows n. A newer notification for the same container
// replaces the older one (same request identifier).
func PostNotification(n notify.Notification) {
	defer guard("PostNotification")
	if notifyCenter.Ptr() == nil {
		return
	}
	content := objc.Call[objc.Object](objc.GetClass("UNMutableNotificationContent"), objc.Sel("new"))
	defer content.Release()
	objc.Call[objc.Void](content, objc.Sel("setTitle:"), n.Title)
	objc.Call[objc.Void](content, objc.Sel("setBody:"), n.Body)
	objc.Call[objc.Void](content, objc.Sel("setThreadIdentifier:"), "berth.container-exits")
	if len(n.Actions) > 1 {
		objc.Call[objc.Void](content, objc.Sel("setCategoryIdentifier:"), notify.Category)
	}
	sound := objc.Call[objc.Object](objc.GetClass("UNNotificationSound"), objc.Sel("defaultSound"))
	objc.Call[objc.Void](content, objc.Sel("setSound:"), sound)
	req := objc.Call[objc.Object](objc.GetClass("UNNotificationRequest"), objc.Sel("requestWithIdentifier:content:trigger:"),
		n.ID, content, objc.Object{})
	objc.Call[objc.Void](notifyCenter, objc.Sel("addNotificationRequest:withCompletionHandler:"), req, objc.Object{})
}

// UserNotificationCenterDidReceiveNotificationResponseWithCompletionHandler
// handles a click on the notification or one of its actions.
func (d NotificationDelegate) UserNotificationCenterDidReceiveNotificationResponseWithCompletionHandler(center objc.Object, response objc.Object, done objc.Object) {
	defer func() {
		if done.Ptr() != nil {
			objc.CallBlock[objc.Void](objc.BlockFrom(done.Ptr()))
		}
	}()
	defer guard("notification response")
	action := objc.Call[string](response, objc.Sel("actionIdentifier"))
	note := objc.Call[objc.Object](response, objc.Sel("notification"))
	req := objc.Call[objc.Object](note, objc.Sel("request"))
	id := strings.TrimPrefix(objc.Call[string](req, objc.Sel("identifier")), requestPrefix)
	if id == "summary" {
		id = ""
	}
	if action == unDefaultAction {
		action = notify.ActionShowLogs
	}
	if notifyHandler != nil && (action == notify.ActionShowLogs || action == notify.ActionRestart) {
		notifyHandler(action, id)
	}
}

// UserNotificationCenterWillPresentNotificationWithCompletionHandler shows
// notifications even while Berth is the active app.
func (d NotificationDelegate) UserNotificationCenterWillPresentNotificationWithCompletionHandler(center objc.Object, note objc.Object, done objc.Object) {
	defer guard("notification present")
	if done.Ptr() != nil {
		objc.CallBlock[objc.Void](objc.BlockFrom(done.Ptr()), uint(unPresentBanner|unPresentList|unPresentSound))
	}
}
