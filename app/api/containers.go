package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/common"
	"github.com/moby/moby/api/types/container"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	ctrs "github.com/berth-dev/berth/runtime/container"
	"github.com/berth-dev/berth/runtime/logs"
)

func (s *Server) containerRoutes() {
	// Every one of these needs the container backend.
	for _, rt := range []struct {
		pattern string
		h       func(cs Containers, w http.ResponseWriter, r *http.Request) error
	}{
		{"GET /containers/json", s.containerList},
		{"POST /containers/create", s.containerCreate},
		{"POST /containers/prune", s.containerPrune},
		{"GET /containers/{id}/json", s.containerInspect},
		{"POST /containers/{id}/start", s.containerStart},
		{"POST /containers/{id}/stop", s.containerStop},
		{"POST /containers/{id}/restart", s.containerRestart},
		{"POST /containers/{id}/kill", s.containerKill},
		{"POST /containers/{id}/wait", s.containerWait},
		{"DELETE /containers/{id}", s.containerRemove},
		{"GET /containers/{id}/logs", s.containerLogs},
		{"POST /containers/{id}/attach", s.containerAttach},
		{"POST /containers/{id}/resize", resize(Containers.Resize)},
		{"GET /containers/{id}/top", s.containerTop},
		{"GET /containers/{id}/stats", s.containerStats},
		{"POST /containers/{id}/rename", s.containerRename},
		{"POST /containers/{id}/pause", s.containerPause},
		{"POST /containers/{id}/unpause", s.containerUnpause},
		{"HEAD /containers/{id}/archive", s.archiveStat},
		{"GET /containers/{id}/archive", s.archiveGet},
		{"PUT /containers/{id}/archive", s.archivePut},
		{"GET /containers/{id}/export", s.containerExport},
		{"POST /containers/{id}/exec", s.execCreate},
		{"POST /exec/{id}/start", s.execStart},
		{"POST /exec/{id}/resize", resize(Containers.ExecResize)},
		{"GET /exec/{id}/json", s.execInspect},
	} {
		s.handle(rt.pattern, s.withContainers(rt.h))
	}
	s.commitRoutes()
	for _, op := range []struct{ pattern, what string }{
		{"POST /containers/{id}/update", "docker update"},
		{"POST /containers/{id}/attach/ws", "attach over websocket"},
	} {
		what := op.what
		s.handle(op.pattern, func(w http.ResponseWriter, r *http.Request) error {
			return notImplemented("%s is not supported by Berth yet", what)
		})
	}
}

// withContainers adapts a handler that needs the container backend; an
// engine without one answers every such route 501.
func (s *Server) withContainers(f func(cs Containers, w http.ResponseWriter, r *http.Request) error) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.b.Containers == nil {
			return notImplemented("this engine runs no containers")
		}
		return f(s.b.Containers, w, r)
	}
}

// validName is dockerd's rule for container names.
var validName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

func parsePlatform(p string) (*ocispec.Platform, error) {
	if p == "" {
		return nil, nil
	}
	parts := strings.Split(p, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return nil, badRequest("invalid platform %q: expected os/arch[/variant], e.g. linux/arm64", p)
	}
	if parts[0] != "linux" {
		return nil, notImplemented("platform %q is not supported: Berth runs linux containers only", p)
	}
	pl := &ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		pl.Variant = parts[2]
	}
	return pl, nil
}

func (s *Server) containerCreate(cs Containers, w http.ResponseWriter, r *http.Request) error {
	name := r.URL.Query().Get("name")
	if name != "" && !validName.MatchString(name) {
		return badRequest("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	platform, err := parsePlatform(r.URL.Query().Get("platform"))
	if err != nil {
		return err
	}
	var req container.CreateRequest
	if err := decodeStrictLegacy(r, &req, createLegacy); err != nil {
		return err
	}
	if err := validateCreate(&req, memTotal()); err != nil {
		return err
	}
	resp, err := cs.Create(r.Context(), ctrs.CreateOptions{
		Name:       strings.TrimPrefix(name, "/"),
		Config:     req.Config,
		HostConfig: req.HostConfig,
		Platform:   platform,
		Kernel:     req.HostConfig.Annotations["io.berth.kernel"],
		Networking: req.NetworkingConfig,
	})
	if err != nil {
		return err
	}
	if resp.Warnings == nil {
		resp.Warnings = []string{}
	}
	return writeJSON(w, http.StatusCreated, resp)
}

func (s *Server) containerList(cs Containers, w http.ResponseWriter, r *http.Request) error {
	all, err := boolParam(r, "all")
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", 0)
	if err != nil {
		return err
	}
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := checkFilterTerms(f, "id", "name", "label", "status", "exited", "ancestor", "before", "since", "until", "network"); err != nil {
		return err
	}
	list, err := cs.List(r.Context(), ctrs.ListOptions{All: all, Limit: limit, Filters: f})
	if err != nil {
		return err
	}
	if list == nil {
		list = []container.Summary{}
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *Server) containerInspect(cs Containers, w http.ResponseWriter, r *http.Request) error {
	resp, err := cs.Inspect(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) containerStart(cs Containers, w http.ResponseWriter, r *http.Request) error {
	if r.URL.Query().Get("checkpoint") != "" {
		return notImplemented("checkpoints are not supported by Berth")
	}
	id := r.PathValue("id")
	if c, err := cs.Inspect(r.Context(), id); err == nil && c.State != nil && c.State.Running {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	// A --rm container that fails to start is removed by the manager.
	return respond(w, http.StatusNoContent, cs.Start(r.Context(), id))
}

func stopOptions(r *http.Request) (ctrs.StopOptions, error) {
	var o ctrs.StopOptions
	o.Signal = r.URL.Query().Get("signal")
	if t := r.URL.Query().Get("t"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < -1 {
			return o, badRequest("invalid timeout t=%q: expected seconds (>= 0), or -1 to wait forever", t)
		}
		o.Timeout = &n
	}
	return o, nil
}

func (s *Server) containerStop(cs Containers, w http.ResponseWriter, r *http.Request) error {
	o, err := stopOptions(r)
	if err != nil {
		return err
	}
	err = cs.Stop(r.Context(), r.PathValue("id"), o)
	if errors.Is(err, ctrs.ErrNotRunning) {
		return respond(w, http.StatusNotModified, nil) // docker's answer: already stopped
	}
	return respond(w, http.StatusNoContent, err)
}

func (s *Server) containerRestart(cs Containers, w http.ResponseWriter, r *http.Request) error {
	o, err := stopOptions(r)
	if err != nil {
		return err
	}
	return respond(w, http.StatusNoContent, cs.Restart(r.Context(), r.PathValue("id"), o))
}

func (s *Server) containerKill(cs Containers, w http.ResponseWriter, r *http.Request) error {
	return respond(w, http.StatusNoContent, cs.Kill(r.Context(), r.PathValue("id"), r.URL.Query().Get("signal")))
}

func (s *Server) containerWait(cs Containers, w http.ResponseWriter, r *http.Request) error {
	cond := container.WaitCondition(r.URL.Query().Get("condition"))
	switch cond {
	case "":
		cond = container.WaitConditionNotRunning
	case container.WaitConditionNotRunning, container.WaitConditionNextExit, container.WaitConditionRemoved:
	default:
		return badRequest("invalid wait condition %q: use not-running, next-exit or removed", cond)
	}
	ch, err := cs.Wait(r.Context(), r.PathValue("id"), cond)
	if err != nil {
		return err
	}
	// Headers go out now: `docker run` waits for them before it starts the
	// container, so the wait is known to be registered.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush()
	select {
	case resp, ok := <-ch:
		if !ok {
			resp = container.WaitResponse{StatusCode: -1, Error: &container.WaitExitError{Message: "wait ended without a result"}}
		}
		return json.NewEncoder(w).Encode(resp)
	case <-r.Context().Done():
		return nil
	}
}

func (s *Server) containerRemove(cs Containers, w http.ResponseWriter, r *http.Request) error {
	force, err := boolParam(r, "force")
	if err != nil {
		return err
	}
	vols, err := boolParam(r, "v")
	if err != nil {
		return err
	}
	if link, _ := boolParam(r, "link"); link {
		return notImplemented("links are not supported by Berth")
	}
	return respond(w, http.StatusNoContent, cs.Remove(r.Context(), r.PathValue("id"), ctrs.RemoveOptions{Force: force, RemoveVolumes: vols}))
}

func (s *Server) containerLogs(cs Containers, w http.ResponseWriter, r *http.Request) error {
	var o ctrs.LogsOptions
	err := boolParams(r, map[string]*bool{"stdout": &o.Stdout, "stderr": &o.Stderr, "follow": &o.Follow, "timestamps": &o.Timestamps})
	if err != nil {
		return err
	}
	if !o.Stdout && !o.Stderr {
		return badRequest("bad parameters: you must choose at least one stream (stdout=1 or stderr=1)")
	}
	o.Tail = -1
	if t := r.URL.Query().Get("tail"); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return badRequest("invalid tail %q: expected a number of lines or all", t)
		}
		o.Tail = n
	}
	if o.Since, err = timeParam(r, "since"); err != nil {
		return err
	}
	if o.Until, err = timeParam(r, "until"); err != nil {
		return err
	}
	id := r.PathValue("id")
	c, err := cs.Inspect(r.Context(), id)
	if err != nil {
		return err
	}
	tty := c.Config != nil && c.Config.Tty
	ct := multiplexedStream
	if tty {
		ct = rawStream
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	stdout, stderr := outputs(w, tty, func() { rc.Flush() })
	err = cs.Logs(r.Context(), id, o, func(e logs.Entry) error {
		out := stdout
		if e.Stream == "stderr" {
			out = stderr
		}
		line := e.Line
		if o.Timestamps {
			line = append([]byte(e.Time.UTC().Format(time.RFC3339Nano)+" "), line...)
		}
		_, err := out.Write(line)
		return err
	})
	if err != nil && r.Context().Err() == nil {
		s.opts.Logf("api: logs %s: %v", id, err)
	}
	return nil
}

func (s *Server) containerAttach(cs Containers, w http.ResponseWriter, r *http.Request) error {
	var stream, stdin, stdout, stderr, replay bool
	if err := boolParams(r, map[string]*bool{"stream": &stream, "stdin": &stdin, "stdout": &stdout, "stderr": &stderr, "logs": &replay}); err != nil {
		return err
	}
	if !stream && !replay {
		return badRequest("bad parameters: at least one of stream=1 or logs=1 is required")
	}
	id := r.PathValue("id")
	c, err := cs.Inspect(r.Context(), id)
	if err != nil {
		return err
	}
	tty := c.Config != nil && c.Config.Tty
	// Attachments outlive the HTTP request (the connection is hijacked), so
	// they get their own context, ended when the client goes away.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	// Register before hijacking so a bad request is still an HTTP error.
	var pending ctrs.AttachOptions
	pending.Logs, pending.Stream = replay, stream
	pending.DetachKeys = r.URL.Query().Get("detachKeys")
	ct := multiplexedStream
	if tty {
		ct = rawStream
	}
	h, err := hijack(w, r, ct)
	if err != nil {
		return err
	}
	defer h.close()
	out, errw := outputs(h, tty, nil)
	if stdout {
		pending.Stdout = out
	}
	if stderr {
		pending.Stderr = errw
	}
	if stdin {
		pending.Stdin = &stdinReader{h: h, cancel: cancel}
	} else {
		h.watchDisconnect(cancel)
	}
	a, err := cs.Attach(ctx, id, pending)
	if err != nil {
		// Too late for an HTTP status: say it on the stream.
		errw.Write([]byte("Error: " + err.Error() + "\n"))
		return nil
	}
	select {
	case <-a.Done():
	case <-h.gone:
		a.Close()
	case <-ctx.Done():
		a.Close()
	}
	a.Wait()
	return nil
}

func sizeParams(r *http.Request) (uint, uint, error) {
	h, err := intParam(r, "h", 0)
	if err != nil {
		return 0, 0, err
	}
	wd, err := intParam(r, "w", 0)
	if err != nil {
		return 0, 0, err
	}
	if h < 0 || wd < 0 || h > 65535 || wd > 65535 {
		return 0, 0, badRequest("invalid terminal size %dx%d", h, wd)
	}
	return uint(h), uint(wd), nil
}

// resize answers a resize request of a container's or an exec's terminal
// with the backend's resize for that kind of id.
func resize(f func(cs Containers, ctx context.Context, id string, height, width uint) error) func(cs Containers, w http.ResponseWriter, r *http.Request) error {
	return func(cs Containers, w http.ResponseWriter, r *http.Request) error {
		h, wd, err := sizeParams(r)
		if err != nil {
			return err
		}
		return respond(w, http.StatusOK, f(cs, r.Context(), r.PathValue("id"), h, wd))
	}
}

func (s *Server) containerTop(cs Containers, w http.ResponseWriter, r *http.Request) error {
	resp, err := cs.Top(r.Context(), r.PathValue("id"), r.URL.Query().Get("ps_args"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) containerStats(cs Containers, w http.ResponseWriter, r *http.Request) error {
	var err error
	stream := true
	if r.URL.Query().Get("stream") != "" {
		if stream, err = boolParam(r, "stream"); err != nil {
			return err
		}
	}
	oneShot, err := boolParam(r, "one-shot")
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	ctx := r.Context()
	first, err := cs.Stats(ctx, id)
	if err != nil {
		return err
	}
	if !stream {
		if !oneShot {
			// Like dockerd: a second sample a second later, so the client
			// can compute CPU percentages from PreCPUStats.
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return nil
			}
			if next, err := cs.Stats(ctx, id); err == nil {
				first = next
			}
		}
		return writeJSON(w, http.StatusOK, first)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	sample := first
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if enc.Encode(sample) != nil || rc.Flush() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if sample, err = cs.Stats(ctx, id); err != nil {
			return nil // the container stopped or went away: end the stream
		}
	}
}

func (s *Server) containerRename(cs Containers, w http.ResponseWriter, r *http.Request) error {
	name := r.URL.Query().Get("name")
	if !validName.MatchString(name) {
		return badRequest("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	return respond(w, http.StatusNoContent, cs.Rename(r.Context(), r.PathValue("id"), strings.TrimPrefix(name, "/")))
}

func (s *Server) containerPause(cs Containers, w http.ResponseWriter, r *http.Request) error {
	return respond(w, http.StatusNoContent, cs.Pause(r.Context(), r.PathValue("id")))
}

func (s *Server) containerUnpause(cs Containers, w http.ResponseWriter, r *http.Request) error {
	return respond(w, http.StatusNoContent, cs.Unpause(r.Context(), r.PathValue("id")))
}

func (s *Server) containerPrune(cs Containers, w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := checkFilterTerms(f, "label", "label!", "until"); err != nil {
		return err
	}
	rep, err := cs.Prune(r.Context(), f)
	if err != nil {
		return err
	}
	if rep.ContainersDeleted == nil {
		rep.ContainersDeleted = []string{}
	}
	return writeJSON(w, http.StatusOK, rep)
}

// archivePath reads the path parameter of /archive. Paths are taken inside
// the container's root; the runtime refuses any that escape it (..,
// symlinks), and NUL bytes are refused here.
func archivePath(r *http.Request) (string, error) {
	p := r.URL.Query().Get("path")
	if p == "" {
		return "", badRequest("path is required (the file or directory in the container)")
	}
	if strings.ContainsRune(p, 0) {
		return "", badRequest("invalid path %q: contains a NUL byte", p)
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p, nil
}

// setPathStat stats path p in container id into docker's stat header.
func setPathStat(ctx context.Context, cs Containers, w http.ResponseWriter, id, p string) error {
	st, err := cs.StatPath(ctx, id, p)
	if err != nil {
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	w.Header().Set("X-Docker-Container-Path-Stat", base64.StdEncoding.EncodeToString(b))
	return nil
}

func (s *Server) archiveStat(cs Containers, w http.ResponseWriter, r *http.Request) error {
	p, err := archivePath(r)
	if err != nil {
		return err
	}
	return respond(w, http.StatusOK, setPathStat(r.Context(), cs, w, r.PathValue("id"), p))
}

func (s *Server) archiveGet(cs Containers, w http.ResponseWriter, r *http.Request) error {
	p, err := archivePath(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := setPathStat(r.Context(), cs, w, id, p); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if err := cs.CopyFrom(r.Context(), id, p, w); err != nil {
		s.opts.Logf("api: copy from %s:%s: %v", id, p, err)
		panic(http.ErrAbortHandler) // a short tar must not look complete
	}
	return nil
}

func (s *Server) archivePut(cs Containers, w http.ResponseWriter, r *http.Request) error {
	p, err := archivePath(r)
	if err != nil {
		return err
	}
	noOverwrite, err := boolParam(r, "noOverwriteDirNonDir")
	if err != nil {
		return err
	}
	return respond(w, http.StatusOK, cs.CopyTo(r.Context(), r.PathValue("id"), p, r.Body, ctrs.CopyToOptions{NoOverwriteDirNonDir: noOverwrite}))
}

func (s *Server) containerExport(cs Containers, w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := cs.Inspect(r.Context(), id); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if err := cs.Export(r.Context(), id, w); err != nil {
		s.opts.Logf("api: export %s: %v", id, err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

func (s *Server) execCreate(cs Containers, w http.ResponseWriter, r *http.Request) error {
	var req container.ExecCreateRequest
	if err := decodeStrictLegacy(r, &req, execCreateLegacy); err != nil {
		return err
	}
	if len(req.Cmd) == 0 {
		return badRequest("no exec command specified")
	}
	if req.Privileged {
		return notImplemented("exec --privileged is not supported by Berth")
	}
	id, err := cs.ExecCreate(r.Context(), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, common.IDResponse{ID: id})
}

func (s *Server) execStart(cs Containers, w http.ResponseWriter, r *http.Request) error {
	var req container.ExecStartRequest
	if err := decodeStrict(r, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	ei, err := cs.ExecInspect(r.Context(), id)
	if err != nil {
		return err
	}
	if ei.Running || ei.Pid != 0 {
		return conflict("exec %s has already been started", id)
	}
	if req.Detach {
		ctx := context.WithoutCancel(r.Context())
		return respond(w, http.StatusOK, cs.ExecStart(ctx, id, ctrs.ExecStartOptions{Detach: true, ConsoleSize: req.ConsoleSize}))
	}
	tty := req.Tty || ei.ProcessConfig != nil && ei.ProcessConfig.Tty
	ct := multiplexedStream
	if tty {
		ct = rawStream
	}
	// The session's context ends when the client is gone, or when the
	// process has ended: not when the client merely detaches.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	h, err := hijack(w, r, ct)
	if err != nil {
		cancel()
		return err
	}
	defer h.close()
	done := make(chan error, 1)
	finished := make(chan struct{})
	detached := make(chan struct{})
	out, errw := outputs(h, tty, nil)
	stdout, stderr := &detachable{w: out, detached: detached}, &detachable{w: errw, detached: detached}
	o := ctrs.ExecStartOptions{Stdout: stdout, Stderr: stderr, ConsoleSize: req.ConsoleSize}
	if ei.OpenStdin && tty {
		// On a terminal, the end of the client's input is docker's detach
		// (ctrl-p ctrl-q), never the user's ^D (that is a byte): the
		// process runs on, as with dockerd, and its output is dropped.
		o.Stdin = &ttyStdin{h: h, cancel: cancel, detached: detached, finished: finished}
	} else if ei.OpenStdin {
		o.Stdin = &stdinReader{h: h, cancel: cancel}
	} else {
		h.watchDisconnect(cancel)
	}
	go func() {
		done <- cs.ExecStart(ctx, id, o)
		close(finished)
		cancel()
	}()
	select {
	case err = <-done:
	case <-h.gone:
		cancel()
		err = <-done
	case <-detached:
		return nil
	}
	select {
	case <-h.gone:
	default:
		if err != nil && !errors.Is(err, ctrs.ErrDetached) {
			stderr.Write([]byte("Error: " + err.Error() + "\n"))
		}
	}
	return nil
}

// ttyStdin turns the end of a tty client's input into a detach: it reports
// it on detached and then blocks until the process has finished, so the
// process never sees EOF.
type ttyStdin struct {
	h        *hijacked
	cancel   context.CancelFunc
	detached chan struct{}
	finished <-chan struct{}
	once     sync.Once
}

func (t *ttyStdin) Read(p []byte) (int, error) {
	n, err := t.h.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		if n > 0 {
			return n, nil // deliver the last bytes; EOF comes again next read
		}
		t.once.Do(func() { close(t.detached) })
		<-t.finished
	default: // a broken connection: the client is gone
		t.h.markGone()
		t.cancel()
	}
	return n, err
}

// detachable writes to w until the client detached, then discards.
type detachable struct {
	w        io.Writer
	detached <-chan struct{}
}

func (d *detachable) Write(p []byte) (int, error) {
	select {
	case <-d.detached:
		return len(p), nil
	default:
	}
	return d.w.Write(p)
}

func (s *Server) execInspect(cs Containers, w http.ResponseWriter, r *http.Request) error {
	resp, err := cs.ExecInspect(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}
