package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	ctrs "github.com/berth-dev/berth/runtime/container"
	imgstore "github.com/berth-dev/berth/runtime/image"
)

// docker diff and docker commit. Both are optional parts of the backends
// (the manager and the image store implement them); an engine without
// them answers 501 as before.

// Differ is the container backend's docker diff.
type Differ interface {
	Diff(ctx context.Context, ref string) ([]container.FilesystemChange, error)
}

// ContainerCommitter is the container backend's docker commit.
type ContainerCommitter interface {
	Commit(ctx context.Context, ref string, opts ctrs.CommitOptions) (string, error)
}

// ImageCommitter adds a committed image to the image store.
type ImageCommitter interface {
	CommitImage(ctx context.Context, img ctrs.CommitImage, comment, author, tag string) (id string, err error)
}

func (s *Server) commitRoutes() {
	s.handle("GET /containers/{id}/changes", s.withContainers(s.containerChanges))
	s.handle("POST /commit", s.withContainers(s.containerCommit))
}

func (s *Server) containerChanges(cs Containers, w http.ResponseWriter, r *http.Request) error {
	d, ok := cs.(Differ)
	if !ok {
		return notImplemented("docker diff is not supported by this engine")
	}
	changes, err := d.Diff(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, changes)
}

func (s *Server) containerCommit(cs Containers, w http.ResponseWriter, r *http.Request) error {
	cc, ok := cs.(ContainerCommitter)
	ic, ok2 := s.b.Images.(ImageCommitter)
	if !ok || !ok2 {
		return notImplemented("docker commit is not supported by this engine")
	}
	q := r.URL.Query()
	ref := q.Get("container")
	if ref == "" {
		return badRequest("no container given: use docker commit CONTAINER [REPOSITORY[:TAG]]")
	}
	// pause=false is accepted: Berth freezes the VM for the read anyway
	// (see runtime/container.Commit), only for as long as it takes.
	if _, err := boolParam(r, "pause"); err != nil {
		return err
	}
	var tag string
	if repo := q.Get("repo"); repo != "" {
		tag = repo
		if t := q.Get("tag"); t != "" {
			tag += ":" + t
		}
		if _, err := imgstore.ParseTag(tag); err != nil {
			return badRequest("invalid reference format %q: %v", tag, err)
		}
	} else if q.Get("tag") != "" {
		return badRequest("tag %q given without a repository: use REPOSITORY:TAG", q.Get("tag"))
	}
	var body *container.Config
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return badRequest("reading request body: %v", err)
	}
	if len(raw) > maxJSONBody {
		return badRequest("request body over %d bytes", maxJSONBody)
	}
	if t := bytes.TrimSpace(raw); len(t) > 0 && string(t) != "null" {
		body = &container.Config{}
		if err := decodeStrictBytes(t, body); err != nil {
			return err
		}
	}
	comment, author := q.Get("comment"), q.Get("author")
	id, err := cc.Commit(r.Context(), ref, ctrs.CommitOptions{
		Config:  body,
		Changes: q["changes"],
		Comment: comment,
		Store: func(ctx context.Context, img ctrs.CommitImage) (string, error) {
			return ic.CommitImage(ctx, img, comment, author, tag)
		},
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, container.CommitResponse{ID: id})
}

// CommitImage stores a committed container as an image (the base image's
// layers plus the container's changes) and returns its ID.
func (s *ImageStore) CommitImage(ctx context.Context, img ctrs.CommitImage, comment, author, tag string) (string, error) {
	// container.Config and the image config share Docker's JSON names.
	raw, err := json.Marshal(img.Config)
	if err != nil {
		return "", err
	}
	var cfg v1.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return "", err
	}
	rec, err := s.Store.Commit(ctx, img.Base, img.Layer, imgstore.CommitOptions{Config: cfg, Comment: comment, Author: author, Tag: tag})
	if err != nil {
		return "", imageErr(err)
	}
	id := imageID(rec)
	if tag != "" {
		s.publish(events.ActionTag, id, tag)
	}
	return id, nil
}

var _ ImageCommitter = (*ImageStore)(nil)
