package image

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	bolt "go.etcd.io/bbolt"
)

// LoadOptions tune Load.
type LoadOptions struct {
	// Platform picks from multi-platform indexes inside OCI archives; nil
	// means DefaultPlatform.
	Platform *v1.Platform
	Progress ProgressFunc
	// Total is the input's size if known, for progress.
	Total int64
}

// pending is an image fully staged and verified, not yet committed.
type pending struct {
	rec      *Record
	manifest []byte
	config   []byte
	blobs    map[v1.Hash]*member
	tags     []string // canonical refs
}

// Load reads an image archive from r and adds every image in it. Formats
// are detected from the content: docker-archive (`docker save`) and OCI
// archive (oci-layout + index.json), each plain, gzip- or zstd-compressed.
// Everything is verified before anything is stored: on any error the store
// is unchanged.
func (s *Store) Load(ctx context.Context, r io.Reader, opts LoadOptions) ([]Image, error) {
	st, err := s.openStaging(ctx, r, opts.Progress, opts.Total)
	if err != nil {
		return nil, err
	}
	defer st.close()
	a := st.a
	err = a.readTar(st.dr, func(int64) { st.progress() })
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("load interrupted: %w", ctx.Err())
		}
		return nil, err
	}
	if len(a.members) == 0 {
		return nil, errors.New("empty archive: it contains no files")
	}
	return s.loadStaged(ctx, a, opts)
}

// LoadPath loads a file (any format Load reads) or an OCI layout directory.
func (s *Store) LoadPath(ctx context.Context, p string, opts LoadOptions) ([]Image, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %s", p, oneLine(errors.Unwrap(err).Error()))
	}
	if !fi.IsDir() {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if opts.Total == 0 {
			opts.Total = fi.Size()
		}
		return s.Load(ctx, f, opts)
	}
	s.gc.RLock()
	defer s.gc.RUnlock()
	a, err := newArchive(s.blobs.tmp)
	if err != nil {
		return nil, err
	}
	defer a.close()
	a.root, err = os.OpenRoot(p)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %s", p, oneLine(err.Error()))
	}
	return s.loadStaged(ctx, a, opts)
}

func (s *Store) loadStaged(ctx context.Context, a *archive, opts LoadOptions) ([]Image, error) {
	plat := DefaultPlatform()
	if opts.Platform != nil {
		plat = *opts.Platform
	}
	var imgs []*pending
	var err error
	switch {
	case a.has("index.json") && a.has("oci-layout"):
		imgs, err = s.planOCI(a, plat)
	case a.has("manifest.json"):
		imgs, err = s.planDocker(a)
	case a.has("index.json"):
		return nil, errors.New("not an OCI archive: index.json without oci-layout")
	default:
		return nil, errors.New("not an image archive: no manifest.json (docker-archive) or index.json (OCI); to make an image from a root filesystem tar use `berth import FILE NAME`")
	}
	if err != nil {
		return nil, err
	}
	if len(imgs) == 0 {
		return nil, errors.New("the archive lists no images")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.commitPending(imgs)
}

// commitPending publishes blobs, then records all images in one
// transaction. Like a pull, it publishes them unsynced under a journal
// entry and syncs them in the background (durable.go).
func (s *Store) commitPending(imgs []*pending) ([]Image, error) {
	var missing []v1.Hash
	for _, p := range imgs {
		for d := range p.blobs {
			missing = append(missing, d)
		}
		missing = append(missing, sha256Hash(p.config), sha256Hash(p.manifest))
	}
	var pend *unsynced
	if missing = s.blobs.absent(missing); len(missing) > 0 {
		var err error
		if pend, err = s.beginUnsynced(missing); err != nil {
			return nil, err
		}
		defer pend.finish()
	}
	for _, p := range imgs {
		for d, m := range p.blobs {
			if err := s.blobs.commitStaged(m, d, pend); err != nil {
				return nil, err
			}
		}
		if _, err := s.blobs.putBytesTo(p.config, pend); err != nil {
			return nil, err
		}
		if _, err := s.blobs.putBytesTo(p.manifest, pend); err != nil {
			return nil, err
		}
	}
	var out []Image
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, p := range imgs {
			if old, err := getRecord(tx, p.rec.Digest); err == nil {
				p.rec.Added = old.Added
			}
			if err := putRecord(tx, p.rec); err != nil {
				return err
			}
			for _, t := range p.tags {
				if err := tx.Bucket(bucketRefs).Put([]byte(t), []byte(p.rec.Digest.String())); err != nil {
					return err
				}
			}
		}
		for _, p := range imgs {
			img := Image{Record: *p.rec}
			for _, t := range tagsOf(tx, p.rec.Digest) {
				img.Tags = append(img.Tags, familiar(t))
			}
			out = append(out, img)
		}
		return nil
	})
	return out, err
}

// dockerEntry is one image in a docker-archive's manifest.json.
type dockerEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func (s *Store) planDocker(a *archive) ([]*pending, error) {
	raw, err := a.read("manifest.json")
	if err != nil {
		return nil, err
	}
	var entries []dockerEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("corrupt manifest.json: %s", oneLine(err.Error()))
	}
	var out []*pending
	for _, e := range entries {
		p, err := s.planDockerEntry(a, e)
		if err != nil {
			return nil, err
		}
		out = mergePending(out, p)
	}
	return out, nil
}

func (s *Store) planDockerEntry(a *archive, e dockerEntry) (*pending, error) {
	if e.Config == "" {
		return nil, errors.New("corrupt manifest.json: an image has no Config")
	}
	cfgRaw, err := a.read(e.Config)
	if err != nil {
		return nil, missing("manifest.json", err)
	}
	cfgDigest := sha256Hash(cfgRaw)
	cf, err := v1.ParseConfigFile(strings.NewReader(string(cfgRaw)))
	if err != nil {
		return nil, fmt.Errorf("corrupt image config %s: %s", e.Config, oneLine(err.Error()))
	}
	if len(cf.RootFS.DiffIDs) != len(e.Layers) {
		return nil, fmt.Errorf("corrupt archive: config %s lists %d layers, manifest.json %d", e.Config, len(cf.RootFS.DiffIDs), len(e.Layers))
	}
	p := &pending{config: cfgRaw, blobs: map[v1.Hash]*member{}}
	mf := &v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cfgDigest, Size: int64(len(cfgRaw))},
	}
	for i, lp := range e.Layers {
		m, err := a.get(lp)
		if err != nil {
			return nil, missing("manifest.json", err)
		}
		diff := cf.RootFS.DiffIDs[i]
		if err := checkDigest(diff); err != nil {
			return nil, err
		}
		mt := types.OCIUncompressedLayer
		if m.digest != diff {
			// A compressed layer file: its content must decompress to diff.
			c, got, err := s.diffIDOf(m)
			if err != nil {
				return nil, fmt.Errorf("layer %s: %w", lp, err)
			}
			if c == compNone || got != diff {
				return nil, fmt.Errorf("digest mismatch: layer %s has diff ID %s, its config says %s", lp, got, diff)
			}
			mt = types.OCILayer
			if c == compZstd {
				mt = types.OCILayerZStd
			}
		}
		mf.Layers = append(mf.Layers, v1.Descriptor{MediaType: mt, Digest: m.digest, Size: m.size})
		p.blobs[m.digest] = m
	}
	p.manifest, err = json.Marshal(mf)
	if err != nil {
		return nil, err
	}
	p.rec = newRecord(sha256Hash(p.manifest), mf, cf, int64(len(p.manifest)))
	p.rec.Source = "load"
	for _, t := range e.RepoTags {
		tag, err := ParseTag(t)
		if err != nil {
			return nil, fmt.Errorf("manifest.json: %w", err)
		}
		p.tags = append(p.tags, canonical(tag))
	}
	return p, nil
}

// diffIDOf decompresses a staged member (bomb-capped) and hashes the result.
func (s *Store) diffIDOf(m *member) (compression, v1.Hash, error) {
	f, err := os.Open(m.staged)
	if err != nil {
		return compNone, v1.Hash{}, err
	}
	defer f.Close()
	rc, c, err := decompressor(f, s.MaxExpansion)
	if err != nil {
		return c, v1.Hash{}, err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return c, v1.Hash{}, err
	}
	return c, v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, nil
}

func (s *Store) planOCI(a *archive, plat v1.Platform) ([]*pending, error) {
	layout, err := a.read("oci-layout")
	if err != nil {
		return nil, err
	}
	var lv struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(layout, &lv); err != nil || lv.Version == "" {
		return nil, errors.New("corrupt OCI archive: oci-layout has no imageLayoutVersion")
	}
	raw, err := a.read("index.json")
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(strings.NewReader(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("corrupt index.json: %s", oneLine(err.Error()))
	}
	var out []*pending
	for _, d := range idx.Manifests {
		tags, err := namesOf(d.Annotations)
		if err != nil {
			return nil, err
		}
		p, err := s.planOCIDescriptor(a, d, plat, 0)
		if err != nil {
			return nil, err
		}
		p.tags = tags
		out = mergePending(out, p)
	}
	return out, nil
}

func (s *Store) planOCIDescriptor(a *archive, d v1.Descriptor, plat v1.Platform, depth int) (*pending, error) {
	switch d.MediaType {
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
		return s.planOCIManifest(a, d)
	case types.OCIImageIndex, types.DockerManifestList:
		if depth > 4 {
			return nil, errors.New("corrupt OCI archive: indexes nested too deep")
		}
		raw, err := a.readBlob(d.Digest, d.Size, "index.json")
		if err != nil {
			return nil, err
		}
		idx, err := v1.ParseIndexManifest(strings.NewReader(string(raw)))
		if err != nil {
			return nil, fmt.Errorf("corrupt image index %s: %s", shortID(d.Digest.Hex), oneLine(err.Error()))
		}
		var avail []string
		for _, c := range idx.Manifests {
			if c.Platform == nil {
				continue
			}
			avail = append(avail, c.Platform.String())
			if c.Platform.Satisfies(plat) && (isImageManifest(c.MediaType) || c.MediaType == types.OCIImageIndex) {
				return s.planOCIDescriptor(a, c, plat, depth+1)
			}
		}
		return nil, fmt.Errorf("the archive has no image for %s (it has: %s); choose one with --platform", plat.String(), strings.Join(avail, ", "))
	}
	return nil, fmt.Errorf("unsupported media type %q in the archive's index", d.MediaType)
}

func (s *Store) planOCIManifest(a *archive, d v1.Descriptor) (*pending, error) {
	raw, err := a.readBlob(d.Digest, d.Size, "index.json")
	if err != nil {
		return nil, err
	}
	mf, err := v1.ParseManifest(strings.NewReader(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("corrupt manifest %s: %s", shortID(d.Digest.Hex), oneLine(err.Error()))
	}
	if mf.MediaType == "" {
		mf.MediaType = d.MediaType
	}
	if err := checkManifest(mf); err != nil {
		return nil, err
	}
	cfgRaw, err := a.readBlob(mf.Config.Digest, mf.Config.Size, "a manifest")
	if err != nil {
		return nil, err
	}
	cf, err := checkConfig(cfgRaw, mf)
	if err != nil {
		return nil, err
	}
	p := &pending{manifest: raw, config: cfgRaw, blobs: map[v1.Hash]*member{}}
	for _, l := range mf.Layers {
		lm, err := a.blob(l.Digest, l.Size)
		if err != nil {
			return nil, missing("a manifest", err)
		}
		p.blobs[l.Digest] = lm
	}
	p.rec = newRecord(d.Digest, mf, cf, int64(len(raw)))
	p.rec.MediaType = d.MediaType
	p.rec.Source = "load"
	return p, nil
}

// namesOf reads image names from an OCI descriptor's annotations. A bare
// tag ("latest") cannot name an image on its own and is ignored.
func namesOf(ann map[string]string) ([]string, error) {
	n := ann["io.containerd.image.name"]
	if n == "" {
		n = ann["org.opencontainers.image.ref.name"]
		if !strings.ContainsAny(n, ":/") {
			n = ""
		}
	}
	if n == "" {
		return nil, nil
	}
	t, err := ParseTag(n)
	if err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	return []string{canonical(t)}, nil
}

func mergePending(list []*pending, p *pending) []*pending {
	for _, q := range list {
		if q.rec.Digest == p.rec.Digest {
			q.tags = mergeStrings(q.tags, p.tags)
			return list
		}
	}
	return append(list, p)
}

// readBlob reads a staged blob; by names what refers to it, for the error
// when the archive lacks it.
func (a *archive) readBlob(h v1.Hash, size int64, by string) ([]byte, error) {
	m, err := a.blob(h, size)
	if err != nil {
		return nil, missing(by, err)
	}
	return os.ReadFile(m.staged)
}

func missing(by string, err error) error {
	if errors.Is(err, errMissingMember) {
		return fmt.Errorf("corrupt archive: %s names a file the archive lacks (%s)", by, strings.TrimPrefix(err.Error(), errMissingMember.Error()+": "))
	}
	return err
}

func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// staging is one load's or import's input: r decompressed (plain, gzip or
// zstd, detected) and the archive its files are staged in.
type staging struct {
	s     *Store
	a     *archive
	dr    io.ReadCloser
	in    *countingReader // counts r's (compressed) bytes for progress
	rep   *reporter
	total int64
}

// openStaging starts staging r; reads fail once ctx is done. Until it is
// closed it holds the store's GC read lock, so no prune runs while the
// staged blobs are committed. The caller closes it.
func (s *Store) openStaging(ctx context.Context, r io.Reader, progress ProgressFunc, total int64) (*staging, error) {
	s.gc.RLock()
	a, err := newArchive(s.blobs.tmp)
	if err != nil {
		s.gc.RUnlock()
		return nil, err
	}
	in := &countingReader{r: ctxReader{ctx, r}}
	dr, _, err := decompressor(in, s.MaxExpansion)
	if err != nil {
		a.close()
		s.gc.RUnlock()
		return nil, tarError(err)
	}
	return &staging{s: s, a: a, dr: dr, in: in, rep: newReporter(progress), total: total}, nil
}

// progress reports how much of the input has been read.
func (st *staging) progress() {
	st.rep.emit(Event{Status: StatusLoading, Current: st.in.n, Total: st.total})
}

func (st *staging) close() {
	st.dr.Close()
	st.a.close()
	st.s.gc.RUnlock()
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ImportOptions tune Import.
type ImportOptions struct {
	Platform *v1.Platform // default DefaultPlatform
	Progress ProgressFunc
	Total    int64
}

// Import makes a one-layer image named tag from a root filesystem tar
// (plain, gzip or zstd), like `docker import`.
func (s *Store) Import(ctx context.Context, r io.Reader, tag string, opts ImportOptions) (*Record, error) {
	t, err := ParseTag(tag)
	if err != nil {
		return nil, err
	}
	plat := DefaultPlatform()
	if opts.Platform != nil {
		plat = *opts.Platform
	}
	st, err := s.openStaging(ctx, r, opts.Progress, opts.Total)
	if err != nil {
		return nil, err
	}
	defer st.close()
	a, dr := st.a, st.dr

	// Stage the stream as the layer while walking it as a tar, so a file
	// that is not a tar (or is damaged) is refused.
	pr, pw := io.Pipe()
	staged := make(chan error, 1)
	var layer *member
	go func() {
		var err error
		layer, err = a.stageStream(pr)
		pr.CloseWithError(err)
		staged <- err
	}()
	walkErr := walkRootfs(io.TeeReader(dr, pw), st.progress)
	if walkErr == nil {
		_, walkErr = io.Copy(pw, dr) // the tar's trailing padding
	}
	pw.CloseWithError(walkErr)
	if err := <-staged; err != nil && walkErr == nil {
		walkErr = err
	}
	if walkErr != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("import interrupted: %w", ctx.Err())
		}
		return nil, walkErr
	}

	now := time.Now().UTC()
	cf := &v1.ConfigFile{
		Architecture: plat.Architecture, OS: plat.OS, Variant: plat.Variant,
		Created: v1.Time{Time: now},
		RootFS:  v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{layer.digest}},
		Config:  v1.Config{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		History: []v1.History{{Created: v1.Time{Time: now}, CreatedBy: "berth import", Comment: "imported from a root filesystem tar"}},
	}
	cfgRaw, err := json.Marshal(cf)
	if err != nil {
		return nil, err
	}
	mf := &v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: sha256Hash(cfgRaw), Size: int64(len(cfgRaw))},
		Layers:        []v1.Descriptor{{MediaType: types.OCIUncompressedLayer, Digest: layer.digest, Size: layer.size}},
	}
	mraw, err := json.Marshal(mf)
	if err != nil {
		return nil, err
	}
	p := &pending{manifest: mraw, config: cfgRaw, blobs: map[v1.Hash]*member{layer.digest: layer}, tags: []string{canonical(t)}}
	p.rec = newRecord(sha256Hash(mraw), mf, cf, int64(len(mraw)))
	p.rec.Source = "import"
	imgs, err := s.commitPending([]*pending{p})
	if err != nil {
		return nil, err
	}
	return &imgs[0].Record, nil
}

// walkRootfs reads a root filesystem tar to its end, refusing what is not
// a tar, paths that climb out with "..", and image archives (load those).
func walkRootfs(r io.Reader, progress func()) error {
	tr := tar.NewReader(r)
	n := 0
	top := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if n == 0 && !errors.Is(err, ErrBomb) {
				return errors.New("not a tar archive (nor gzip/zstd-compressed tar): cannot import it")
			}
			return tarError(err)
		}
		n++
		for _, part := range strings.Split(h.Name, "/") {
			if part == ".." {
				return fmt.Errorf("root filesystem tar entry %q contains \"..\"; refusing it", h.Name)
			}
		}
		top[strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")] = true
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return tarError(err)
		}
		if n%64 == 0 {
			progress()
		}
	}
	if n == 0 {
		return errors.New("empty tar: nothing to import")
	}
	if top["manifest.json"] || top["index.json"] && top["oci-layout"] {
		return errors.New("this is an image archive, not a root filesystem: use `berth load -i FILE`")
	}
	return nil
}
