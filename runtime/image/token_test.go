package image

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testimage"
)

// TestPullWithTokenAuth pulls from a registry that uses the Docker token
// protocol (distribution's auth: token, with the realm served by
// testimage's token server), credentials coming from $DOCKER_CONFIG like
// the htpasswd test. The token counters prove each pull really did the
// token dance rather than some other path.
func TestPullWithTokenAuth(t *testing.T) {
	// Not parallel: DOCKER_CONFIG is process-wide.
	reg := testimage.Registry(t, testimage.RegistryOptions{Username: "berth", Password: "tok-pw-9", TokenAuth: true})
	img, err := testimage.BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, img, "private/busybox:latest")
	if st := reg.TokenStats(); st.Granted == 0 {
		t.Fatalf("push did not use the token server: %+v", st)
	}

	s, root := newStore(t)
	before := snapshot(t, s, root)

	// Wrong password: the token server refuses it; one clear line, typed
	// ErrDenied, nothing written.
	t.Setenv("DOCKER_CONFIG", reg.DockerConfig(t, "berth", "wrong"))
	st0 := reg.TokenStats()
	_, err = s.Pull(context.Background(), ref, PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "refused access") || strings.Contains(err.Error(), "\n") || !errors.Is(err, ErrDenied) {
		t.Fatalf("wrong password: %v", err)
	}
	if st := reg.TokenStats(); st.Refused <= st0.Refused {
		t.Errorf("wrong password was not refused by the token server: %+v", st)
	}
	if after := snapshot(t, s, root); after != before {
		t.Fatalf("store changed by a failed pull:\n%s", after)
	}

	// No credentials: an anonymous token without access, which the
	// registry refuses (insufficient scope).
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	st0 = reg.TokenStats()
	_, err = s.Pull(context.Background(), ref, PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "refused access") || strings.Contains(err.Error(), "\n") || !errors.Is(err, ErrDenied) {
		t.Fatalf("no credentials: %v", err)
	}
	if st := reg.TokenStats(); st.Anonymous <= st0.Anonymous {
		t.Errorf("anonymous pull did not ask the token server: %+v", st)
	}
	if after := snapshot(t, s, root); after != before {
		t.Fatalf("store changed by a refused anonymous pull:\n%s", after)
	}

	// Right password: a granted token, and the image arrives intact.
	t.Setenv("DOCKER_CONFIG", reg.DockerConfig(t, "berth", "tok-pw-9"))
	st0 = reg.TokenStats()
	rec, err := s.Pull(context.Background(), ref, PullOptions{})
	if err != nil {
		t.Fatalf("%v\n%s", err, reg.Log())
	}
	if st := reg.TokenStats(); st.Granted <= st0.Granted {
		t.Fatalf("pull succeeded without a token from the token server: %+v", st)
	}
	want, _ := img.Digest()
	if rec.Digest != want {
		t.Fatalf("stored manifest %s, pushed %s", rec.Digest, want)
	}
	local, _, err := s.Resolve(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkBusybox(t, local)
}
