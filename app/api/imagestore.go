package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	imgstore "github.com/berth-dev/berth/runtime/image"
)

// ImageStore serves the Images endpoints from runtime/image.Store.
type ImageStore struct {
	Store *imgstore.Store
	// Publish, when set, receives image events (pull, tag, untag, delete,
	// load) for `docker events`.
	Publish func(events.Message)
}

var _ Images = (*ImageStore)(nil)

// imageErr gives store errors their HTTP meaning.
func imageErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, imgstore.ErrNotFound):
		// docker's wording, which scripts grep for
		return notFound("No such image: %s", strings.TrimPrefix(err.Error(), imgstore.ErrNotFound.Error()+": "))
	case errors.Is(err, imgstore.ErrInUse):
		return conflict("%v", err)
	}
	return err
}

func imageID(r *imgstore.Record) string { return "sha256:" + r.Config.Hex }

func (s *ImageStore) publish(action events.Action, id, ref string) {
	if s.Publish == nil {
		return
	}
	attrs := map[string]string{}
	if ref != "" {
		attrs["name"] = ref
	}
	s.Publish(events.Message{Type: events.ImageEventType, Action: action, Actor: events.Actor{ID: id, Attributes: attrs}})
}

// checkRef turns an unparsable reference into a 400 before the store sees it.
func checkRef(ref string) error {
	if ref == "" {
		return badRequest("no image reference given")
	}
	if strings.HasPrefix(ref, "sha256:") || isHexPrefix(ref) {
		return nil
	}
	if _, err := imgstore.ParseRef(ref); err != nil {
		return badRequest("invalid reference format %q: %v", ref, err)
	}
	return nil
}

func isHexPrefix(s string) bool {
	if len(s) < 3 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *ImageStore) List(ctx context.Context, all bool, f map[string][]string) ([]image.Summary, error) {
	list, err := s.Store.List()
	if err != nil {
		return nil, err
	}
	out := []image.Summary{}
	for _, im := range list {
		sum := image.Summary{
			ID:          imageID(&im.Record),
			RepoTags:    im.Tags,
			RepoDigests: im.RepoDigests,
			Size:        im.Size,
			Containers:  -1, // not computed here (docker's "unknown")
			Labels:      map[string]string{},
			// The manifest: containers record it as their image.
			Descriptor: &ocispec.Descriptor{MediaType: string(im.MediaType), Digest: digest.Digest(im.Digest.String())},
		}
		if sum.RepoTags == nil {
			sum.RepoTags = []string{}
		}
		if sum.RepoDigests == nil {
			sum.RepoDigests = []string{}
		}
		if !im.Created.IsZero() {
			sum.Created = im.Created.Unix()
		}
		if len(f["label"]) > 0 {
			if d, err := s.Store.Inspect(im.Digest.String()); err == nil && d.ConfigFile != nil {
				sum.Labels = d.ConfigFile.Config.Labels
			}
		}
		ok, err := imageMatches(&sum, f)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, sum)
		}
	}
	return out, nil
}

func imageMatches(sum *image.Summary, f map[string][]string) (bool, error) {
	for term, vals := range f {
		switch term {
		case "dangling":
			for _, v := range vals {
				want := v == "true" || v == "1"
				if want != (len(sum.RepoTags) == 0) {
					return false, nil
				}
			}
		case "reference":
			// Like dockerd, the summary keeps only the names that match.
			var err error
			sum.RepoTags, err = matchingRefs(sum.RepoTags, vals, ":")
			if err != nil {
				return false, err
			}
			sum.RepoDigests, _ = matchingRefs(sum.RepoDigests, vals, "@")
			if len(sum.RepoTags) == 0 && len(sum.RepoDigests) == 0 {
				return false, nil
			}
		case "label":
			for _, v := range vals {
				k, want, hasVal := strings.Cut(v, "=")
				got, ok := sum.Labels[k]
				if !ok || hasVal && got != want {
					return false, nil
				}
			}
		default:
			return false, notImplemented("image filter %q is not supported by Berth yet", term)
		}
	}
	return true, nil
}

func (s *ImageStore) Inspect(ctx context.Context, ref string) (image.InspectResponse, error) {
	if err := checkRef(ref); err != nil {
		return image.InspectResponse{}, err
	}
	d, err := s.Store.Inspect(ref)
	if err != nil {
		return image.InspectResponse{}, imageErr(err)
	}
	resp := image.InspectResponse{
		ID:           imageID(&d.Record),
		RepoTags:     d.Tags,
		RepoDigests:  d.RepoDigests,
		Architecture: d.Platform.Architecture,
		Variant:      d.Platform.Variant,
		Os:           d.Platform.OS,
		Size:         d.Size,
		RootFS:       image.RootFS{Type: "layers"},
	}
	if resp.RepoTags == nil {
		resp.RepoTags = []string{}
	}
	if resp.RepoDigests == nil {
		resp.RepoDigests = []string{}
	}
	if cf := d.ConfigFile; cf != nil {
		if !cf.Created.IsZero() {
			resp.Created = cf.Created.Time.UTC().Format(time.RFC3339Nano)
		}
		resp.Author = cf.Author
		resp.Comment = d.Comment
		if cf.Architecture != "" {
			resp.Architecture, resp.Os, resp.Variant = cf.Architecture, cf.OS, cf.Variant
		}
		for _, l := range cf.RootFS.DiffIDs {
			resp.RootFS.Layers = append(resp.RootFS.Layers, l.String())
		}
		// v1.Config and docker's image config share their JSON names.
		b, err := json.Marshal(cf.Config)
		if err != nil {
			return resp, err
		}
		var c dockerspec.DockerOCIImageConfig
		if err := json.Unmarshal(b, &c); err != nil {
			return resp, err
		}
		resp.Config = &c
	}
	return resp, nil
}

func (s *ImageStore) History(ctx context.Context, ref string) ([]image.HistoryResponseItem, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	d, err := s.Store.Inspect(ref)
	if err != nil {
		return nil, imageErr(err)
	}
	var out []image.HistoryResponseItem
	layer := 0
	var hist []v1.History
	if d.ConfigFile != nil {
		hist = d.ConfigFile.History
	}
	if len(hist) == 0 { // images without history: one entry per layer
		for range d.Layers {
			hist = append(hist, v1.History{})
		}
	}
	for _, h := range hist {
		item := image.HistoryResponseItem{ID: "<missing>", CreatedBy: h.CreatedBy, Comment: h.Comment, Tags: []string{}}
		if !h.Created.IsZero() {
			item.Created = h.Created.Unix()
		}
		if !h.EmptyLayer && layer < len(d.Layers) {
			item.Size = d.Layers[layer].Size
			layer++
		}
		out = append(out, item)
	}
	// Newest first, the top one carrying the image's ID and tags.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if len(out) > 0 {
		out[0].ID = imageID(&d.Record)
		out[0].Tags = append([]string{}, d.Tags...)
	}
	return out, nil
}

func (s *ImageStore) Pull(ctx context.Context, ref, platform string, progress func(jsonstream.Message)) error {
	if err := checkRef(ref); err != nil {
		return err
	}
	opts := imgstore.PullOptions{}
	if a := registryAuthFrom(ctx); a != nil {
		opts.Auth = authenticator(*a)
	}
	if platform != "" {
		p, err := imgstore.ParsePlatform(platform)
		if err != nil {
			return badRequest("%v", err)
		}
		opts.Platform = &p
	}
	parsed, _ := imgstore.ParseRef(ref)
	tagOrDigest := "latest"
	repo := ref
	if parsed != nil {
		tagOrDigest = parsed.Identifier()
		repo = parsed.Context().RepositoryStr()
	}
	// The first line goes out with the first progress event, so a pull
	// that fails at once (no such image) is still a plain HTTP error.
	started := false
	opts.Progress = func(e imgstore.Event) {
		if !started {
			started = true
			progress(jsonstream.Message{ID: tagOrDigest, Status: "Pulling from " + repo})
		}
		progress(progressMessage(e))
	}
	rec, err := s.Store.Pull(ctx, ref, opts)
	if err != nil {
		return pullErr(ref, err)
	}
	progress(jsonstream.Message{Status: "Digest: " + rec.Digest.String()})
	progress(jsonstream.Message{Status: "Status: Downloaded newer image for " + familiarName(ref)})
	s.publish(events.ActionPull, familiarName(ref), familiarName(ref))
	return nil
}

// Push uploads a local image to its registry with docker's progress
// messages; auth (from the client) wins over the engine's own keychain.
func (s *ImageStore) Push(ctx context.Context, ref string, auth *registry.AuthConfig, progress func(jsonstream.Message)) error {
	if err := checkRef(ref); err != nil {
		return err
	}
	parsed, err := imgstore.ParseRef(ref)
	if err != nil {
		return badRequest("%v", err)
	}
	opts := imgstore.PushOptions{Progress: func(e imgstore.Event) { progress(progressMessage(e)) }}
	if auth != nil {
		opts.Auth = authenticator(*auth)
	}
	progress(jsonstream.Message{Status: "The push refers to repository [" + parsed.Context().Name() + "]"})
	d, size, err := s.Store.Push(ctx, ref, opts)
	if err != nil {
		return pushErr(ref, err)
	}
	tag := parsed.Identifier()
	progress(jsonstream.Message{Status: fmt.Sprintf("%s: digest: %s size: %d", tag, d, size)})
	aux, _ := json.Marshal(map[string]any{"Tag": tag, "Digest": d.String(), "Size": size})
	progress(jsonstream.Message{Aux: (*json.RawMessage)(&aux)})
	s.publish(events.ActionPush, familiarName(ref), familiarName(ref))
	return nil
}

// Login checks credentials with a registry.
func (s *ImageStore) Login(ctx context.Context, a registry.AuthConfig) error {
	err := s.Store.Login(ctx, a.ServerAddress, authenticator(a))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, imgstore.ErrDenied):
		return errdefs.ErrUnauthenticated.WithMessage(err.Error())
	case errors.Is(err, imgstore.ErrUnreachable):
		return errdefs.ErrUnavailable.WithMessage(err.Error())
	}
	return err
}

func authenticator(a registry.AuthConfig) authn.Authenticator {
	return authn.FromConfig(authn.AuthConfig{Username: a.Username, Password: a.Password, Auth: a.Auth,
		IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken})
}

// pushErr gives a failed push its HTTP meaning, like pullErr.
func pushErr(ref string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	switch {
	case errors.Is(err, imgstore.ErrNotFound):
		return notFound("%v", err)
	case errors.Is(err, imgstore.ErrDenied):
		return errdefs.ErrPermissionDenied.WithMessage(fmt.Sprintf("push %s: %v", ref, err))
	case errors.Is(err, imgstore.ErrUnreachable):
		return errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("push %s: %v", ref, err))
	}
	return err
}

// pullErr classifies a failed pull: an image the registry does not have
// is a 404 like dockerd's; the rest keep their message.
func pullErr(ref string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	switch {
	case errors.Is(err, imgstore.ErrNotOnRegistry), errors.Is(err, imgstore.ErrNotFound):
		return notFound("manifest for %s not found: the repository does not exist or may require 'docker login': %v", ref, err)
	case errors.Is(err, imgstore.ErrDenied):
		return errdefs.ErrPermissionDenied.WithMessage(fmt.Sprintf("pull access denied for %s: %v (log in with docker login)", ref, err))
	case errors.Is(err, imgstore.ErrUnreachable):
		return errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("pull %s: %v", ref, err))
	}
	return fmt.Errorf("pull %s: %w", ref, err)
}

// familiarName is ref as docker prints it (busybox:latest, not
// index.docker.io/library/busybox:latest).
func familiarName(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ref
	}
	repo := r.Context().RepositoryStr()
	reg := r.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		repo = strings.TrimPrefix(repo, "library/")
	} else {
		repo = reg + "/" + repo
	}
	if t, ok := r.(name.Tag); ok {
		return repo + ":" + t.TagStr()
	}
	return repo + "@" + r.Identifier()
}

func (s *ImageStore) Tag(ctx context.Context, source, target string) error {
	if err := checkRef(source); err != nil {
		return err
	}
	if _, err := imgstore.ParseTag(target); err != nil {
		return badRequest("invalid tag %q: %v", target, err)
	}
	if err := s.Store.Tag(source, target); err != nil {
		return imageErr(err)
	}
	s.publish(events.ActionTag, source, familiarName(target))
	return nil
}

func (s *ImageStore) Remove(ctx context.Context, ref string, force, noPrune bool) ([]image.DeleteResponse, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	res, err := s.Store.Remove(ref, force)
	if err != nil {
		if errors.Is(err, imgstore.ErrNotFound) {
			return nil, notFound("No such image: %s", ref)
		}
		// The store refuses removals for one reason class: the image is
		// still wanted (several tags, or a container uses it).
		return nil, conflict("unable to remove %s: %v", ref, err)
	}
	var out []image.DeleteResponse
	for _, u := range res.Untagged {
		out = append(out, image.DeleteResponse{Untagged: u})
		s.publish(events.ActionUnTag, u, u)
	}
	for _, d := range res.Deleted {
		out = append(out, image.DeleteResponse{Deleted: d})
		s.publish(events.ActionDelete, d, "")
	}
	return out, nil
}

func (s *ImageStore) Load(ctx context.Context, r io.Reader, progress func(jsonstream.Message)) error {
	imgs, err := s.Store.Load(ctx, r, imgstore.LoadOptions{Progress: func(e imgstore.Event) { progress(progressMessage(e)) }})
	if err != nil {
		return inputErr(err)
	}
	for _, im := range imgs {
		if len(im.Tags) == 0 {
			progress(jsonstream.Message{Stream: "Loaded image ID: " + imageID(&im.Record) + "\n"})
			s.publish(events.ActionLoad, imageID(&im.Record), "")
		}
		for _, t := range im.Tags {
			progress(jsonstream.Message{Stream: "Loaded image: " + t + "\n"})
			s.publish(events.ActionLoad, imageID(&im.Record), t)
		}
	}
	return nil
}

// Import makes a one-layer image from a root filesystem tar (docker import).
func (s *ImageStore) Import(ctx context.Context, r io.Reader, ref string, progress func(jsonstream.Message)) error {
	rec, err := s.Store.Import(ctx, r, ref, imgstore.ImportOptions{Progress: func(e imgstore.Event) { progress(progressMessage(e)) }})
	if err != nil {
		return inputErr(err)
	}
	id := imageID(rec)
	s.publish(events.ActionImport, id, ref)
	progress(jsonstream.Message{Status: id}) // what `docker import` prints
	return nil
}

var _ RootfsImporter = (*ImageStore)(nil)

// progressMessage is a store event as a line of docker's progress stream.
func progressMessage(e imgstore.Event) jsonstream.Message {
	m := jsonstream.Message{ID: e.ID, Status: e.Status}
	if e.Total > 0 || e.Current > 0 {
		m.Progress = &jsonstream.Progress{Current: e.Current, Total: e.Total}
	}
	return m
}

// inputErr classifies a failed load or import: short of cancellation,
// everything the store refuses there is about the input (not an archive,
// corrupt, truncated, an unsupported format, a bad name, not a root
// filesystem tar).
func inputErr(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return badRequest("%v", err)
}

func (s *ImageStore) Save(ctx context.Context, refs []string, w io.Writer) error {
	return imageErr(s.Store.Save(ctx, w, refs, imgstore.FormatDocker))
}

func (s *ImageStore) Prune(ctx context.Context, danglingOnly bool, f map[string][]string) (image.PruneReport, error) {
	if len(f) > 0 {
		for term := range f {
			return image.PruneReport{}, notImplemented("image prune filter %q is not supported by Berth yet", term)
		}
	}
	res, err := s.Store.Prune(!danglingOnly)
	if err != nil {
		return image.PruneReport{}, err
	}
	rep := image.PruneReport{SpaceReclaimed: uint64(res.Reclaimed)}
	for _, d := range res.Deleted {
		rep.ImagesDeleted = append(rep.ImagesDeleted, image.DeleteResponse{Deleted: d})
		s.publish(events.ActionDelete, d, "")
	}
	s.publish(events.ActionPrune, "", "")
	return rep, nil
}

// matchingRefs keeps the refs whose full name or repository (the part
// before sep) matches one of the glob patterns.
func matchingRefs(refs, patterns []string, sep string) ([]string, error) {
	kept := []string{}
	for _, t := range refs {
		repo := t
		if i := strings.LastIndex(t, sep); i > strings.LastIndex(t, "/") {
			repo = t[:i]
		}
		for _, pat := range patterns {
			m1, err := path.Match(pat, t)
			if err != nil {
				return nil, badRequest("invalid reference filter %q: %v", pat, err)
			}
			m2, _ := path.Match(pat, repo)
			if m1 || m2 {
				kept = append(kept, t)
				break
			}
		}
	}
	return kept, nil
}
