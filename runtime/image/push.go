package image

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"
)

// Push statuses, as docker prints them.
const (
	StatusPreparing = "Preparing"
	StatusPushing   = "Pushing"
	StatusPushed    = "Pushed"
)

// PushOptions tune Push.
type PushOptions struct {
	// Auth, when set, is used instead of the keychain: the credentials a
	// docker client sent with the request (X-Registry-Auth).
	Auth     authn.Authenticator
	Progress ProgressFunc
}

// Push uploads the local image tagged ref to its registry: layers in
// parallel (each skipped if the registry has it), then the config and the
// manifest, byte for byte as stored, so the pushed digest is the local one.
// It returns that digest and the manifest's size.
func (s *Store) Push(ctx context.Context, refStr string, opts PushOptions) (v1.Hash, int64, error) {
	ref, err := ParseRef(refStr)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	if _, ok := ref.(name.Tag); !ok {
		return v1.Hash{}, 0, fmt.Errorf("push %s: push a tag (name:tag), not a digest", refStr)
	}
	s.gc.RLock()
	defer s.gc.RUnlock()
	img, digest, err := s.Resolve(ctx, refStr, nil)
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("push %s: %w (tag a local image with that name first: docker tag IMAGE %s)", refStr, err, refStr)
	}
	rep := newReporter(opts.Progress)
	auth := s.authOption(opts.Auth)
	base := []remote.Option{
		auth, remote.WithTransport(s.transport()), remote.WithUserAgent("berth"),
		remote.WithRetryBackoff(remote.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Steps: 3}),
	}
	with := func(extra ...remote.Option) []remote.Option { return append(slices.Clip(base), extra...) }
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, 0, err
	}
	for _, l := range layers {
		d, _ := l.Digest()
		rep.emit(Event{ID: shortID(d.Hex), Status: StatusPreparing})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.jobs())
	for _, l := range layers {
		g.Go(func() error {
			d, _ := l.Digest()
			size, _ := l.Size()
			id := shortID(d.Hex)
			updates := make(chan v1.Update, 16)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for u := range updates {
					rep.emit(Event{ID: id, Status: StatusPushing, Current: u.Complete, Total: size})
				}
			}()
			// WriteLayer asks the registry first and skips what it has.
			err := remote.WriteLayer(ref.Context(), l, with(remote.WithContext(gctx), remote.WithProgress(updates))...)
			<-done
			if err != nil {
				return fmt.Errorf("layer %s: %w", id, err)
			}
			rep.emit(Event{ID: id, Status: StatusPushed})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return v1.Hash{}, 0, pushError(ctx, ref, err)
	}
	if err := remote.Write(ref, img, with(remote.WithContext(ctx))...); err != nil {
		return v1.Hash{}, 0, pushError(ctx, ref, err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return v1.Hash{}, 0, err
	}
	return digest, int64(len(raw)), nil
}

// pushError is registryError's wording for a push.
func pushError(ctx context.Context, ref name.Reference, err error) error {
	e := opError(ctx, "push", ref, err)
	var re *RegistryError
	if errors.As(e, &re) && re.Kind == ErrNotOnRegistry {
		return fmt.Errorf("registry %s has no repository %s and did not create it: check the name", ref.Context().RegistryStr(), ref.Context().RepositoryStr())
	}
	return e
}
