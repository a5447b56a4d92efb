package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	bolt "go.etcd.io/bbolt"
)

// CommitOptions describe the image docker commit adds.
type CommitOptions struct {
	// Config replaces the base image's runtime config.
	Config v1.Config
	// Comment and Author go into the new history entry (and Author into
	// the config's author field, as Docker does).
	Comment, Author string
	// Tag names the new image ("repo:tag"); "" leaves it untagged.
	Tag string
}

// Commit adds an image made of base (a manifest digest or any reference
// Resolve takes) plus one layer, read from layer as an uncompressed tar
// and stored gzip-compressed. Blobs are written to temp files, synced and
// renamed into place; the record and tag are committed last, in one
// transaction, so a failure leaves at most unreferenced blobs (which the
// next prune sweeps), never a half image.
func (s *Store) Commit(ctx context.Context, base string, layer io.Reader, opts CommitOptions) (*Record, error) {
	var tag string
	if opts.Tag != "" {
		t, err := ParseTag(opts.Tag)
		if err != nil {
			return nil, err
		}
		tag = canonical(t)
	}
	s.gc.RLock()
	defer s.gc.RUnlock()
	d, err := v1.NewHash(base)
	if err != nil {
		return nil, fmt.Errorf("base image %q: not a manifest digest: %w", base, err)
	}
	var baseRec *Record
	if err := s.db.View(func(tx *bolt.Tx) error {
		baseRec, err = getRecord(tx, d)
		return err
	}); err != nil {
		return nil, err
	}
	rawMf, err := s.blobs.readAll(baseRec.Digest)
	if err != nil {
		return nil, fmt.Errorf("base image %s: manifest: %w", base, err)
	}
	rawCf, err := s.blobs.readAll(baseRec.Config)
	if err != nil {
		return nil, fmt.Errorf("base image %s: config: %w", base, err)
	}
	var mf v1.Manifest
	if err := json.Unmarshal(rawMf, &mf); err != nil {
		return nil, fmt.Errorf("base image %s: corrupt manifest: %w", base, err)
	}
	var cf v1.ConfigFile
	if err := json.Unmarshal(rawCf, &cf); err != nil {
		return nil, fmt.Errorf("base image %s: corrupt config: %w", base, err)
	}

	// The layer: the tar is hashed (diff ID) on its way into gzip, whose
	// output the temp file hashes (blob digest).
	t, err := s.blobs.newTemp()
	if err != nil {
		return nil, err
	}
	defer t.discard()
	diff := sha256.New()
	zw, err := gzip.NewWriterLevel(t, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.MultiWriter(zw, diff), ctxReader{ctx, layer}); err != nil {
		return nil, fmt.Errorf("write the committed layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("write the committed layer: %w", err)
	}
	layerDigest, layerSize := t.digest(), t.n
	diffID := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diff.Sum(nil))}

	now := time.Now().UTC()
	cf.Config = opts.Config
	cf.Created = v1.Time{Time: now}
	if opts.Author != "" {
		cf.Author = opts.Author
	}
	cf.Container = ""
	cf.RootFS.Type = "layers"
	cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, diffID)
	cf.History = append(cf.History, v1.History{Created: v1.Time{Time: now}, CreatedBy: "berth commit", Comment: opts.Comment, Author: opts.Author})
	cfgRaw, err := configWithComment(&cf, opts.Comment)
	if err != nil {
		return nil, err
	}

	// Keep the base manifest's flavour (Docker v2 or OCI), so push sends
	// media types a registry expects together.
	layerType, cfgType := types.OCILayer, types.OCIConfigJSON
	if mf.MediaType == types.DockerManifestSchema2 {
		layerType, cfgType = types.DockerLayer, types.DockerConfigJSON
	}
	mf.Config = v1.Descriptor{MediaType: cfgType, Digest: sha256Hash(cfgRaw), Size: int64(len(cfgRaw))}
	mf.Layers = append(mf.Layers, v1.Descriptor{MediaType: layerType, Digest: layerDigest, Size: layerSize})
	mf.Annotations = nil
	mraw, err := json.Marshal(&mf)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("commit interrupted: %w", err)
	}
	if err := s.blobs.publish(t); err != nil { // synced, then renamed
		return nil, fmt.Errorf("store the committed layer: %w", err)
	}
	if _, err := s.blobs.putBytes(cfgRaw); err != nil {
		return nil, err
	}
	if _, err := s.blobs.putBytes(mraw); err != nil {
		return nil, err
	}
	if err := syncDir(s.blobs.dir); err != nil {
		return nil, err
	}
	rec := newRecord(sha256Hash(mraw), &mf, &cf, int64(len(mraw)))
	rec.Source = "commit"
	var refs []string
	if tag != "" {
		refs = []string{tag}
	}
	if err := s.addImage(rec, refs); err != nil {
		return nil, err
	}
	return rec, nil
}

// configWithComment marshals cf with Docker's top-level "comment" (what
// image inspect shows as Comment), which v1.ConfigFile has no field for.
func configWithComment(cf *v1.ConfigFile, comment string) ([]byte, error) {
	raw, err := json.Marshal(cf)
	if err != nil || comment == "" {
		return raw, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	c, err := json.Marshal(comment)
	if err != nil {
		return nil, err
	}
	m["comment"] = c
	return json.Marshal(m)
}
