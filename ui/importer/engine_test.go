package importer

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/app/api"
	"github.com/berth-dev/berth/app/engine"
	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/ui/importer/importtest"
)

// startEngine runs the app's in-process engine (app/engine + app/api, as
// ui/shell's tests do; no VM is booted for images) and returns a Docker
// API client on its socket.
func startEngine(t *testing.T) *client.Client {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-imp-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root, err := dataroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	eng, err := engine.Open(ctx, engine.Options{Root: root, GuestDir: filepath.Join(dir, "no-guest"),
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(api.Options{Version: "test", Backend: api.Backend{
		Images: &api.ImageStore{Store: eng.Images, Publish: eng.Events.Publish}, Containers: eng.Containers,
		Events: eng.Events, DataRoot: root.Dir}})
	ln, err := api.ListenUnix(root.Socket())
	if err != nil {
		eng.Close(ctx)
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(ctx); eng.Close(ctx) })
	cli, err := client.New(client.WithHost("unix://"+root.Socket()), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Every accepted kind goes through the engine's Docker API and ends up as a
// named image; refused files get the store's exact reason.
func testEngine(t *testing.T, f importtest.Files) {
	cli := startEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	names := map[string]string{"rootfs.tar": "dropped/rootfs:plain", "rootfs.tar.gz": "dropped/rootfs:gz", "rootfs.tar.zst": "dropped/rootfs:zst"}
	var results []Result
	for _, file := range []string{"docker.tar", "oci.tar", "docker.tar.gz", "oci.tgz", "oci.tar.zst", "docker.tar.zst", "layout",
		"rootfs.tar", "rootfs.tar.gz", "rootfs.tar.zst"} {
		it, err := Classify(f[file])
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		req, err := NewRequest(it, names[file])
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var calls, last atomic.Int64
		loaded, err := Import(ctx, cli, req, func(done, total int64) {
			calls.Add(1)
			last.Store(done)
			if total != it.Size {
				t.Errorf("%s: progress total %d, size %d", file, total, it.Size)
			}
		})
		if err != nil {
			t.Fatalf("%s (%s): %v", file, it.Describe(), err)
		}
		want := Ref
		if n := names[file]; n != "" {
			want = n
		}
		if !slices.Contains(loaded, want) {
			t.Errorf("%s: loaded %q, want %q", file, loaded, want)
		}
		if calls.Load() == 0 || last.Load() < it.Size {
			t.Errorf("%s: progress %d calls, last %d of %d", file, calls.Load(), last.Load(), it.Size)
		}
		ins, err := cli.ImageInspect(ctx, want)
		if err != nil {
			t.Fatalf("%s: %s not in the engine: %v", file, want, err)
		}
		if it.Kind == Rootfs && len(ins.RootFS.Layers) != 1 {
			t.Errorf("%s: %d layers", file, len(ins.RootFS.Layers))
		}
		results = append(results, Result{Path: f[file], Images: loaded})
	}

	// Files sent without classifying them: the alert keeps the store's
	// words. (These once broke the next request on the same connection:
	// see closeAfter in app/api.)
	for _, tc := range []struct {
		file string
		kind Kind
		name string
		want string
	}{
		{"random.bin", Archive, "", "corrupt archive: invalid tar header"},
		{"truncated.tar.gz", Archive, "", "truncated archive"},
		{"notes.txt", Archive, "", "truncated archive"},
		{"rootfs.tar", Archive, "", "not an image archive"},
		{"random.bin", Rootfs, "x:y", "not a tar"},
	} {
		it := Item{Path: f[tc.file], Kind: tc.kind, Format: "test"}
		_, err := Import(ctx, cli, Request{Item: it, Name: tc.name}, nil)
		if err == nil {
			t.Errorf("%s as %v: accepted", tc.file, tc.kind)
			continue
		}
		a := Refusal(it.Path, err)
		if a.Title != "Could not import "+tc.file || !strings.Contains(a.Detail, tc.want) || strings.HasPrefix(a.Detail, "Error response") {
			t.Errorf("%s as %v: alert %+v, want %q", tc.file, tc.kind, a, tc.want)
		}
		results = append(results, Result{Path: it.Path, Err: err})
	}
	t.Logf("store refusals: %v", results[len(results)-5:])

	// Cancel (the progress window's button) mid-upload: nothing is added.
	cctx, ccancel := context.WithCancel(ctx)
	it, _ := Classify(f["oci.tar"])
	_, err := Import(cctx, cli, Request{Item: it}, func(done, total int64) {
		if done > total/3 {
			ccancel()
		}
	})
	ccancel()
	if a := Refusal(it.Path, err); !errors.Is(err, context.Canceled) || a.Title != "Import of oci.tar cancelled" {
		t.Errorf("cancelled import: %v → %+v", err, a)
	}

	out := Summarize(results)
	if out.Notification == nil || out.Alert == nil {
		t.Fatalf("summary: %+v", out)
	}
	if n := out.Notification; n.Title != "Imported 10 images from 10 files" || n.Count != 10 {
		t.Errorf("notification %+v", n)
	}
	if a := out.Alert; a.Title != "Could not import 5 of 15 files" || strings.Count(a.Detail, "\n") != 4 {
		t.Errorf("alert %+v", a)
	}
}

func testPlan(t *testing.T, f importtest.Files) {
	paths := []string{f["docker.tar"], f["random.bin"], f["layout"], f["docker.tar"], f["empty.tar"], f["rootfs.tar.gz"]}
	acc, ref := Plan(paths)
	if len(acc) != 3 || acc[0].Path != f["docker.tar"] || acc[1].Kind != Layout || !acc[2].NeedsName() {
		t.Errorf("accepted %+v", acc)
	}
	if len(ref) != 2 || ref[0].Path != f["random.bin"] || ref[1].Err.Error() != reasonEmptyFile {
		t.Errorf("refused %+v", ref)
	}
	// One file each way: the per-file notification and alert.
	out := Summarize([]Result{{Path: f["oci.tar"], Images: []string{Ref}}, {Path: f["random.bin"], Err: errors.New(reasonNotArchive)}})
	if out.Notification.Title != "Imported 1 image from oci.tar" || out.Notification.Body != Ref {
		t.Errorf("notification %+v", out.Notification)
	}
	if out.Alert.Title != "Could not import random.bin" || out.Alert.Detail != reasonNotArchive {
		t.Errorf("alert %+v", out.Alert)
	}
	if out := Summarize(nil); out.Notification != nil || out.Alert != nil {
		t.Errorf("empty drop: %+v", out)
	}
	p := Progress{File: "/a/b.tar", Index: 2, Of: 3, Done: 12e6, Total: 40e6}
	if p.Text() != "Importing b.tar (2 of 3)… 12.0 MB of 40.0 MB" || p.Fraction() != 0.3 {
		t.Errorf("progress %q %v", p.Text(), p.Fraction())
	}
}

const Ref = importtest.Ref
