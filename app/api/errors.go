package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/common"

	ctrs "github.com/berth-dev/berth/runtime/container"
)

// Errors carry their HTTP meaning through containerd's errdefs classes, the
// same classes the moby client maps status codes back to (so `docker` prints
// "No such container" for our 404 exactly as for dockerd's).

func notFound(format string, a ...any) error {
	return errdefs.ErrNotFound.WithMessage(fmt.Sprintf(format, a...))
}

func badRequest(format string, a ...any) error {
	return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(format, a...))
}

func conflict(format string, a ...any) error {
	return errdefs.ErrConflict.WithMessage(fmt.Sprintf(format, a...))
}

func notImplemented(format string, a ...any) error {
	return errdefs.ErrNotImplemented.WithMessage(fmt.Sprintf(format, a...))
}

// statusOf maps an error to its HTTP status code.
func statusOf(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ctrs.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ctrs.ErrConflict), errors.Is(err, ctrs.ErrNotRunning):
		return http.StatusConflict
	case errors.Is(err, ctrs.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ctrs.ErrNotImplemented):
		return http.StatusNotImplemented
	case errdefs.IsNotFound(err):
		return http.StatusNotFound
	case errdefs.IsInvalidArgument(err), errdefs.IsOutOfRange(err):
		return http.StatusBadRequest
	case errdefs.IsConflict(err), errdefs.IsAlreadyExists(err), errdefs.IsFailedPrecondition(err):
		return http.StatusConflict
	case errdefs.IsNotModified(err):
		return http.StatusNotModified
	case errdefs.IsPermissionDenied(err):
		return http.StatusForbidden
	case errdefs.IsUnauthorized(err):
		return http.StatusUnauthorized
	case errdefs.IsNotImplemented(err):
		return http.StatusNotImplemented
	case errdefs.IsUnavailable(err):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeError sends {"message": ...} with the error's status. HEAD requests
// and 304 get no body.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if r.Method == http.MethodHead || code == http.StatusNotModified {
		return
	}
	json.NewEncoder(w).Encode(common.ErrorResponse{Message: dockerWording(err.Error())})
}

// dockerWording capitalises the not-found messages the way dockerd words
// them ("No such container: x"): scripts and tools match on them.
func dockerWording(msg string) string {
	for _, p := range []string{"no such container", "no such image", "no such exec"} {
		if strings.HasPrefix(msg, p) {
			return "N" + msg[1:]
		}
	}
	return msg
}

// writeJSON sends v with status code.
func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	return json.NewEncoder(w).Encode(v)
}

// respond sends an empty reply with code, unless the call it answers for
// failed: then err goes back to handle, which sends the error body.
func respond(w http.ResponseWriter, code int, err error) error {
	if err != nil {
		return err
	}
	w.WriteHeader(code)
	return nil
}
