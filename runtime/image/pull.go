package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// PullOptions tune Pull.
type PullOptions struct {
	// Platform selects from a multi-platform index; nil means DefaultPlatform.
	// When set explicitly, a single-platform image of another platform is refused.
	Platform *v1.Platform
	Progress ProgressFunc
	// Auth, when set, is used instead of the keychain: the credentials a
	// docker client sent with the request (X-Registry-Auth).
	Auth authn.Authenticator
}

// Pull fetches ref from its registry into the store and tags it (when ref
// is a tag). Layers already present are skipped, so a pull that was
// interrupted resumes where it stopped; layers download in parallel, each
// into a temp file that becomes visible only once verified.
func (s *Store) Pull(ctx context.Context, refStr string, opts PullOptions) (*Record, error) {
	ref, err := ParseRef(refStr)
	if err != nil {
		return nil, err
	}
	plat := DefaultPlatform()
	if opts.Platform != nil {
		plat = *opts.Platform
	}
	rep := newReporter(opts.Progress)
	s.gc.RLock()
	defer s.gc.RUnlock()

	ropts := []remote.Option{
		remote.WithContext(ctx),
		s.authOption(opts.Auth),
		remote.WithTransport(s.transport()),
		remote.WithPlatform(plat),
		remote.WithUserAgent("berth"),
		remote.WithRetryBackoff(remote.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Steps: 3}),
	}
	desc, err := remote.Get(ref, ropts...)
	if err != nil {
		return nil, registryError(ctx, ref, err)
	}
	var img v1.Image
	switch desc.MediaType {
	case types.OCIImageIndex, types.DockerManifestList:
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, registryError(ctx, ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, registryError(ctx, ref, err)
		}
		var pick *v1.Descriptor
		var avail []string
		for i, m := range im.Manifests {
			if m.Platform == nil {
				continue
			}
			avail = append(avail, m.Platform.String())
			if pick == nil && m.Platform.Satisfies(plat) && isImageManifest(m.MediaType) {
				pick = &im.Manifests[i]
			}
		}
		if pick == nil {
			return nil, fmt.Errorf("%s has no image for %s (it has: %s); choose one with --platform", ref, plat.String(), strings.Join(avail, ", "))
		}
		img, err = idx.Image(pick.Digest)
		if err != nil {
			return nil, registryError(ctx, ref, err)
		}
	case types.DockerManifestSchema2, types.OCIManifestSchema1:
		img, err = desc.Image()
		if err != nil {
			return nil, registryError(ctx, ref, err)
		}
	default:
		return nil, fmt.Errorf("%s: unsupported manifest media type %q (Berth reads OCI and Docker schema 2 images)", ref, desc.MediaType)
	}

	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, registryError(ctx, ref, err)
	}
	mf, err := v1.ParseManifest(strings.NewReader(string(rawManifest)))
	if err != nil {
		return nil, fmt.Errorf("%s: corrupt manifest: %s", ref, oneLine(err.Error()))
	}
	if err := checkManifest(mf); err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return nil, registryError(ctx, ref, err)
	}
	cf, err := checkConfig(rawConfig, mf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	if opts.Platform != nil && desc.MediaType != types.OCIImageIndex && desc.MediaType != types.DockerManifestList {
		if got := configPlatform(cf); !got.Satisfies(plat) {
			return nil, fmt.Errorf("%s is a %s image, not %s", ref, got.String(), plat.String())
		}
	}
	mdigest, err := img.Digest()
	if err != nil {
		return nil, registryError(ctx, ref, err)
	}

	// Layers, in parallel, skipping what is already here. Blobs are fetched
	// with plain GETs over one authenticated transport: the store verifies
	// digest and size itself, so go-containerregistry's second hash pass
	// over every byte is not needed.
	//
	// Blobs are published without waiting for fsync: the journal entry
	// made here covers them until their background syncs finish (durable.go).
	missing := s.blobs.absent(append(layerDigests(mf), mf.Config.Digest, mdigest))
	var pend *unsynced
	if len(missing) > 0 {
		if pend, err = s.beginUnsynced(missing); err != nil {
			return nil, err
		}
		defer pend.finish()
	}
	seen := map[v1.Hash]bool{}
	var fetches []v1.Descriptor
	for _, l := range mf.Layers {
		if seen[l.Digest] {
			continue
		}
		seen[l.Digest] = true
		id := shortID(l.Digest.Hex)
		if s.blobs.has(l.Digest) {
			rep.emit(Event{ID: id, Status: StatusExists})
			continue
		}
		rep.emit(Event{ID: id, Status: StatusWaiting, Total: l.Size})
		fetches = append(fetches, l)
	}
	// Largest first: the pull ends when its slowest layer does.
	sort.SliceStable(fetches, func(i, j int) bool { return fetches[i].Size > fetches[j].Size })
	var fetch *blobFetcher
	if len(fetches) > 0 {
		if fetch, err = s.newFetcher(ctx, ref.Context(), opts.Auth); err != nil {
			return nil, registryError(ctx, ref, err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.jobs())
	for _, l := range fetches {
		id := shortID(l.Digest.Hex)
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			rc, err := fetch.resuming(gctx, l.Digest, l.Size)
			if err != nil {
				return err
			}
			defer rc.Close()
			if _, err := s.blobs.putTo(rc, l.Digest, l.Size, rep.bytes(id, StatusDownloading, l.Size), pend); err != nil {
				return fmt.Errorf("layer %s: %w", id, err)
			}
			rep.emit(Event{ID: id, Status: StatusDownloadComplete, Current: l.Size, Total: l.Size})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, registryError(ctx, ref, err)
	}
	if _, err := s.blobs.putBytesTo(rawConfig, pend); err != nil {
		return nil, err
	}
	if _, err := s.blobs.putBytesTo(rawManifest, pend); err != nil {
		return nil, err
	}
	if s.syncBeforeCommit && pend != nil {
		if err := pend.sync(); err != nil {
			return nil, err
		}
	}
	rec := newRecord(mdigest, mf, cf, int64(len(rawManifest)))
	rec.Source = ref.String()
	rec.RepoDigests = []string{ref.Context().Name() + "@" + desc.Digest.String()}
	var refs []string
	if t, ok := ref.(name.Tag); ok {
		refs = []string{canonical(t)}
	}
	if err := s.addImage(rec, refs); err != nil {
		return nil, err
	}
	for l := range seen {
		rep.emit(Event{ID: shortID(l.Hex), Status: StatusPullComplete})
	}
	return rec, nil
}

func layerDigests(mf *v1.Manifest) []v1.Hash {
	var out []v1.Hash
	for _, l := range mf.Layers {
		out = append(out, l.Digest)
	}
	return out
}

func isImageManifest(mt types.MediaType) bool {
	return mt == types.OCIManifestSchema1 || mt == types.DockerManifestSchema2
}

// newRecord builds the record for a manifest whose blobs are all stored.
func newRecord(d v1.Hash, mf *v1.Manifest, cf *v1.ConfigFile, manifestSize int64) *Record {
	mt := mf.MediaType
	if mt == "" {
		mt = types.OCIManifestSchema1
	}
	rec := &Record{
		Digest:    d,
		MediaType: mt,
		Config:    mf.Config.Digest,
		Platform:  configPlatform(cf),
		Size:      manifestSize + mf.Config.Size,
		Created:   cf.Created.Time,
		Added:     time.Now().UTC(),
	}
	for i, l := range mf.Layers {
		rec.Layers = append(rec.Layers, LayerRecord{Digest: l.Digest, DiffID: cf.RootFS.DiffIDs[i], Size: l.Size, MediaType: l.MediaType})
		rec.Size += l.Size
	}
	return rec
}

func configPlatform(cf *v1.ConfigFile) v1.Platform {
	p := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion}
	if p.OS == "" {
		p.OS = "linux"
	}
	return p
}

// supported layer media types: tar, gzip'd tar, zstd'd tar (OCI and Docker names).
var layerTypes = map[types.MediaType]bool{
	types.OCILayer:                true,
	types.OCILayerZStd:            true,
	types.OCIUncompressedLayer:    true,
	types.DockerLayer:             true,
	types.DockerUncompressedLayer: true,
}

// checkManifest refuses manifests Berth cannot turn into a root filesystem.
func checkManifest(mf *v1.Manifest) error {
	if mf.SchemaVersion != 2 {
		return fmt.Errorf("unsupported manifest schema version %d (Berth reads schema 2)", mf.SchemaVersion)
	}
	switch mf.Config.MediaType {
	case types.OCIConfigJSON, types.DockerConfigJSON:
	default:
		return fmt.Errorf("unsupported config media type %q (not a container image?)", mf.Config.MediaType)
	}
	if err := checkDigest(mf.Config.Digest); err != nil {
		return err
	}
	for _, l := range mf.Layers {
		if !layerTypes[l.MediaType] {
			return fmt.Errorf("unsupported layer media type %q", l.MediaType)
		}
		if err := checkDigest(l.Digest); err != nil {
			return err
		}
		if l.Size < 0 {
			return fmt.Errorf("layer %s has a negative size", l.Digest)
		}
	}
	return nil
}

func checkDigest(d v1.Hash) error {
	if d.Algorithm != "sha256" || !validHex(d.Hex) {
		return fmt.Errorf("unsupported digest %q (only sha256 is supported)", d.String())
	}
	return nil
}

// checkConfig parses the config and checks it matches the manifest.
func checkConfig(raw []byte, mf *v1.Manifest) (*v1.ConfigFile, error) {
	d, _, err := v1.SHA256(strings.NewReader(string(raw)))
	if err != nil {
		return nil, err
	}
	if d != mf.Config.Digest {
		return nil, fmt.Errorf("digest mismatch: config hashes to %s, the manifest says %s", d, mf.Config.Digest)
	}
	cf, err := v1.ParseConfigFile(strings.NewReader(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("corrupt image config: %s", oneLine(err.Error()))
	}
	if len(cf.RootFS.DiffIDs) != len(mf.Layers) {
		return nil, fmt.Errorf("corrupt image: config lists %d layers, manifest %d", len(cf.RootFS.DiffIDs), len(mf.Layers))
	}
	for _, d := range cf.RootFS.DiffIDs {
		if err := checkDigest(d); err != nil {
			return nil, err
		}
	}
	return cf, nil
}

// blobFetcher downloads blobs of one repository.
type blobFetcher struct {
	client *http.Client
	repo   name.Repository
}

func (s *Store) newFetcher(ctx context.Context, repo name.Repository, auth authn.Authenticator) (*blobFetcher, error) {
	if auth == nil {
		var err error
		if auth, err = authn.Resolve(ctx, s.keychain(), repo); err != nil {
			return nil, err
		}
	}
	tr, err := transport.NewWithContext(ctx, repo.Registry, auth, s.transport(), []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	return &blobFetcher{client: &http.Client{Transport: tr}, repo: repo}, nil
}

// open requests blob d from byte offset on (a Range request when off > 0).
func (f *blobFetcher) open(ctx context.Context, d v1.Hash, off int64) (io.ReadCloser, error) {
	u := url.URL{Scheme: f.repo.Scheme(), Host: f.repo.RegistryStr(), Path: "/v2/" + f.repo.RepositoryStr() + "/blobs/" + d.String()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	want := http.StatusOK
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
		want = http.StatusPartialContent
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	if off > 0 && resp.StatusCode == http.StatusOK {
		resp.Body.Close()
		return nil, errors.New("the registry cannot resume a download (it ignored the Range request)")
	}
	if err := transport.CheckError(resp, want); err != nil {
		resp.Body.Close()
		return nil, err
	}
	if off > 0 && !strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", off)) {
		resp.Body.Close()
		return nil, fmt.Errorf("the registry resumed at the wrong place (Content-Range %q, wanted byte %d)", resp.Header.Get("Content-Range"), off)
	}
	return resp.Body, nil
}

// authOption is the client's credentials when it sent some, else the
// engine's keychain (~/.docker/config.json, credential helpers).
func (s *Store) authOption(auth authn.Authenticator) remote.Option {
	if auth != nil {
		return remote.WithAuth(auth)
	}
	return remote.WithAuthFromKeychain(s.keychain())
}

// maxResumes bounds how often one layer's download picks up again after
// its connection dropped.
const maxResumes = 5

// resuming returns blob d as one stream of size bytes that survives dropped
// connections: when the body ends early or fails, it asks the registry for
// the rest with a Range request and carries on, so a network hiccup late in
// a large layer costs the missing bytes, not the whole layer. The content is
// still verified against d by whoever reads it.
func (f *blobFetcher) resuming(ctx context.Context, d v1.Hash, size int64) (io.ReadCloser, error) {
	body, err := f.open(ctx, d, 0)
	if err != nil {
		return nil, err
	}
	return &resumingBody{ctx: ctx, f: f, d: d, size: size, body: body}, nil
}

type resumingBody struct {
	ctx     context.Context
	f       *blobFetcher
	d       v1.Hash
	size    int64
	off     int64
	body    io.ReadCloser
	resumes int
}

func (r *resumingBody) Read(p []byte) (int, error) {
	for {
		n, err := r.body.Read(p)
		r.off += int64(n)
		if err == nil || n > 0 {
			return n, nil // an error comes back on the next Read
		}
		// A clean EOF is the server ending its response as it announced:
		// short or not, that is what it has (commit reports a size
		// mismatch). Only a broken connection (ErrUnexpectedEOF, a reset)
		// is worth resuming.
		if err == io.EOF {
			return 0, io.EOF
		}
		if r.ctx.Err() != nil || r.size < 0 || r.resumes >= maxResumes {
			return 0, err
		}
		r.resumes++
		r.body.Close()
		body, rerr := r.f.open(r.ctx, r.d, r.off)
		if rerr != nil {
			r.body = io.NopCloser(strings.NewReader(""))
			return 0, fmt.Errorf("%v; resuming at byte %d: %w", err, r.off, rerr)
		}
		r.body = body
	}
}

func (r *resumingBody) Close() error { return r.body.Close() }

// transport speaks HTTPS to every registry that is not on loopback:
// go-containerregistry would use plain HTTP for private-range addresses
// (10.x, 192.168.x) too, sending credentials in the clear.
func (s *Store) transport() http.RoundTripper {
	base := s.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	return loopbackOnlyHTTP{base}
}

type loopbackOnlyHTTP struct{ base http.RoundTripper }

func (t loopbackOnlyHTTP) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !isLoopback(req.URL.Host) {
		req = req.Clone(req.Context())
		req.URL.Scheme = "https"
	}
	return t.base.RoundTrip(req)
}

// registryError turns go-containerregistry's errors into one line saying
// what went wrong and what to do.
func registryError(ctx context.Context, ref name.Reference, err error) error {
	return opError(ctx, "pull", ref, err)
}

// opError explains a failed registry operation (op: "pull", "push").
func opError(ctx context.Context, op string, ref name.Reference, err error) error {
	host := ref.Context().RegistryStr()
	if ctx.Err() != nil {
		return fmt.Errorf("%s of %s interrupted: %w", op, ref, ctx.Err())
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden:
			return &RegistryError{Kind: ErrDenied, msg: fmt.Sprintf("registry %s refused access to %s (HTTP %d): wrong or missing credentials; log in with `docker login %s` (Berth reads $DOCKER_CONFIG or ~/.docker/config.json)", host, ref.Context().RepositoryStr(), te.StatusCode, host)}
		case te.StatusCode == http.StatusNotFound || hasCode(te, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode):
			return &RegistryError{Kind: ErrNotOnRegistry, msg: fmt.Sprintf("%s not found on registry %s: check the name and tag", ref, host)}
		case hasCode(te, transport.BlobUnknownErrorCode):
			return fmt.Errorf("registry %s lacks a blob of %s (%s)", host, ref, oneLine(te.Error()))
		}
		return fmt.Errorf("registry %s: %s", host, oneLine(te.Error()))
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) {
		return &RegistryError{Kind: ErrUnreachable, msg: fmt.Sprintf("cannot reach registry %s: %s; check the name and that it is running", host, oneLine(rootCause(err).Error()))}
	}
	return fmt.Errorf("%s %s: %s", op, ref, oneLine(err.Error()))
}

// Kinds of registry failure, for errors.Is on what Pull returns.
var (
	ErrNotOnRegistry = errors.New("image not found on the registry")
	ErrDenied        = errors.New("registry denied access")
	ErrUnreachable   = errors.New("registry unreachable")
)

// RegistryError is a failed registry exchange: a one-line message for
// people and a Kind for code.
type RegistryError struct {
	Kind error
	msg  string
}

func (e *RegistryError) Error() string { return e.msg }
func (e *RegistryError) Unwrap() error { return e.Kind }

func hasCode(te *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range te.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}
