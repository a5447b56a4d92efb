package image

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berth-dev/berth/internal/testimage"
)

// flakyRegistry fronts a real registry and cuts every blob download once,
// part-way through its body, as a dropped connection would. Requests that
// resume with a Range header pass through; it counts them.
type flakyRegistry struct {
	*httptest.Server
	mu      sync.Mutex
	cut     map[string]bool
	resumed []string // Range headers seen
}

func newFlakyRegistry(t *testing.T, upstream string, cutAfter int64, ignoreRange bool) *flakyRegistry {
	f := &flakyRegistry{cut: map[string]bool{}}
	target, _ := url.Parse("http://" + upstream)
	proxy := httputil.NewSingleHostReverseProxy(target)
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
			proxy.ServeHTTP(w, r)
			return
		}
		f.mu.Lock()
		first := !f.cut[r.URL.Path]
		f.cut[r.URL.Path] = true
		if rg := r.Header.Get("Range"); rg != "" {
			f.resumed = append(f.resumed, rg)
			if ignoreRange {
				r.Header.Del("Range") // a server that always sends everything
			}
		}
		f.mu.Unlock()
		if !first || r.Header.Get("Range") != "" {
			proxy.ServeHTTP(w, r)
			return
		}
		resp, err := http.Get(target.String() + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.CopyN(w, resp.Body, cutAfter)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}))
	t.Cleanup(f.Close)
	return f
}

// flakySetup pushes the busybox test image to a real registry behind a
// flaky front (cuts each blob at 100 KiB once) and returns the image, the
// front, an empty store and the reference to pull through the front.
func flakySetup(t *testing.T, ignoreRange bool) (v1.Image, *flakyRegistry, *Store, string) {
	t.Helper()
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	img, err := testimage.BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, img, "busybox:1")
	flaky := newFlakyRegistry(t, reg.Addr, 100<<10, ignoreRange)
	s, _ := newStore(t)
	return img, flaky, s, strings.TrimPrefix(flaky.URL, "http://") + "/busybox:1"
}

func TestPullResumesDroppedDownloads(t *testing.T) {
	t.Parallel()
	img, flaky, s, ref := flakySetup(t, false)
	rec, err := s.Pull(context.Background(), ref, PullOptions{})
	if err != nil {
		t.Fatalf("pull through a connection that drops once per blob: %v", err)
	}
	want, _ := img.Digest()
	if rec.Digest != want {
		t.Fatalf("stored %s, pushed %s", rec.Digest, want)
	}
	local, _, err := s.Resolve(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkBusybox(t, local)
	// The busybox layer (2 MB) was cut at 100 KiB and resumed from there
	// (the small layers fit before the cut).
	flaky.mu.Lock()
	defer flaky.mu.Unlock()
	if !strings.Contains(strings.Join(flaky.resumed, " "), "bytes=102400-") {
		t.Errorf("no download resumed at the cut (byte 102400): %v", flaky.resumed)
	}
}

// A registry that ignores Range cannot resume: the pull fails with a clear
// reason and leaves no image behind (complete layers stay for the next try).
func TestPullDroppedWithoutRangeSupport(t *testing.T) {
	t.Parallel()
	_, _, s, ref := flakySetup(t, true)
	_, err := s.Pull(context.Background(), ref, PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "cannot resume") {
		t.Fatalf("pull: %v (want the reason the download could not resume)", err)
	}
	if imgs, _ := s.List(); len(imgs) != 0 {
		t.Fatalf("images after a failed pull: %v", imgs)
	}
}
