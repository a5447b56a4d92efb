// Package container is Berth's container lifecycle: each container is its own
// VM, booted from the image's ext4 snapshot, driven through the guest agent.
//
// The Manager's methods map one to one onto Docker Engine API operations
// (create, start, stop, kill, wait, logs, attach, exec, …) and take and
// return moby's API types where they fit, so the API server is a thin layer
// over it. Every state transition is written to bbolt before it is acted on;
// Restore reconciles what a crashed engine left behind.
package container

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Error kinds, for errors.Is: the API maps them to HTTP status codes.
var (
	ErrNotFound       = errors.New("not found")        // 404
	ErrConflict       = errors.New("conflict")         // 409 (name in use, container running, …)
	ErrInvalid        = errors.New("invalid argument") // 400
	ErrNotImplemented = errors.New("not supported")    // 501
	ErrNotRunning     = errors.New("container is not running")
)

// CreateOptions is POST /containers/create.
type CreateOptions struct {
	Name       string // "" picks a random adjective_surname name
	Config     *container.Config
	HostConfig *container.HostConfig
	Platform   *ocispec.Platform // nil: the host's architecture
	// Kernel overrides the guest kernel for this container (Berth only;
	// also settable with the "io.berth.kernel" annotation).
	Kernel string
	// Networking is the request's NetworkingConfig (endpoints with
	// aliases and --ip per network); nil for none.
	Networking *network.NetworkingConfig
}

// StopOptions is POST /containers/{id}/stop and /restart.
type StopOptions struct {
	Signal  string // "" = the container's StopSignal, else SIGTERM
	Timeout *int   // seconds; nil = the container's StopTimeout, else 10; -1 waits forever
}

// RemoveOptions is DELETE /containers/{id}.
type RemoveOptions struct {
	Force         bool
	RemoveVolumes bool
}

// ListOptions is GET /containers/json.
type ListOptions struct {
	All     bool
	Limit   int
	Filters map[string][]string // id, name, label, status, exited, ancestor, before, since
}

// LogsOptions is GET /containers/{id}/logs.
type LogsOptions struct {
	Stdout, Stderr bool
	Follow         bool
	Timestamps     bool // informational: entries always carry their time
	Tail           int  // < 0 = all
	Since, Until   time.Time
}

// AttachOptions is POST /containers/{id}/attach (the hijacked streams).
// With a tty container, all output goes to Stdout.
type AttachOptions struct {
	Stdin          io.Reader // nil: do not attach stdin
	Stdout, Stderr io.Writer // nil: do not attach that stream
	Logs           bool      // replay recorded output first
	Stream         bool      // then stream live output
	DetachKeys     string    // e.g. "ctrl-p,ctrl-q"; "" uses the default
}

// ExecStartOptions is POST /exec/{id}/start.
type ExecStartOptions struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Detach         bool
	ConsoleSize    *[2]uint // [height, width]
}

// CopyToOptions is PUT /containers/{id}/archive.
type CopyToOptions struct {
	NoOverwriteDirNonDir bool
}

// Attachment is a registered attach: output flows once Start runs.
type Attachment struct {
	done chan struct{}
	err  error
	stop func()
}

// Wait blocks until the attached streams end (the container's main process
// exited, stdin reached EOF with StdinOnce, or the client detached) and
// returns ErrDetached when the detach keys were typed.
func (a *Attachment) Wait() error { <-a.done; return a.err }

// Done is closed when the attachment has ended.
func (a *Attachment) Done() <-chan struct{} { return a.done }

// Close detaches early.
func (a *Attachment) Close() { a.stop() }

// ErrDetached is returned by Attachment.Wait and ExecStart when the client
// typed the detach key sequence.
var ErrDetached = errors.New("detached")

// kindError is an error of one of the kinds above whose message does not
// repeat the kind ("no such container: web", not "not found: no such …").
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func errf(kind error, format string, a ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, a...)}
}
