//go:build darwin

package ui

// Start at login through SMAppService.mainAppService (macOS 13+): the app
// registers itself as a login item, which the user sees and can revoke in
// System Settings > General > Login Items.

// #cgo LDFLAGS: -framework ServiceManagement
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/objc"
)

// LoginItemStatus mirrors SMAppServiceStatus.
type LoginItemStatus int

const (
	LoginItemNotRegistered    LoginItemStatus = 0
	LoginItemEnabled          LoginItemStatus = 1
	LoginItemRequiresApproval LoginItemStatus = 2
	LoginItemNotFound         LoginItemStatus = 3
)

func (s LoginItemStatus) String() string {
	switch s {
	case LoginItemNotRegistered:
		return "off"
	case LoginItemEnabled:
		return "on"
	case LoginItemRequiresApproval:
		return "waiting for approval in System Settings > General > Login Items"
	case LoginItemNotFound:
		return "unavailable (Berth is not running from an app bundle)"
	}
	return fmt.Sprintf("unknown (%d)", int(s))
}

func mainAppService() (objc.Object, error) {
	cls := objc.GetClass("SMAppService")
	if cls.Ptr() == nil {
		return objc.Object{}, errors.New("start at login needs macOS 13 or later")
	}
	if foundation.Bundle_MainBundle().BundleIdentifier() == "" {
		return objc.Object{}, errors.New("start at login: Berth is not running from Berth.app")
	}
	return objc.Call[objc.Object](cls, objc.Sel("mainAppService")), nil
}

// StartAtLogin reports whether Berth is registered to start at login.
func StartAtLogin() (LoginItemStatus, error) {
	svc, err := mainAppService()
	if err != nil {
		return LoginItemNotFound, err
	}
	return LoginItemStatus(objc.Call[int](svc, objc.Sel("status"))), nil
}

// SetStartAtLogin registers or unregisters Berth as a login item.
func SetStartAtLogin(on bool) error {
	svc, err := mainAppService()
	if err != nil {
		return err
	}
	sel := "unregisterAndReturnError:"
	if on {
		sel = "registerAndReturnError:"
	}
	var nsErr unsafe.Pointer
	if ok := objc.Call[bool](svc, objc.Sel(sel), unsafe.Pointer(&nsErr)); !ok {
		msg := "unknown error"
		if nsErr != nil {
			msg = foundation.ErrorFrom(nsErr).LocalizedDescription()
		}
		if on {
			return fmt.Errorf("start at login: %s", msg)
		}
		return fmt.Errorf("stop starting at login: %s", msg)
	}
	return nil
}
