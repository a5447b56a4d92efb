package testimage

import (
	"archive/tar"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestBusyboxImageLayout(t *testing.T) {
	img, err := BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	seen := func(i int) map[string]*tar.Header {
		rc, err := layers[i].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		m := map[string]*tar.Header{}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			m[h.Name] = h
		}
		return m
	}
	base, upper := seen(0), seen(1)
	for _, p := range []string{"bin/busybox", "bin/sh", "etc/passwd", "etc/group", "tmp/", "etc/motd"} {
		if base[p] == nil {
			t.Errorf("base layer lacks %s", p)
		}
	}
	if base["tmp/"].Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp mode %o", base["tmp/"].Mode)
	}
	if upper["hello.txt"] == nil || upper["etc/.wh.motd"] == nil {
		t.Errorf("upper layer: %v", upper)
	}
	cf, _ := img.ConfigFile()
	if cf.OS != "linux" || cf.Config.Cmd[0] != "sh" {
		t.Errorf("config: %+v", cf)
	}
	again, _ := BusyboxImage("")
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("not deterministic: %s vs %s", d1, d2)
	}
}

func TestBusyboxImageArm64(t *testing.T) {
	img, err := BusyboxImage("arm64")
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if cf.Architecture != "arm64" {
		t.Fatalf("arch %s", cf.Architecture)
	}
	layers, _ := img.Layers()
	rc, _ := layers[0].Uncompressed()
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatal("no bin/busybox in the arm64 base layer")
		}
		if h.Name == "bin/busybox" {
			head := make([]byte, 20)
			io.ReadFull(tr, head)
			// ELF e_machine 183 = AArch64.
			if string(head[:4]) != "\x7fELF" || head[18] != 183 {
				t.Fatalf("bin/busybox is not an arm64 ELF: % x", head)
			}
			return
		}
	}
}

func TestBusyboxBinaryUnknownArch(t *testing.T) {
	if _, err := BusyboxBinary("s390x"); err == nil {
		t.Fatal("want an error for an arch we cannot provide")
	}
}

func TestRegistryPushAndAuth(t *testing.T) {
	t.Parallel()
	img, err := BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range []bool{false, true} {
		opts := RegistryOptions{}
		if auth {
			opts = RegistryOptions{Username: "berth", Password: "s3cret"}
		}
		r := Registry(t, opts)
		full := r.Push(t, img, "busybox:latest")
		ref, _ := name.ParseReference(full, name.Insecure)
		got, err := remote.Image(ref, remote.WithAuth(r.Auth()))
		if err != nil {
			t.Fatalf("auth=%v: read back: %v", auth, err)
		}
		want, _ := img.Digest()
		if d, _ := got.Digest(); d != want {
			t.Fatalf("digest %s, want %s", d, want)
		}
		if auth {
			_, err := remote.Image(ref, remote.WithAuth(authn.Anonymous))
			var te *transport.Error
			if !errors.As(err, &te) || te.StatusCode != 401 {
				t.Fatalf("anonymous pull from an auth registry: %v", err)
			}
			if _, err := os.Stat(r.DockerConfig(t, "berth", "x") + "/config.json"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestRegistryTokenAuth(t *testing.T) {
	t.Parallel()
	img, err := BusyboxImage("")
	if err != nil {
		t.Fatal(err)
	}
	r := Registry(t, RegistryOptions{Username: "berth", Password: "t0ken-pw", TokenAuth: true})
	full := r.Push(t, img, "private/busybox:latest")
	pushed := r.TokenStats()
	if pushed.Granted == 0 || pushed.Refused != 0 {
		t.Fatalf("push did not go through the token server: %+v", pushed)
	}
	ref, _ := name.ParseReference(full, name.Insecure)
	got, err := remote.Image(ref, remote.WithAuth(r.Auth()))
	if err != nil {
		t.Fatalf("read back: %v\n%s", err, r.Log())
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("digest %s, want %s", d, want)
	}
	if s := r.TokenStats(); s.Granted <= pushed.Granted {
		t.Errorf("read back without a new token: %+v", s)
	}

	// Anonymous: the token server hands out a token without access, and
	// the registry refuses it.
	_, err = remote.Image(ref, remote.WithAuth(authn.Anonymous))
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != 401 {
		t.Fatalf("anonymous pull: %v", err)
	}
	if s := r.TokenStats(); s.Anonymous == 0 {
		t.Errorf("anonymous pull did not ask for a token: %+v", s)
	}
	// Wrong password: the token server refuses.
	_, err = remote.Image(ref, remote.WithAuth(&authn.Basic{Username: "berth", Password: "wrong"}))
	if !errors.As(err, &te) || te.StatusCode != 401 {
		t.Fatalf("wrong password: %v", err)
	}
	if s := r.TokenStats(); s.Refused != 1 {
		t.Errorf("wrong password not refused by the token server: %+v", s)
	}
	// The registry checks the signature: a token signed by a key other
	// than the one whose certificate is in the x5c/rootcertbundle fails.
	forger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r.token.mu.Lock()
	r.token.key = forger
	r.token.mu.Unlock()
	before := r.TokenStats().Granted
	_, err = remote.Image(ref, remote.WithAuth(r.Auth()))
	if !errors.As(err, &te) || te.StatusCode != 401 {
		t.Fatalf("forged token: %v", err)
	}
	if r.TokenStats().Granted == before {
		t.Error("forged-token pull did not fetch a token")
	}
}

func TestRegistryTokenAuthNeedsCredentials(t *testing.T) {
	t.Parallel()
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() { recover() }()
		Registry(ft, RegistryOptions{TokenAuth: true})
	}()
	if !strings.Contains(ft.msg, "needs a Username") {
		t.Fatalf("got %q", ft.msg)
	}
}

// fatalRecorder catches a Fatal instead of failing the real test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatal(args ...any) { f.msg = fmt.Sprint(args...); panic(f) }
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}
