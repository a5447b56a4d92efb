// Package api serves the Docker Engine API on Berth's socket, so the real
// `docker` CLI, compose and testcontainers drive containers that each run in
// their own VM. Handlers only translate HTTP to calls on the engine (the
// Backend interfaces in backend.go) and back, using moby's published API
// types for every body.
package api

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// API versions this server speaks. MaxVersion is the version of the moby API
// types we build against; MinVersion is the oldest the moby client library
// still supports (older clients get a clear 400).
const (
	MaxVersion = "1.56"
	MinVersion = "1.38"
)

// Options configure a Server.
type Options struct {
	Backend Backend
	// Version is Berth's own version, shown by `docker version`.
	Version string
	// Logf receives one line per failed request; nil logs with the log package.
	Logf func(format string, args ...any)
}

// Server is the Engine API HTTP server.
type Server struct {
	b    Backend
	opts Options
	mux  *http.ServeMux
	http *http.Server

	mu        sync.Mutex
	listeners []net.Listener
}

// New builds a server over the engine backend.
func New(opts Options) *Server {
	if opts.Logf == nil {
		opts.Logf = log.Printf
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	s := &Server{b: opts.Backend, opts: opts, mux: http.NewServeMux()}
	s.routes()
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		// Attach, logs -f and events stream for as long as the client wants:
		// no write timeout.
	}
	return s
}

// Serve accepts connections on l until Shutdown/Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, waits for ordinary requests up to ctx, then
// closes whatever still streams (hijacked attach sessions end with their
// container or client).
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		s.http.Close()
	}
	return err
}

// Close stops the server at once.
func (s *Server) Close() error { return s.http.Close() }

var versionPrefix = regexp.MustCompile(`^/v([0-9]+\.[0-9]+)(/.*)$`)

type ctxKey int

const versionKey ctxKey = 0

// requestVersion is the API version the client asked for (MaxVersion when
// the path carried no /vX.Y prefix).
func requestVersion(r *http.Request) string {
	if v, ok := r.Context().Value(versionKey).(string); ok {
		return v
	}
	return MaxVersion
}

// ServeHTTP strips the version prefix, checks it, sets the headers every
// Docker daemon sends, and dispatches.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Api-Version", MaxVersion)
	h.Set("Docker-Experimental", "false")
	h.Set("Ostype", "linux")
	h.Set("Server", "Berth/"+s.opts.Version+" ("+runtime.GOOS+")")

	version := MaxVersion
	if m := versionPrefix.FindStringSubmatch(r.URL.Path); m != nil {
		version = m[1]
		if compareVersions(version, MaxVersion) > 0 {
			writeError(w, r, badRequest("client version %s is too new. Maximum supported API version is %s", version, MaxVersion))
			return
		}
		if compareVersions(version, MinVersion) < 0 {
			writeError(w, r, badRequest("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", version, MinVersion))
			return
		}
		r2 := r.Clone(context.WithValue(r.Context(), versionKey, version))
		r2.URL.Path = m[2]
		r2.URL.RawPath = ""
		r = r2
	}
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		writeError(w, r, notFound("page not found: %s %s", r.Method, r.URL.Path))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// compareVersions compares "1.44"-style versions numerically.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// handle registers a handler that returns an error; the error becomes the
// JSON error body with its status code.
func (s *Server) handle(pattern string, f func(w http.ResponseWriter, r *http.Request) error) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.opts.Logf("api: panic serving %s %s: %v", r.Method, r.URL.Path, p)
				writeError(w, r, fmt.Errorf("internal error serving %s: %v", r.URL.Path, p))
			}
		}()
		if err := f(w, r); err != nil {
			if st := statusOf(err); st >= 500 && st != http.StatusNotImplemented {
				s.opts.Logf("api: %s %s: %v", r.Method, r.URL.Path, err)
			}
			writeError(w, r, err)
		}
	})
}
