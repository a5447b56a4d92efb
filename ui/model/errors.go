package model

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
)

// Alert is an error as the app shows it: a short title and what to do.
type Alert struct {
	Title  string
	Detail string
}

// ErrorAlert turns an error from the engine (through the Docker API client)
// or from the app into an alert for the user. What reads "for" an action is
// the verb being done, e.g. "start web".
func ErrorAlert(doing string, err error) Alert {
	title := "Could not " + doing
	msg := err.Error()
	var errno syscall.Errno
	var opErr *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return Alert{title, "The engine did not answer in time. " + msg}
	case errors.As(err, &errno) && (errno == syscall.ECONNREFUSED || errno == syscall.ENOENT),
		errors.As(err, &opErr) && opErr.Op == "dial":
		return Alert{title, "Berth's engine is not running. Quit and reopen Berth; if it persists, see Console.app for berth's log."}
	case strings.Contains(msg, "com.apple.security.virtualization"):
		return Alert{title, "This copy of Berth is not signed with the virtualization entitlement. Rebuild it with `make app` (which signs it) or reinstall Berth."}
	case cerrdefs.IsNotFound(err) && strings.Contains(strings.ToLower(msg), "image"):
		return Alert{title, "The image was not found locally or in its registry. Check the name and tag, or sign in with `docker login`. (" + msg + ")"}
	case cerrdefs.IsConflict(err) && strings.Contains(msg, "name"):
		return Alert{title, "That name is taken by another container. Choose another name or remove the other container. (" + msg + ")"}
	case strings.Contains(msg, "address already in use") || strings.Contains(msg, "port is already allocated"):
		return Alert{title, "A host port you asked for is used by another program. Pick another host port. (" + msg + ")"}
	case strings.Contains(msg, "no space left on device"):
		return Alert{title, "The disk holding Berth's data is full. Remove unused images (Images window) or move the data location in Settings."}
	case strings.Contains(msg, "unauthorized") || strings.Contains(msg, "authentication required"):
		return Alert{title, "The registry refused access. Sign in with `docker login <registry>` and try again."}
	}
	return Alert{title, msg}
}
