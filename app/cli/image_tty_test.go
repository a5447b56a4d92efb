package cli

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berth-dev/berth/internal/testimage"
)

// TestImageCLIHelper is not a test: TestPullProgressOnTerminal runs this
// test binary as `berth` inside tmux, and this function then acts as main.
func TestImageCLIHelper(t *testing.T) {
	if os.Getenv("BERTH_IMAGE_CLI_HELPER") != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(Main(args))
}

// TestPullProgressOnTerminal runs `berth pull` on a real terminal (tmux)
// and checks the screen: one line per layer, redrawn in place to its final
// state, not a scroll of updates.
func TestPullProgressOnTerminal(t *testing.T) {
	t.Parallel()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Fatal("tmux not found: install the Debian package tmux (packaging/setup-linux.sh)")
	}
	reg := testimage.Registry(t, testimage.RegistryOptions{})
	var layers []testimage.File
	big := make([]byte, 8<<20)
	rand.Read(big)
	layers = append(layers, testimage.File{Path: "big.bin", Data: big})
	l1, _ := testimage.Layer(layers)
	l2, _ := testimage.Layer([]testimage.File{{Path: "small.txt", Data: []byte("x")}})
	l3, _ := testimage.Layer([]testimage.File{{Path: "other.txt", Data: []byte("y")}})
	img, err := testimage.Image("amd64", nil, l1, l2, l3)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, img, "tty/pull:1")

	dir := t.TempDir()
	sock := filepath.Join(dir, "tmux.sock")
	done := filepath.Join(dir, "done")
	script := fmt.Sprintf("BERTH_IMAGE_CLI_HELPER=1 %q -test.run '^TestImageCLIHelper$' -- --data-root %q pull %q; echo \"exit=$?\" > %q; sleep 60",
		os.Args[0], filepath.Join(dir, "root"), ref, done)
	if out, err := exec.Command(tmux, "-S", sock, "new-session", "-d", "-x", "120", "-y", "30", "sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command(tmux, "-S", sock, "kill-server").Run() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(done); err == nil && strings.HasPrefix(string(b), "exit=") {
			if strings.TrimSpace(string(b)) != "exit=0" {
				screen, _ := exec.Command(tmux, "-S", sock, "capture-pane", "-p").Output()
				t.Fatalf("berth pull failed: %s\n%s", b, screen)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("berth pull did not finish in 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	screen, err := exec.Command(tmux, "-S", sock, "capture-pane", "-p").Output()
	if err != nil {
		t.Fatal(err)
	}
	s := string(screen)
	for _, l := range []string{digestOf(t, l1), digestOf(t, l2), digestOf(t, l3)} {
		if n := strings.Count(s, l[:12]+": "); n != 1 {
			t.Errorf("layer %s appears on %d screen lines, want 1:\n%s", l[:12], n, s)
		}
		if !strings.Contains(s, l[:12]+": Pull complete") {
			t.Errorf("layer %s not shown as complete:\n%s", l[:12], s)
		}
	}
	if !strings.Contains(s, "Pulled "+ref) {
		t.Errorf("no summary line:\n%s", s)
	}
}

func digestOf(t *testing.T, l v1.Layer) string {
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.Hex
}
