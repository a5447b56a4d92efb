package container

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/state"
)

// oneImage resolves only its manifest digest, like an image store holding
// one image.
type oneImage struct {
	img    v1.Image
	digest string
}

func (o oneImage) Resolve(ctx context.Context, ref string, p v1.Platform) (v1.Image, string, error) {
	if ref != o.digest && ref != "other:tag" {
		return nil, "", errf(ErrNotFound, "no such image: %s", ref)
	}
	return o.img, o.digest, nil
}

// Records written before ImageConfigID existed keep their meaning
// (ImageID = manifest digest, for snapshots and InUse) and show Docker's
// image ID (the config digest) after Restore; one whose image is gone
// keeps showing the manifest digest. ps and the ancestor filter agree.
func TestImageIDIsConfigDigestAndOldRecordsMigrate(t *testing.T) {
	root, _ := dataroot.Open(t.TempDir())
	db, err := state.Open(root.StateDB())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := img.Digest()
	configID, _ := img.ConfigName()
	gone := "sha256:" + fmt.Sprintf("%064x", 7)
	cfg := Config{DB: db, Root: root, Images: oneImage{img, manifest.String()}}
	m, _ := New(cfg)
	for name, digest := range map[string]string{"old": manifest.String(), "orphan": gone} {
		// As an older Berth wrote it: no imageConfigId.
		r := &record{ID: newID(), Name: name, Created: time.Now(), State: container.StateCreated,
			Config: container.Config{Image: "busybox"}, ImageID: digest, Arch: "amd64"}
		if err := m.put(r); err != nil {
			t.Fatal(err)
		}
	}
	m, _ = New(cfg)
	if err := m.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ins, _ := m.Inspect(ctx, "old"); ins.Image != configID.String() {
		t.Errorf("migrated record shows Image %q, want the config digest %s", ins.Image, configID)
	}
	if ins, _ := m.Inspect(ctx, "orphan"); ins.Image != gone {
		t.Errorf("record of a removed image shows %q, want the manifest digest", ins.Image)
	}
	if !m.ImageInUse(manifest.String()) || m.ImageInUse(configID.String()) {
		t.Error("ImageInUse must keep answering for the manifest digest")
	}
	// The migration was written: a new engine sees it without the store.
	m2, _ := New(Config{DB: db, Root: root})
	list, err := m2.List(ctx, ListOptions{All: true, Filters: map[string][]string{"name": {"old"}}})
	if err != nil || len(list) != 1 || list[0].ImageID != configID.String() {
		t.Fatalf("ps after reopen: %+v %v", list, err)
	}
	// With the image store: any name of the image matches (resolved to its ID).
	m3, _ := New(Config{DB: db, Root: root, Images: oneImage{img, manifest.String()}, Arch: "amd64"})
	if list, _ := m3.List(ctx, ListOptions{All: true, Filters: map[string][]string{"ancestor": {"other:tag"}}}); len(list) != 1 || list[0].Names[0] != "/old" {
		t.Errorf("ancestor=other:tag (another name of the image): %+v", list)
	}
	if list, _ := m2.List(ctx, ListOptions{All: true, Filters: map[string][]string{"ancestor": {"other:tag"}}}); len(list) != 0 {
		t.Errorf("ancestor=other:tag matched without the image store: %+v", list)
	}
	for _, anc := range []string{configID.String(), configID.Hex[:12], "busybox:latest", manifest.String()} {
		list, _ := m2.List(ctx, ListOptions{All: true, Filters: map[string][]string{"ancestor": {anc}, "name": {"old"}}})
		if len(list) != 1 {
			t.Errorf("ancestor=%s: %d containers", anc, len(list))
		}
	}
	other := "1111"
	if configID.Hex[:4] == other {
		other = "2222"
	}
	for _, anc := range []string{other, "bus", "sha256:"} {
		list, _ := m2.List(ctx, ListOptions{All: true, Filters: map[string][]string{"ancestor": {anc}, "name": {"old"}}})
		if len(list) != 0 {
			t.Errorf("ancestor=%s matched", anc)
		}
	}
}
