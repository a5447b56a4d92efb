package shell

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/ui/importer"
	"github.com/berth-dev/berth/ui/importer/importtest"
)

// A drop of every kind of file, as the app handles it: plan (classify),
// name the root filesystem tar, import through the in-process engine's
// Docker API with progress, then one notification and one alert. No VM
// boots: images need none.
func TestControllerImportDrop(t *testing.T) {
	f := importtest.Make(t)
	dir, err := os.MkdirTemp("", "berth-ui-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root, err := dataroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	eng := &realEngine{root: root, guest: dir}
	c := New(eng, &recordingView{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Cleanup(func() { eng.Shutdown(context.Background()) })
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Quit(context.Background(), nil) }) // closes the event stream, then the engine

	drop := []string{f["oci.tar.zst"], f["layout"], f["random.bin"], f["rootfs.tar.gz"], f["empty.tar"], f["docker.tar.gz"]}
	accepted, refused := importer.Plan(drop)
	if len(accepted) != 4 || len(refused) != 2 {
		t.Fatalf("plan: %d accepted, %d refused", len(accepted), len(refused))
	}
	var reqs []importer.Request
	for _, it := range accepted {
		name := ""
		if it.NeedsName() {
			name = importer.SuggestName(it.Path) // what the name prompt offers
		}
		req, err := importer.NewRequest(it, name)
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, req)
	}
	var mu sync.Mutex
	seen := map[int]importer.Progress{}
	results := c.ImportAll(ctx, reqs, func(p importer.Progress) {
		mu.Lock()
		seen[p.Index] = p
		mu.Unlock()
	})
	for i, r := range results {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Path, r.Err)
		}
		if p := seen[i+1]; p.Of != 4 || p.Fraction() != 1 {
			t.Errorf("%s: last progress %+v", r.Path, p)
		}
	}
	out := importer.Summarize(append(results, refused...))
	if out.Notification == nil || out.Notification.Title != "Imported 4 images from 4 files" ||
		!strings.Contains(out.Notification.Body, "rootfs:latest") || !strings.Contains(out.Notification.Body, importtest.Ref) {
		t.Errorf("notification %+v", out.Notification)
	}
	if out.Alert == nil || out.Alert.Title != "Could not import 2 of 6 files" ||
		!strings.Contains(out.Alert.Detail, "random.bin: not an image archive: no manifest.json, index.json or oci-layout, and not a tar") ||
		!strings.Contains(out.Alert.Detail, "empty.tar: empty file") {
		t.Errorf("alert %+v", out.Alert)
	}
	// The Images window's rows come from the refreshed snapshot.
	var refs []string
	for _, im := range c.Snap.Images() {
		refs = append(refs, im.RepoTags...)
	}
	if !slices.Contains(refs, "rootfs:latest") || !slices.Contains(refs, importtest.Ref) {
		t.Errorf("snapshot images: %q", refs)
	}
}
