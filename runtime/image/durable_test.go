package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-dev/berth/internal/testimage"
	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/state"
)

// journal lists the unsynced-journal entries as "<digest> <boot ID>".
func journal(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUnsynced).ForEach(func(k, v []byte) error {
			d, _, _ := strings.Cut(string(k), " ")
			out = append(out, d+" "+string(v))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// reopen closes s's database (as a crash would leave it: no Sync) and
// opens the store again on the same data root.
func reopen(t *testing.T, s *Store, root dataroot.Root) *Store {
	t.Helper()
	s.db.Close()
	db, err := state.Open(root.StateDB())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s2, err := New(db, root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s2.Sync)
	return s2
}

// setBootID pretends the kernel is the one named id (not parallel: bootID
// is package state read by New and Pull).
func setBootID(t *testing.T, id string) {
	old := bootID
	bootID = func() string { return id }
	t.Cleanup(func() { bootID = old })
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// TestPullJournalClearedAfterSync: a finished pull leaves no journal entry
// behind once its background syncs are done, and its blobs are intact.
func TestPullJournalClearedAfterSync(t *testing.T) {
	t.Parallel()
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	ref := reg.Push(t, mustImage(testimage.BusyboxImage("")), "busybox:durable")
	s, _ := newStore(t)
	rec, err := s.Pull(context.Background(), ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Sync()
	if j := journal(t, s); len(j) != 0 {
		t.Errorf("journal after Sync: %v", j)
	}
	for _, d := range append(layerDigestsOf(rec), rec.Config, rec.Digest) {
		if got := fileDigest(t, s.blobs.path(d)); got != d.String() {
			t.Errorf("blob %s hashes to %s", d, got)
		}
	}
}

func layerDigestsOf(rec *Record) []v1.Hash {
	var out []v1.Hash
	for _, l := range rec.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// TestPullCrashBeforeSync simulates a power cut after a pull renamed its
// blobs into place but before they reached the disk: one layer comes back
// short, one zeroed. Reopening the store (after a "reboot": another boot
// ID) must find both through the journal and delete them before anything
// can read them; the image then reports the missing blob, and pulling
// again fetches exactly those two and yields a complete, verified image.
func TestPullCrashBeforeSync(t *testing.T) {
	setBootID(t, "boot-1")
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	ref := reg.Push(t, mustImage(testimage.BusyboxImage("")), "busybox:crash")
	s, root := newStore(t)
	s.crashBeforeSync = true
	rec, err := s.Pull(context.Background(), ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j := journal(t, s)
	if len(j) != 4 { // two layers, config, manifest
		t.Fatalf("journal during the pull: %v, want 4 entries", j)
	}
	for _, e := range j {
		if !strings.HasSuffix(e, " boot-1") {
			t.Errorf("journal entry %q lacks the boot ID", e)
		}
	}
	short := s.blobs.path(rec.Layers[0].Digest)
	zeroed := s.blobs.path(rec.Layers[1].Digest)
	fi, err := os.Stat(zeroed)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(short, rec.Layers[0].Size/2); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(zeroed, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(zeroed, make([]byte, fi.Size()), 0o444); err != nil {
		t.Fatal(err)
	}

	setBootID(t, "boot-2")
	s2 := reopen(t, s, root)
	for _, p := range []string{short, zeroed} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("damaged blob %s survived reopening: %v", p, err)
		}
	}
	for _, d := range []v1.Hash{rec.Config, rec.Digest} {
		if got := fileDigest(t, s2.blobs.path(d)); got != d.String() {
			t.Errorf("intact blob %s was lost or changed: %s", d, got)
		}
	}
	if j := journal(t, s2); len(j) != 0 {
		t.Errorf("journal after recovery: %v", j)
	}
	img, _, err := s2.Resolve(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ls[0].Compressed(); err == nil || !strings.Contains(err.Error(), "pull or load the image again") {
		t.Errorf("reading a deleted blob: %v", err)
	}

	var mu sync.Mutex
	fetched := map[string]bool{}
	if _, err := s2.Pull(context.Background(), ref, PullOptions{Progress: func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Status == StatusDownloadComplete {
			fetched[e.ID] = true
		}
	}}); err != nil {
		t.Fatal(err)
	}
	if len(fetched) != 2 {
		t.Errorf("second pull fetched %v, want both damaged layers", fetched)
	}
	s2.Sync()
	for _, l := range rec.Layers {
		if got := fileDigest(t, s2.blobs.path(l.Digest)); got != l.Digest.String() {
			t.Errorf("layer %s hashes to %s after the second pull", l.Digest, got)
		}
	}
	img, _, err = s2.Resolve(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkBusybox(t, img)
	if j := journal(t, s2); len(j) != 0 {
		t.Errorf("journal after the second pull: %v", j)
	}
}

// TestPullProcessCrashSameBoot: when only the process died (same boot ID)
// the page cache still holds the data, so reopening syncs the listed
// blobs (no re-hash) and clears the journal.
func TestPullProcessCrashSameBoot(t *testing.T) {
	setBootID(t, "boot-1")
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	ref := reg.Push(t, mustImage(testimage.BusyboxImage("")), "busybox:crash2")
	s, root := newStore(t)
	s.crashBeforeSync = true
	if _, err := s.Pull(context.Background(), ref, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if j := journal(t, s); len(j) != 4 {
		t.Fatalf("journal: %v", j)
	}
	s2 := reopen(t, s, root)
	s2.Sync()
	if j := journal(t, s2); len(j) != 0 {
		t.Errorf("journal after reopening and Sync: %v", j)
	}
	img, _, err := s2.Resolve(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkBusybox(t, img)
}

// TestRecoverUnknownBootAndBadEntries: an entry without a boot ID (a
// platform that has none) is verified like one from another boot, and a
// garbage key is dropped without failing New.
func TestRecoverUnknownBootAndBadEntries(t *testing.T) {
	s, root := newStore(t)
	good, err := s.blobs.putBytes([]byte(`{"hello":"world"}`))
	if err != nil {
		t.Fatal(err)
	}
	bad, err := s.blobs.putBytes([]byte(`{"will be":"damaged"}`))
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(s.blobs.path(bad), 0o644)
	if err := os.WriteFile(s.blobs.path(bad), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUnsynced)
		b.Put([]byte(good.String()+" t1"), nil)
		b.Put([]byte(bad.String()+" t1"), nil)
		b.Put([]byte("sha256:../../etc t2"), []byte("x"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s2 := reopen(t, s, root)
	if !s2.blobs.has(good) {
		t.Error("intact blob removed")
	}
	if s2.blobs.has(bad) {
		t.Error("damaged blob kept")
	}
	if j := journal(t, s2); len(j) != 0 {
		t.Errorf("journal after recovery: %v", j)
	}
}

// TestBootID: on Linux the journal's boot ID is the kernel's, so a process
// crash (same boot) is told apart from a reboot.
func TestBootID(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "linux" && len(readBootID()) < 32 {
		t.Fatalf("boot ID %q: /proc/sys/kernel/random/boot_id unreadable", readBootID())
	}
}

// TestImportCrashBeforeSync: load and import use the same journal; a blob
// zeroed by a power cut after the import is deleted on reopen, and
// importing again restores it.
func TestImportCrashBeforeSync(t *testing.T) {
	setBootID(t, "boot-1")
	s, root := newStore(t)
	s.crashBeforeSync = true
	rootfs := tarOf([2]string{"etc/os-release", "ID=berth\n"})
	rec, err := s.Import(context.Background(), strings.NewReader(string(rootfs)), "my/rootfs:1", ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if j := journal(t, s); len(j) != 3 { // layer, config, manifest
		t.Fatalf("journal: %v", j)
	}
	layer := s.blobs.path(rec.Layers[0].Digest)
	os.Chmod(layer, 0o644)
	if err := os.WriteFile(layer, make([]byte, len(rootfs)), 0o444); err != nil {
		t.Fatal(err)
	}
	setBootID(t, "boot-2")
	s2 := reopen(t, s, root)
	if s2.blobs.has(rec.Layers[0].Digest) {
		t.Fatal("zeroed layer kept")
	}
	if !s2.blobs.has(rec.Config) || !s2.blobs.has(rec.Digest) {
		t.Fatal("intact config or manifest removed")
	}
	if _, err := s2.Import(context.Background(), strings.NewReader(string(rootfs)), "my/rootfs:1", ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	s2.Sync()
	if got := fileDigest(t, layer); got != rec.Layers[0].Digest.String() {
		t.Errorf("re-imported layer hashes to %s", got)
	}
	if j := journal(t, s2); len(j) != 0 {
		t.Errorf("journal after Sync: %v", j)
	}
}
