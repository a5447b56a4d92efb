package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	bolt "go.etcd.io/bbolt"
)

// Archive formats for Save.
const (
	FormatDocker = "docker" // docker-archive: manifest.json + config + layer files (`docker load` reads it)
	FormatOCI    = "oci"    // OCI image layout in a tar: oci-layout, index.json, blobs/sha256/*
)

// saved is one image to write and the names it is written under.
type saved struct {
	rec  *Record
	tags []string // canonical refs
}

// Save writes the images refs name to w as one archive. A ref that is a tag
// is saved under that name; an ID or digest saves the image untagged.
func (s *Store) Save(ctx context.Context, w io.Writer, refs []string, format string) error {
	if format == "" {
		format = FormatDocker
	}
	if format != FormatDocker && format != FormatOCI {
		return fmt.Errorf("unknown archive format %q: use docker or oci", format)
	}
	if len(refs) == 0 {
		return fmt.Errorf("save: name at least one image")
	}
	var list []*saved
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, r := range refs {
			rec, err := lookup(tx, r)
			if err != nil {
				return err
			}
			var tags []string
			if ref, err := ParseRef(r); err == nil {
				if t, ok := ref.(name.Tag); ok && tx.Bucket(bucketRefs).Get([]byte(canonical(t))) != nil {
					tags = []string{canonical(t)}
				}
			}
			merged := false
			for _, sv := range list {
				if sv.rec.Digest == rec.Digest {
					sv.tags = mergeStrings(sv.tags, tags)
					merged = true
				}
			}
			if !merged {
				list = append(list, &saved{rec: rec, tags: tags})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	written := map[string]bool{}
	if format == FormatOCI {
		err = s.writeOCI(ctx, tw, list, written)
	} else {
		err = s.writeDocker(ctx, tw, list, written)
	}
	if err != nil {
		return err
	}
	return tw.Close()
}

func (s *Store) writeDocker(ctx context.Context, tw *tar.Writer, list []*saved, written map[string]bool) error {
	type entry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []entry
	for _, sv := range list {
		e := entry{Config: sv.rec.Config.Hex + ".json", RepoTags: []string{}}
		for _, t := range sv.tags {
			e.RepoTags = append(e.RepoTags, familiar(t))
		}
		if err := s.writeBlob(ctx, tw, e.Config, sv.rec.Config, written); err != nil {
			return err
		}
		for _, l := range sv.rec.Layers {
			p := l.Digest.Hex + layerExt(l.MediaType)
			if err := s.writeBlob(ctx, tw, p, l.Digest, written); err != nil {
				return err
			}
			e.Layers = append(e.Layers, p)
		}
		manifest = append(manifest, e)
	}
	b, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	return writeBytes(tw, "manifest.json", b)
}

func layerExt(mt types.MediaType) string {
	switch mt {
	case types.OCIUncompressedLayer, types.DockerUncompressedLayer:
		return ".tar"
	case types.OCILayerZStd:
		return ".tar.zst"
	}
	return ".tar.gz"
}

func (s *Store) writeOCI(ctx context.Context, tw *tar.Writer, list []*saved, written map[string]bool) error {
	if err := writeBytes(tw, "oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
	for _, sv := range list {
		blobs := []v1.Hash{sv.rec.Digest, sv.rec.Config}
		for _, l := range sv.rec.Layers {
			blobs = append(blobs, l.Digest)
		}
		for _, d := range blobs {
			if err := s.writeBlob(ctx, tw, "blobs/sha256/"+d.Hex, d, written); err != nil {
				return err
			}
		}
		msize, err := s.blobs.size(sv.rec.Digest)
		if err != nil {
			return err
		}
		plat := sv.rec.Platform
		desc := v1.Descriptor{MediaType: sv.rec.MediaType, Digest: sv.rec.Digest, Size: msize, Platform: &plat}
		if len(sv.tags) == 0 {
			idx.Manifests = append(idx.Manifests, desc)
		}
		for _, t := range sv.tags {
			d := desc
			tag, _ := name.NewTag(t)
			d.Annotations = map[string]string{
				"io.containerd.image.name":          t,
				"org.opencontainers.image.ref.name": tag.TagStr(),
			}
			idx.Manifests = append(idx.Manifests, d)
		}
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return writeBytes(tw, "index.json", b)
}

func (s *Store) writeBlob(ctx context.Context, tw *tar.Writer, p string, d v1.Hash, written map[string]bool) error {
	if written[p] {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := s.blobs.open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: fi.Size(), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, ctxReader{ctx, f}); err != nil {
		return err
	}
	written[p] = true
	return nil
}

func writeBytes(tw *tar.Writer, p string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}
