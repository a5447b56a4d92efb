package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/registry"
)

func (s *Server) imageRoutes() {
	s.handle("GET /images/json", s.withImages(s.imageList))
	s.handle("POST /images/create", s.withImages(s.imagePull))
	s.handle("POST /images/load", s.withImages(s.imageLoad))
	s.handle("GET /images/get", s.imageSave)
	s.handle("POST /images/prune", s.withImages(s.imagePrune))
	s.handle("GET /images/search", func(w http.ResponseWriter, r *http.Request) error {
		return notImplemented("docker search is not supported by Berth: search your registry's web UI")
	})
	s.handle("POST /build", func(w http.ResponseWriter, r *http.Request) error {
		return notImplemented("docker build is not supported by Berth yet: build with another tool and `docker load` the result")
	})
	// Image names contain slashes, so /images/{name}/json and friends are
	// split by hand.
	s.handle("POST /auth", s.withImages(s.registryLogin))
	s.handle("GET /images/{rest...}", s.imageByName)
	s.handle("POST /images/{rest...}", s.imageByName)
	s.handle("DELETE /images/{rest...}", s.withImages(s.imageRemove))
}

func (s *Server) images() (Images, error) {
	if s.b.Images == nil {
		return nil, notImplemented("this engine has no image store")
	}
	return s.b.Images, nil
}

// withImages adapts a handler that needs the image store.
func (s *Server) withImages(f func(is Images, w http.ResponseWriter, r *http.Request) error) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		is, err := s.images()
		if err != nil {
			return err
		}
		return f(is, w, r)
	}
}

func (s *Server) imageByName(w http.ResponseWriter, r *http.Request) error {
	rest := r.PathValue("rest")
	i := strings.LastIndex(rest, "/")
	if i <= 0 {
		return notFound("page not found: %s /images/%s", r.Method, rest)
	}
	name, op := rest[:i], rest[i+1:]
	var h func(is Images, w http.ResponseWriter, r *http.Request, name string) error
	switch {
	case r.Method == http.MethodGet && op == "json":
		h = s.imageInspect
	case r.Method == http.MethodGet && op == "history":
		h = s.imageHistory
	case r.Method == http.MethodGet && op == "get":
		h = func(is Images, w http.ResponseWriter, r *http.Request, name string) error {
			return s.saveImages(is, w, r, []string{name})
		}
	case r.Method == http.MethodPost && op == "tag":
		h = s.imageTag
	case r.Method == http.MethodPost && op == "push":
		h = s.imagePush
	default:
		return notFound("page not found: %s /images/%s", r.Method, rest)
	}
	is, err := s.images()
	if err != nil {
		return err
	}
	return h(is, w, r, name)
}

func (s *Server) imageList(is Images, w http.ResponseWriter, r *http.Request) error {
	all, err := boolParam(r, "all")
	if err != nil {
		return err
	}
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := checkFilterTerms(f, "dangling", "label", "reference", "before", "since", "until"); err != nil {
		return err
	}
	list, err := is.List(r.Context(), all, f)
	if err != nil {
		return err
	}
	if list == nil {
		list = []image.Summary{}
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *Server) imageInspect(is Images, w http.ResponseWriter, r *http.Request, name string) error {
	resp, err := is.Inspect(r.Context(), name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) imageHistory(is Images, w http.ResponseWriter, r *http.Request, name string) error {
	h, err := is.History(r.Context(), name)
	if err != nil {
		return err
	}
	if h == nil {
		h = []image.HistoryResponseItem{}
	}
	return writeJSON(w, http.StatusOK, h)
}

func (s *Server) imageTag(is Images, w http.ResponseWriter, r *http.Request, name string) error {
	q := r.URL.Query()
	repo, tag := q.Get("repo"), q.Get("tag")
	if repo == "" {
		return badRequest("repository name (repo) is required to tag an image")
	}
	target := repo
	if tag != "" {
		target += ":" + tag
	}
	return respond(w, http.StatusCreated, is.Tag(r.Context(), name, target))
}

func (s *Server) imageRemove(is Images, w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("rest")
	force, err := boolParam(r, "force")
	if err != nil {
		return err
	}
	noprune, err := boolParam(r, "noprune")
	if err != nil {
		return err
	}
	resp, err := is.Remove(r.Context(), name, force, noprune)
	if err != nil {
		return err
	}
	if resp == nil {
		resp = []image.DeleteResponse{}
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) imagePrune(is Images, w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := checkFilterTerms(f, "dangling", "label", "label!", "until"); err != nil {
		return err
	}
	dangling := true
	if vals, ok := f["dangling"]; ok {
		for _, v := range vals {
			switch strings.ToLower(v) {
			case "false", "0":
				dangling = false
			case "true", "1":
			default:
				return badRequest("invalid filter 'dangling=%s': expected true or false", v)
			}
		}
		delete(f, "dangling")
	}
	rep, err := is.Prune(r.Context(), dangling, f)
	if err != nil {
		return err
	}
	if rep.ImagesDeleted == nil {
		rep.ImagesDeleted = []image.DeleteResponse{}
	}
	return writeJSON(w, http.StatusOK, rep)
}

// progressStream writes jsonstream messages as the body of a 200 response,
// flushing each, after the first message (or the end) commits the status.
// Errors that happen before anything was written still become a proper
// HTTP error status.
type progressStream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	mu      sync.Mutex
	started bool
	broken  bool
}

func newProgressStream(w http.ResponseWriter) *progressStream {
	return &progressStream{w: w, rc: http.NewResponseController(w)}
}

func (p *progressStream) start() {
	if !p.started {
		p.started = true
		p.w.Header().Set("Content-Type", "application/json")
		p.w.WriteHeader(http.StatusOK)
	}
}

func (p *progressStream) send(m jsonstream.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken {
		return
	}
	p.start()
	b, _ := json.Marshal(m)
	if _, err := p.w.Write(append(b, '\n')); err != nil {
		p.broken = true // the client went away; the operation's ctx ends too
		return
	}
	p.rc.Flush()
}

// finish ends the stream: an error goes into the stream if it had started,
// else it is returned for the usual JSON error response.
func (p *progressStream) finish(err error) error {
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	if err == nil {
		p.mu.Lock()
		p.start()
		p.mu.Unlock()
		return nil
	}
	if !started {
		return err
	}
	p.send(jsonstream.Message{Error: &jsonstream.Error{Message: err.Error()}})
	return nil
}

func (s *Server) imagePull(is Images, w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if src := q.Get("fromSrc"); src != "" {
		imp, ok := is.(RootfsImporter)
		if src != "-" || !ok {
			return notImplemented("docker import from %s is not supported by Berth: import a root filesystem tar from a file (`docker import FILE NAME`)", src)
		}
		ref := q.Get("repo")
		if tag := q.Get("tag"); tag != "" && ref != "" {
			ref += ":" + tag
		}
		if ref == "" {
			return badRequest("repo is required: Berth names every imported image (`docker import FILE NAME`)")
		}
		ps := newProgressStream(w)
		if err := ps.rc.EnableFullDuplex(); err != nil {
			return err
		}
		closeAfter(w)
		return ps.finish(imp.Import(r.Context(), r.Body, ref, ps.send))
	}
	ref := q.Get("fromImage")
	if ref == "" {
		return badRequest("fromImage is required (the image to pull)")
	}
	if tag := q.Get("tag"); tag != "" {
		if strings.HasPrefix(tag, "sha256:") {
			ref += "@" + tag
		} else {
			ref += ":" + tag
		}
	}
	auth, err := decodeRegistryAuth(r.Header.Get(registry.AuthHeader))
	if err != nil {
		return badRequest("%s header: %v", registry.AuthHeader, err)
	}
	ps := newProgressStream(w)
	return ps.finish(is.Pull(withRegistryAuth(r.Context(), auth), ref, q.Get("platform"), ps.send))
}

func (s *Server) imageLoad(is Images, w http.ResponseWriter, r *http.Request) error {
	ps := newProgressStream(w)
	// Progress goes out while the tarball still comes in: without full
	// duplex, net/http would cut the request body at the first flush.
	if err := ps.rc.EnableFullDuplex(); err != nil {
		return err
	}
	closeAfter(w)
	return ps.finish(is.Load(r.Context(), r.Body, ps.send))
}

// closeAfter ends the connection after this response. A full-duplex
// upload refused before its body was read to the end left the connection
// in a state where the next request on it failed at random ("invalid
// concurrent Body.Read call", or the client's write hitting a closed
// socket; cf. golang/go#68560); a new connection per load costs nothing
// on a unix socket.
func closeAfter(w http.ResponseWriter) { w.Header().Set("Connection", "close") }

func (s *Server) imageSave(w http.ResponseWriter, r *http.Request) error {
	names := r.URL.Query()["names"]
	if len(names) == 0 {
		return badRequest("no image names given to save (names=...)")
	}
	is, err := s.images()
	if err != nil {
		return err
	}
	return s.saveImages(is, w, r, names)
}

func (s *Server) saveImages(is Images, w http.ResponseWriter, r *http.Request, names []string) error {
	// Resolve every name first so a typo is a 404, not a truncated tarball.
	for _, n := range names {
		if _, err := is.Inspect(r.Context(), n); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if err := is.Save(r.Context(), names, w); err != nil {
		// Headers are gone; abort the connection so the client sees a
		// broken transfer instead of a short but well-formed tarball.
		s.opts.Logf("api: image save %v: %v", names, err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// Pusher is an image store that can push and check registry logins
// (ImageStore is one).
type Pusher interface {
	Push(ctx context.Context, ref string, auth *registry.AuthConfig, progress func(jsonstream.Message)) error
	Login(ctx context.Context, auth registry.AuthConfig) error
}

// registryLogin is POST /auth (docker login): the engine checks the
// credentials with the registry; the client stores them.
func (s *Server) registryLogin(is Images, w http.ResponseWriter, r *http.Request) error {
	p, ok := is.(Pusher)
	if !ok {
		return notImplemented("this engine's image store cannot log in to registries")
	}
	var a registry.AuthConfig
	if err := decodeStrict(r, &a); err != nil {
		return err
	}
	if err := p.Login(r.Context(), a); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, registry.AuthResponse{Status: "Login Succeeded"})
}

// imagePush is POST /images/{name}/push?tag=: the client's credentials come
// in X-Registry-Auth (what `docker login` stored on its side).
func (s *Server) imagePush(is Images, w http.ResponseWriter, r *http.Request, name string) error {
	p, ok := is.(Pusher)
	if !ok {
		return notImplemented("this engine's image store cannot push")
	}
	ref := name
	if tag := r.URL.Query().Get("tag"); tag != "" {
		ref += ":" + tag
	}
	auth, err := decodeRegistryAuth(r.Header.Get(registry.AuthHeader))
	if err != nil {
		return badRequest("%s header: %v", registry.AuthHeader, err)
	}
	ps := newProgressStream(w)
	return ps.finish(p.Push(r.Context(), ref, auth, ps.send))
}

// decodeRegistryAuth reads X-Registry-Auth: base64url JSON (padding
// optional, as clients differ). Empty or "{}" means no credentials (nil).
func decodeRegistryAuth(h string) (*registry.AuthConfig, error) {
	if h == "" {
		return nil, nil
	}
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding} {
		if raw, err = enc.DecodeString(h); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("not base64: %v", err)
	}
	var a registry.AuthConfig
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("not JSON credentials: %v", err)
	}
	if a == (registry.AuthConfig{}) {
		return nil, nil
	}
	return &a, nil
}

type registryAuthKey struct{}

// withRegistryAuth carries a client's registry credentials to the image
// store with the request (nil: use the engine's own).
func withRegistryAuth(ctx context.Context, a *registry.AuthConfig) context.Context {
	if a == nil {
		return ctx
	}
	return context.WithValue(ctx, registryAuthKey{}, a)
}

func registryAuthFrom(ctx context.Context) *registry.AuthConfig {
	a, _ := ctx.Value(registryAuthKey{}).(*registry.AuthConfig)
	return a
}
