package image

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/internal/testimage"
)

// A pulled image pushed under another name to a registry that needs a
// password arrives byte for byte (same manifest digest), layers in
// parallel with progress; a second push finds every layer there.
func TestPushToRegistry(t *testing.T) {
	t.Parallel()
	src := testimage.Registry(t, testimage.RegistryOptions{})
	img, err := testimage.BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	ref := src.Push(t, img, "busybox:1")
	s, _ := newStore(t)
	if _, err := s.Pull(context.Background(), ref, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := testimage.Registry(t, testimage.RegistryOptions{Username: "berth", Password: "pw-123"})
	target := dst.Addr + "/team/busybox:v1"
	if err := s.Tag(ref, target); err != nil {
		t.Fatal(err)
	}
	auth := &authn.Basic{Username: "berth", Password: "pw-123"}

	// Wrong and missing credentials: a clear refusal.
	_, _, err = s.Push(context.Background(), target, PushOptions{Auth: &authn.Basic{Username: "berth", Password: "nope"}})
	if err == nil || !errors.Is(err, ErrDenied) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("wrong password: %v", err)
	}

	var mu sync.Mutex
	seen := map[string]int{}
	d, size, err := s.Push(context.Background(), target, PushOptions{Auth: auth, Progress: func(e Event) {
		mu.Lock()
		seen[e.Status]++
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d != want || size <= 0 {
		t.Fatalf("pushed %s (%d bytes), local %s", d, size, want)
	}
	if seen[StatusPreparing] != 2 || seen[StatusPushed] != 2 || seen[StatusPushing] == 0 {
		t.Errorf("progress: %v", seen)
	}
	// What the registry now serves is the same image.
	tag, _ := name.NewTag(target, name.Insecure)
	got, err := remote.Image(tag, remote.WithAuth(auth))
	if err != nil {
		t.Fatal(err)
	}
	if gd, _ := got.Digest(); gd != want {
		t.Fatalf("registry serves %s, want %s", gd, want)
	}
	checkBusybox(t, got)
	// Again: nothing to upload.
	if _, _, err := s.Push(context.Background(), target, PushOptions{Auth: auth}); err != nil {
		t.Fatal(err)
	}
}

func TestPushBadInput(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	for ref, want := range map[string]string{
		"127.0.0.1:1/nothing:here":                  "tag a local image",
		"busybox@sha256:" + strings.Repeat("a", 64): "push a tag",
		"UPPER/case": "",
	} {
		_, _, err := s.Push(context.Background(), ref, PushOptions{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("push %s: %v, want an error mentioning %q", ref, err, want)
		}
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	reg := testimage.Registry(t, testimage.RegistryOptions{Username: "berth", Password: "pw-123"})
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.Login(ctx, reg.Addr, &authn.Basic{Username: "berth", Password: "pw-123"}); err != nil {
		t.Fatalf("good credentials: %v", err)
	}
	if err := s.Login(ctx, "http://"+reg.Addr+"/v1/", &authn.Basic{Username: "berth", Password: "pw-123"}); err != nil {
		t.Fatalf("server address as a URL: %v", err)
	}
	err := s.Login(ctx, reg.Addr, &authn.Basic{Username: "berth", Password: "wrong"})
	if err == nil || !errors.Is(err, ErrDenied) {
		t.Fatalf("wrong password: %v", err)
	}
	open := testimage.Registry(t, testimage.RegistryOptions{})
	if err := s.Login(ctx, open.Addr, authn.Anonymous); err != nil {
		t.Fatalf("a registry without auth: %v", err)
	}
	if err := s.Login(ctx, "127.0.0.1:1", authn.Anonymous); err == nil || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("nothing listening: %v", err)
	}
	for in, want := range map[string]string{"https://index.docker.io/v1/": "index.docker.io", "": "index.docker.io", "localhost:5000": "localhost:5000", "ghcr.io/owner": "ghcr.io"} {
		if got := registryHost(in); got != want {
			t.Errorf("registryHost(%q) = %q, want %q", in, got, want)
		}
	}
}
