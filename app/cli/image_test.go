package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testimage"
	"github.com/berth-dev/berth/runtime/image"
)

// TestImageCommands drives the image CLI end to end against a real
// registry with htpasswd auth: pull (credentials from a temp
// DOCKER_CONFIG), images, inspect, tag, save, rmi, load, import, prune.
func TestImageCommands(t *testing.T) {
	// Not parallel: DOCKER_CONFIG is process-wide.
	reg := testimage.Registry(t, testimage.RegistryOptions{Username: "cli", Password: "cli-pw"})
	img, err := testimage.BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, img, "tools/busybox:1.0")
	dr := filepath.Join(t.TempDir(), "data")
	berth := func(args ...string) (string, error) {
		t.Helper()
		out, _, err := runCLI(t, append([]string{"--data-root", dr}, args...)...)
		return out, err
	}

	t.Setenv("DOCKER_CONFIG", reg.DockerConfig(t, "cli", "wrong"))
	if _, err := berth("pull", ref); err == nil || !strings.Contains(err.Error(), "refused access") {
		t.Fatalf("pull with a wrong password: %v", err)
	}
	t.Setenv("DOCKER_CONFIG", reg.DockerConfig(t, "cli", "cli-pw"))
	out, err := berth("pull", ref)
	if err != nil {
		t.Fatal(err)
	}
	// Not a terminal: plain lines, one per layer state change.
	if strings.Count(out, ": Download complete\n") != 2 || strings.Contains(out, "\x1b[") || !strings.Contains(out, "Pulled "+ref) {
		t.Fatalf("pull output:\n%s", out)
	}

	out, err = berth("images")
	if err != nil || !strings.Contains(out, reg.Addr+"/tools/busybox") || !strings.Contains(out, "1.0") {
		t.Fatalf("images: %v\n%s", err, out)
	}
	out, err = berth("image", "inspect", ref)
	if err != nil {
		t.Fatal(err)
	}
	var details []image.Details
	if err := json.Unmarshal([]byte(out), &details); err != nil || len(details) != 1 {
		t.Fatalf("inspect output: %v\n%s", err, out)
	}
	d := details[0]
	if len(d.Layers) != 2 || d.Platform.OS != "linux" || d.ConfigFile.Config.Cmd[0] != "sh" || d.Size <= 0 {
		t.Fatalf("inspect: %+v", d)
	}

	// The pulled image, read back from the store, has the whiteout.
	checkWhiteout(t, dr, ref)

	if _, err := berth("tag", ref, "mybox:latest"); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "box.tar")
	if _, err := berth("save", "--format", "oci", "-o", archive, "mybox"); err != nil {
		t.Fatal(err)
	}
	out, err = berth("rmi", ref, "mybox")
	if err != nil || !strings.Contains(out, "Untagged: mybox:latest") || !strings.Contains(out, "Deleted: ") {
		t.Fatalf("rmi: %v\n%s", err, out)
	}
	if out, _ := berth("images", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("images after rmi: %q", out)
	}
	out, err = berth("load", "-i", archive)
	if err != nil || !strings.Contains(out, "Loaded image: mybox:latest") {
		t.Fatalf("load: %v\n%s", err, out)
	}

	// Bad input: one line, non-zero, store unchanged.
	before, _ := berth("images", "--digests")
	bad := filepath.Join(t.TempDir(), "bad.tar")
	raw, _ := os.ReadFile(archive)
	os.WriteFile(bad, raw[:len(raw)/3], 0o644)
	for _, args := range [][]string{
		{"load", "-i", bad},
		{"pull", "Not//A/Ref"},
		{"save", "-o", filepath.Join(t.TempDir(), "x.tar"), "nosuch:1"},
		{"rmi", "nosuch:1"},
		{"import", bad + ".missing", "x:1"},
	} {
		_, err := berth(args...)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("berth %v: %v (want a one-line error)", args, err)
		}
	}
	if after, _ := berth("images", "--digests"); after != before {
		t.Fatalf("bad input changed the store:\n%s\n---\n%s", before, after)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(archive), "x.tar")); err == nil {
		t.Error("a failed save left a file")
	}

	// import a root filesystem tar.
	var rootfs bytes.Buffer
	tw := tar.NewWriter(&rootfs)
	tw.WriteHeader(&tar.Header{Name: "etc/motd", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi\n"))
	tw.Close()
	rf := filepath.Join(t.TempDir(), "rootfs.tar")
	os.WriteFile(rf, rootfs.Bytes(), 0o644)
	if out, err := berth("import", rf, "imported:1"); err != nil || !strings.HasPrefix(out, "sha256:") {
		t.Fatalf("import: %v %s", err, out)
	}
	if out, err := berth("image", "prune", "-a"); err != nil || strings.Count(out, "Deleted:") != 2 {
		t.Fatalf("prune -a: %v\n%s", err, out)
	}
	if out, _ := berth("images", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("images after prune -a: %q", out)
	}
}

func checkWhiteout(t *testing.T, dr, ref string) {
	t.Helper()
	s, closeStore := openImageStore(t, dr)
	defer closeStore()
	img, _, err := s.Resolve(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	rc, err := layers[1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	found := false
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		found = found || h.Name == "etc/.wh.motd"
	}
	if !found {
		t.Fatal("the pulled upper layer lacks its whiteout")
	}
}

func TestProgressViewTerminal(t *testing.T) {
	var buf bytes.Buffer
	v := NewProgressView(&buf, true)
	v.Handle(image.Event{ID: "aaaaaaaaaaaa", Status: image.StatusWaiting, Total: 100})
	v.Handle(image.Event{ID: "bbbbbbbbbbbb", Status: image.StatusExists})
	v.Handle(image.Event{ID: "aaaaaaaaaaaa", Status: image.StatusDownloading, Current: 50, Total: 100})
	v.Finish()
	s := buf.String()
	// Redraws move the cursor up over the two layer lines.
	if !strings.Contains(s, "\x1b[2A") || !strings.Contains(s, "[=") || !strings.Contains(s, "50B/100B") {
		t.Fatalf("terminal progress: %q", s)
	}
}

// TestSaveToStdoutLoadFromStdin pipes `berth save` into `berth load`
// between two data roots, as `docker save | docker load` is used.
func TestSaveToStdoutLoadFromStdin(t *testing.T) {
	t.Parallel()
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	var rootfs bytes.Buffer
	tw := tar.NewWriter(&rootfs)
	tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi"))
	tw.Close()
	run := func(dr string, stdin []byte, args ...string) string {
		t.Helper()
		root := NewRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetIn(bytes.NewReader(stdin))
		root.SetArgs(append([]string{"--data-root", dr}, args...))
		if err := root.Execute(); err != nil {
			t.Fatalf("berth %v: %v", args, err)
		}
		return out.String()
	}
	run(a, rootfs.Bytes(), "import", "-", "piped/rootfs:v1")
	for _, format := range []string{"docker", "oci"} {
		archive := run(a, nil, "save", "--format", format, "piped/rootfs:v1")
		out := run(b, []byte(archive), "load")
		if !strings.Contains(out, "Loaded image: piped/rootfs:v1") {
			t.Fatalf("%s: load said %q", format, out)
		}
		run(b, nil, "rmi", "piped/rootfs:v1")
	}
}
