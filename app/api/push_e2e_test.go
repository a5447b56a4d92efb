package api

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/internal/testimage"
)

// TestDockerCLILoginAndPush: `docker login` is checked by the engine
// against a real password-protected registry, and `docker push` sends the
// client's stored credentials (X-Registry-Auth) with which the engine
// uploads the image byte for byte. No VM boots.
func TestDockerCLILoginAndPush(t *testing.T) {
	e := startEngine(t)
	sock := e.Sock
	cfg := t.TempDir() // this test's own client config (docker login writes it)
	run := func(stdin string, args ...string) cliResult {
		t.Helper()
		env := dockerEnvWith(t, sock, cfg)
		return dockerIn(t, env, []byte(stdin), args...)
	}
	must := func(args ...string) string {
		t.Helper()
		r := run("", args...)
		if r.Code != 0 {
			t.Fatalf("docker %s: exit %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
		}
		return r.Stdout
	}
	must("pull", e.Image)
	reg := testimage.Registry(t, testimage.RegistryOptions{Username: "berth", Password: "pw-123"})
	target := reg.Addr + "/team/app:v1"
	must("tag", e.Image, target)

	// Not logged in: the registry's refusal, in one line.
	if r := run("", "push", target); r.Code == 0 || !strings.Contains(r.Stderr, "refused access") {
		t.Fatalf("push without login: exit %d %q", r.Code, r.Stderr)
	}
	if r := run("wrong\n", "login", "-u", "berth", "--password-stdin", reg.Addr); r.Code == 0 || !strings.Contains(r.Stderr, "refused the credentials") {
		t.Fatalf("login with a wrong password: exit %d %q", r.Code, r.Stderr)
	}
	if r := run("pw-123\n", "login", "-u", "berth", "--password-stdin", reg.Addr); r.Code != 0 || !strings.Contains(r.Stdout, "Login Succeeded") {
		t.Fatalf("login: exit %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	out := must("push", target)
	if !strings.Contains(out, "The push refers to repository ["+reg.Addr+"/team/app]") || !strings.Contains(out, "v1: digest: sha256:") {
		t.Fatalf("push output:\n%s", out)
	}
	// The registry has exactly the local image.
	local := strings.TrimSpace(must("image", "inspect", "-f", "{{index .RepoDigests 0}}", e.Image))
	_, localDigest, _ := strings.Cut(local, "@")
	tag, _ := name.NewTag(target, name.Insecure)
	img, err := remote.Image(tag, remote.WithAuth(&authn.Basic{Username: "berth", Password: "pw-123"}))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d.String() != localDigest {
		t.Fatalf("registry has %s, local image %s", d, localDigest)
	}
	if !strings.Contains(out, localDigest) {
		t.Errorf("push did not print the digest %s:\n%s", localDigest, out)
	}
	// The logged-in client pulls from the private registry: the engine uses
	// the credentials the client sent (its own keychain has none).
	must("rmi", target)
	if out := must("pull", target); !strings.Contains(out, localDigest) {
		t.Fatalf("pull with the client's credentials:\n%s", out)
	}
	// A second push finds every layer in place; a missing tag is refused.
	must("push", target)
	if r := run("", "push", reg.Addr+"/team/app:nosuch"); r.Code == 0 || !strings.Contains(r.Stderr, "tag a local image") {
		t.Fatalf("push of a tag that does not exist locally: exit %d %q", r.Code, r.Stderr)
	}
}
