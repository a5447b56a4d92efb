package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	bolt "go.etcd.io/bbolt"
)

// localImage is a v1.Image whose manifest, config and layers are read from
// the content store.
type localImage struct {
	s        *Store
	rec      *Record
	manifest []byte
	config   []byte
}

func (s *Store) image(rec *Record) (v1.Image, error) {
	m, err := s.blobs.readAll(rec.Digest)
	if err != nil {
		return nil, err
	}
	c, err := s.blobs.readAll(rec.Config)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&localImage{s: s, rec: rec, manifest: m, config: c})
}

func (li *localImage) RawManifest() ([]byte, error)        { return li.manifest, nil }
func (li *localImage) RawConfigFile() ([]byte, error)      { return li.config, nil }
func (li *localImage) MediaType() (types.MediaType, error) { return li.rec.MediaType, nil }

func (li *localImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range li.rec.Layers {
		if l.Digest == h {
			return &localLayer{s: li.s, rec: l}, nil
		}
	}
	if h == li.rec.Config {
		return partial.ConfigLayer(li)
	}
	return nil, fmt.Errorf("image %s has no layer %s", li.rec.Digest, h)
}

// localLayer is a v1.Layer over one stored blob.
type localLayer struct {
	s   *Store
	rec LayerRecord
}

func (l *localLayer) Digest() (v1.Hash, error)            { return l.rec.Digest, nil }
func (l *localLayer) DiffID() (v1.Hash, error)            { return l.rec.DiffID, nil }
func (l *localLayer) Size() (int64, error)                { return l.rec.Size, nil }
func (l *localLayer) MediaType() (types.MediaType, error) { return l.rec.MediaType, nil }
func (l *localLayer) Compressed() (io.ReadCloser, error)  { return l.s.blobs.open(l.rec.Digest) }

// Uncompressed decompresses by content, not media type: stored blobs were
// verified against their digests, and docker archives mislabel often.
func (l *localLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := l.s.blobs.open(l.rec.Digest)
	if err != nil {
		return nil, err
	}
	rc, _, err := decompressor(f, -1)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &closeBoth{ReadCloser: rc, f: f}, nil
}

type closeBoth struct {
	io.ReadCloser
	f io.Closer
}

func (c *closeBoth) Close() error {
	err := c.ReadCloser.Close()
	if ferr := c.f.Close(); err == nil {
		err = ferr
	}
	return err
}

// Resolve finds a local image by reference (tag, repo@digest, digest or ID)
// and returns it backed by local blobs, with its manifest digest. With a
// platform, an image of another platform is reported as not found (wrapping
// ErrNotFound), so the caller can pull the right one.
func (s *Store) Resolve(ctx context.Context, ref string, platform *v1.Platform) (v1.Image, v1.Hash, error) {
	if err := ctx.Err(); err != nil {
		return nil, v1.Hash{}, err
	}
	var rec *Record
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = lookupFor(tx, ref, platform)
		return err
	})
	if err != nil {
		return nil, v1.Hash{}, err
	}
	if platform != nil && !rec.Platform.Satisfies(*platform) {
		return nil, v1.Hash{}, fmt.Errorf("%w: %s is %s, not %s", ErrNotFound, ref, rec.Platform.String(), platform.String())
	}
	img, err := s.image(rec)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	return img, rec.Digest, nil
}

// Details is what inspect shows.
type Details struct {
	Image
	Manifest   json.RawMessage `json:"manifest"`
	ConfigFile *v1.ConfigFile  `json:"configFile"`
	// Comment is the config's "comment" (docker commit -m, import), which
	// v1.ConfigFile does not carry.
	Comment string `json:"comment,omitempty"`
}

// Inspect returns an image's record, tags, manifest and config.
func (s *Store) Inspect(ref string) (*Details, error) {
	var d Details
	err := s.db.View(func(tx *bolt.Tx) error {
		rec, err := lookup(tx, ref)
		if err != nil {
			return err
		}
		d.Record = *rec
		for _, t := range tagsOf(tx, rec.Digest) {
			d.Tags = append(d.Tags, familiar(t))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m, err := s.blobs.readAll(d.Digest)
	if err != nil {
		return nil, err
	}
	d.Manifest = m
	c, err := s.blobs.readAll(d.Record.Config)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(c, &d.ConfigFile); err != nil {
		return nil, fmt.Errorf("image %s has a corrupt config: %w", ref, err)
	}
	var extra struct {
		Comment string `json:"comment"`
	}
	if json.Unmarshal(c, &extra) == nil {
		d.Comment = extra.Comment
	}
	return &d, nil
}
