package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testimage"
)

// writeCredHelper installs docker-credential-berthtest in a temp dir on
// PATH: a credential helper speaking Docker's protocol (`get` reads the
// server URL on stdin, answers JSON), the way docker-credential-osxkeychain
// and friends do. It records every server it was asked about.
func writeCredHelper(t *testing.T, user, secret string) (asked string) {
	t.Helper()
	dir := t.TempDir()
	asked = filepath.Join(dir, "asked")
	script := `#!/bin/sh
[ "$1" = get ] || { echo "unsupported: $1" >&2; exit 1; }
read -r server
echo "$server" >> '` + asked + `'
printf '{"ServerURL":"%s","Username":"` + user + `","Secret":"` + secret + `"}\n' "$server"
`
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-berthtest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return asked
}

func TestPullWithCredentialHelper(t *testing.T) {
	// Not parallel: DOCKER_CONFIG and PATH are process-wide.
	reg := testimage.Registry(t, testimage.RegistryOptions{Username: "berth", Password: "helper-pw"})
	img, err := testimage.BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, img, "private/busybox:latest")
	cfg := t.TempDir()
	conf := `{"credHelpers": {"` + reg.Addr + `": "berthtest"}}`
	if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfg)
	s, root := newStore(t)

	// The helper hands out a wrong secret: refused, one line, store unchanged.
	asked := writeCredHelper(t, "berth", "wrong")
	before := snapshot(t, s, root)
	_, err = s.Pull(context.Background(), ref, PullOptions{})
	if err == nil || !errors.Is(err, ErrDenied) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("wrong secret from the helper: %v", err)
	}
	if after := snapshot(t, s, root); after != before {
		t.Fatalf("store changed by a failed pull:\n%s", after)
	}
	if b, _ := os.ReadFile(asked); !strings.Contains(string(b), reg.Addr) {
		t.Fatalf("the credential helper was not asked for %s (asked: %q)", reg.Addr, b)
	}

	// The right secret: the pull succeeds with credentials only the helper knows.
	asked = writeCredHelper(t, "berth", "helper-pw")
	if _, err := s.Pull(context.Background(), ref, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(asked); !strings.Contains(string(b), reg.Addr) {
		t.Fatalf("the credential helper was not asked for %s (asked: %q)", reg.Addr, b)
	}
	local, _, err := s.Resolve(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkBusybox(t, local)
}
