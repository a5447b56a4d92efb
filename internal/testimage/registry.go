package testimage

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth/internal/syncbuf"
)

// RegistryBinary is Debian's distribution registry (package docker-registry).
const RegistryBinary = "/usr/bin/docker-registry"

// RegistryOptions configures Registry. With Username set the registry
// requires credentials: by default HTTP basic auth checked against an
// htpasswd file; with TokenAuth the Docker token protocol, where the
// registry sends clients to an in-process token server (the realm) that
// checks the credentials and issues signed JWTs the registry verifies.
type RegistryOptions struct {
	Username, Password string
	TokenAuth          bool
}

// RegistryServer is a running docker-registry on 127.0.0.1 (started by Registry).
type RegistryServer struct {
	Addr     string // host:port, e.g. 127.0.0.1:41234
	Username string
	Password string
	Dir      string // storage root
	log      *syncbuf.Buffer
	token    *tokenServer // nil unless RegistryOptions.TokenAuth
}

// Registry starts a registry on a free loopback port; it is stopped and its
// storage removed on t.Cleanup. A missing binary fails the test (it does not
// skip), naming the package to install.
func Registry(t testing.TB, opts RegistryOptions) *RegistryServer {
	t.Helper()
	if _, err := os.Stat(RegistryBinary); err != nil {
		t.Fatalf("testimage: %s not found: install the Debian package docker-registry (packaging/setup-linux.sh)", RegistryBinary)
	}
	dir := t.TempDir()
	r := &RegistryServer{Username: opts.Username, Password: opts.Password, Dir: filepath.Join(dir, "storage"), log: &syncbuf.Buffer{}}
	authCfg := ""
	if opts.TokenAuth && opts.Username == "" {
		t.Fatal("testimage: RegistryOptions.TokenAuth needs a Username and Password for the token server to check")
	}
	if opts.TokenAuth {
		certPath := filepath.Join(dir, "token-root.pem")
		r.token = startTokenServer(t, opts.Username, opts.Password, certPath)
		authCfg = fmt.Sprintf("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
			r.token.realm(), TokenService, TokenIssuer, certPath)
	} else if opts.Username != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(opts.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(opts.Username+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		authCfg = fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-test\n    path: %s\n", htpasswd)
	}
	// Token-auth refusals are logged at info level only; keep them, since
	// that log is what a failing test prints.
	logLevel := "warn"
	if opts.TokenAuth {
		logLevel = "info"
	}
	// A free port can be taken by someone else between our probe and the
	// registry's bind; retry a few times with a new port.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		r.Addr = "127.0.0.1:" + strconv.Itoa(port)
		cfg := fmt.Sprintf(`version: 0.1
log:
  level: %s
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: berth-test-secret
%s`, logLevel, r.Dir, r.Addr, authCfg)
		cfgPath := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(RegistryBinary, "serve", cfgPath)
		cmd.Stdout, cmd.Stderr = r.log, r.log
		if err := cmd.Start(); err != nil {
			t.Fatalf("testimage: start %s: %v", RegistryBinary, err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if err := r.waitReady(exited); err != nil {
			lastErr = err
			cmd.Process.Kill()
			<-exited
			continue
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
			if t.Failed() {
				t.Logf("docker-registry log:\n%s", r.log.String())
			}
		})
		return r
	}
	t.Fatalf("testimage: docker-registry did not start: %v\n%s", lastErr, r.log.String())
	return nil
}

func (r *RegistryServer) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(15 * time.Second)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("docker-registry exited: %s", r.log.String())
		default:
		}
		resp, err := c.Get("http://" + r.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("docker-registry on %s not ready after 15s", r.Addr)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Auth is the authenticator for this registry (anonymous without auth).
func (r *RegistryServer) Auth() authn.Authenticator {
	if r.Username == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: r.Username, Password: r.Password}
}

// Ref returns the full reference for repoTag ("busybox:1") on this registry.
func (r *RegistryServer) Ref(repoTag string) string { return r.Addr + "/" + repoTag }

// Push writes img to repoTag ("busybox:latest") and returns the full
// reference (127.0.0.1:PORT/busybox:latest).
func (r *RegistryServer) Push(t testing.TB, img v1.Image, repoTag string) string {
	t.Helper()
	ref, err := name.ParseReference(r.Ref(repoTag), name.Insecure)
	if err != nil {
		t.Fatalf("testimage: %v", err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(r.Auth())); err != nil {
		t.Fatalf("testimage: push %s: %v\n%s", ref, err, r.log.String())
	}
	return ref.String()
}

// PushIndex writes a multi-platform index (and all its images) to repoTag.
func (r *RegistryServer) PushIndex(t testing.TB, idx v1.ImageIndex, repoTag string) string {
	t.Helper()
	ref, err := name.ParseReference(r.Ref(repoTag), name.Insecure)
	if err != nil {
		t.Fatalf("testimage: %v", err)
	}
	if err := remote.WriteIndex(ref, idx, remote.WithAuth(r.Auth())); err != nil {
		t.Fatalf("testimage: push index %s: %v\n%s", ref, err, r.log.String())
	}
	return ref.String()
}

// DockerConfig writes a Docker config.json holding this registry's
// credentials (user/password given, so tests can also write wrong ones)
// into a new temp dir and returns the dir, for $DOCKER_CONFIG.
func (r *RegistryServer) DockerConfig(t testing.TB, user, password string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"auths": map[string]any{
		r.Addr: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))},
	}}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Log returns what the registry printed so far.
func (r *RegistryServer) Log() string { return r.log.String() }
