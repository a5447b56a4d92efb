package api

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// TestDockerCLINetworks drives user-defined networks with the real docker
// CLI and real QEMU VMs on one engine: containers on a network reach each
// other by name and alias (ping and TCP), a container on another network
// cannot, inspect shows the members, a network in use cannot be removed,
// stopped containers connect and disconnect. Then docker-compose (v1, the
// Debian package) brings up a two-service project on its default network,
// the client fetches the web service's page by name, and `down` removes
// containers and network. Seven VM boots in all.
func TestDockerCLINetworks(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs; skipped in -short mode")
	}
	e := startEngine(t)
	sock, img := e.Sock, e.Image
	d := func(args ...string) string { t.Helper(); return mustDocker(t, sock, args...) }
	fails := func(want string, args ...string) {
		t.Helper()
		r := docker(t, sock, nil, args...)
		// The daemon's message is the first line (run adds a --help hint).
		if first, _, _ := strings.Cut(r.Stderr, "\n"); r.Code == 0 || !strings.Contains(first, want) {
			t.Fatalf("docker %s: exit %d, stderr %q; want a failure mentioning %q on its first line", strings.Join(args, " "), r.Code, r.Stderr, want)
		}
	}
	d("pull", "-q", img)
	since := time.Now().Add(-time.Second).Unix()

	appID := strings.TrimSpace(d("network", "create", "--label", "tier=app", "appnet"))
	if len(appID) != 64 {
		t.Fatalf("network create printed %q", appID)
	}
	d("network", "create", "--subnet", "10.77.0.0/24", "othernet")
	fails("already exists", "network", "create", "appnet")
	fails("invalid network name", "network", "create", "bad/name")
	fails("overlaps", "network", "create", "--subnet", "10.77.0.128/25", "clash")
	fails("not supported", "network", "create", "-d", "overlay", "ov")
	fails("pre-defined", "network", "rm", "bridge")
	if out := d("network", "ls", "--format", "{{.Name}} {{.Driver}}"); out != "appnet bridge\nbridge bridge\nhost host\nnone null\nothernet bridge\n" {
		t.Fatalf("network ls:\n%s", out)
	}
	if out := d("network", "ls", "-q", "--filter", "label=tier=app"); strings.TrimSpace(out) != appID[:12] {
		t.Fatalf("network ls --filter label: %q", out)
	}

	// db serves a page over busybox httpd; client idles so we can exec in it.
	d("run", "-d", "--name", "db", "--network", "appnet", "--network-alias", "database", img,
		"sh", "-c", "mkdir -p /www && echo db-page > /www/index.html && exec httpd -f -p 80 -h /www")
	d("run", "-d", "--name", "client", "--network", "appnet", img, "sleep", "600")
	fails("host is not supported", "run", "--rm", "--network", "host", img, "true")

	var ins []container.InspectResponse
	if err := json.Unmarshal([]byte(d("inspect", "db", "client")), &ins); err != nil || len(ins) != 2 {
		t.Fatalf("inspect: %v", err)
	}
	dbEP, clEP := ins[0].NetworkSettings.Networks["appnet"], ins[1].NetworkSettings.Networks["appnet"]
	if dbEP == nil || clEP == nil || dbEP.NetworkID != appID || !dbEP.IPAddress.IsValid() || dbEP.IPAddress == clEP.IPAddress ||
		dbEP.Gateway.String() != "172.18.0.1" || dbEP.IPPrefixLen != 16 || len(dbEP.MacAddress) != 6 {
		t.Fatalf("inspect appnet endpoints: db %+v client %+v", dbEP, clEP)
	}
	if !strings.Contains(strings.Join(dbEP.Aliases, " "), "database") {
		t.Errorf("db aliases %v lack database", dbEP.Aliases)
	}
	dbIP := dbEP.IPAddress.String()

	exec := func(args ...string) cliResult {
		t.Helper()
		return docker(t, sock, nil, append([]string{"exec", "client"}, args...)...)
	}
	if r := exec("ping", "-c", "1", "-W", "10", "db"); r.Code != 0 || !strings.Contains(r.Stdout, dbIP) {
		t.Fatalf("client pings db by name: exit %d\n%s%s\nhosts: %s", r.Code, r.Stdout, r.Stderr, exec("cat", "/etc/hosts").Stdout)
	}
	for _, name := range []string{"db", "database", ins[0].ID[:12]} {
		// nc, not wget: the test image's busybox wget crashes (SIGSEGV) on any URL.
		if r := exec("sh", "-c", ncGet(name)); r.Code != 0 || !strings.HasSuffix(r.Stdout, "\r\n\r\ndb-page\n") {
			t.Fatalf("client fetches http://%s/: exit %d %q %q\nhosts: %s", name, r.Code, r.Stdout, r.Stderr, exec("cat", "/etc/hosts").Stdout)
		}
	}
	// db was running first: the client's arrival was pushed into its hosts file.
	if r := docker(t, sock, nil, "exec", "db", "ping", "-c", "1", "-W", "10", "client"); r.Code != 0 {
		t.Fatalf("db pings client by name: exit %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	// Another network is another switch: neither db's name nor its page at
	// its address can be reached.
	r := docker(t, sock, nil, "run", "--rm", "--network", "othernet", img, "sh", "-c",
		// TCP, not ping: QEMU's user networking (eth0) answers pings to any
		// address itself.
		ncGet(dbIP)+" | grep db-page && echo REACHED-IP; nc -w 3 db 80 </dev/null && echo REACHED-NAME; ip -4 addr show eth1 | grep -o 'inet [0-9./]*'")
	if r.Code != 0 || strings.Contains(r.Stdout, "REACHED") || !strings.Contains(r.Stdout, "inet 10.77.0.2/24") {
		t.Fatalf("container on othernet: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	var ni []network.Inspect
	if err := json.Unmarshal([]byte(d("network", "inspect", "appnet")), &ni); err != nil || len(ni) != 1 {
		t.Fatalf("network inspect: %v", err)
	}
	if got := ni[0]; len(got.Containers) != 2 || got.Containers[ins[0].ID].Name != "db" ||
		got.Containers[ins[0].ID].IPv4Address.Addr().String() != dbIP || got.IPAM.Config[0].Subnet.String() != "172.18.0.0/16" ||
		got.Labels["tier"] != "app" {
		t.Fatalf("network inspect appnet: %+v", got)
	}
	if out := d("ps", "--filter", "network=appnet", "--format", "{{.Names}}"); out != "client\ndb\n" {
		t.Fatalf("ps --filter network=appnet: %q", out)
	}
	fails("in use by container(s) client, db", "network", "rm", "appnet")
	fails("stop it first", "network", "disconnect", "appnet", "client")

	// Stopped containers connect and disconnect; the address is kept while connected.
	d("stop", "-t", "1", "client")
	// The stopped member left the others' hosts files.
	if out := d("exec", "db", "cat", "/etc/hosts"); strings.Contains(out, "client") || !strings.Contains(out, "database") {
		t.Fatalf("db's /etc/hosts after client stopped:\n%s", out)
	}
	d("network", "disconnect", "appnet", "client")
	if out := d("inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", "client"); out != "bridge \n" {
		t.Fatalf("networks after disconnect: %q", out)
	}
	fails("is not connected", "network", "disconnect", "appnet", "client")
	d("network", "connect", "--alias", "cl", "othernet", "client")
	fails("already connected", "network", "connect", "othernet", "client")
	if out := d("inspect", "-f", "{{(index .NetworkSettings.Networks \"othernet\").IPAddress}}", "client"); strings.TrimSpace(out) != "10.77.0.2" {
		t.Fatalf("client on othernet: %q (the --rm container's address must have been released)", out)
	}
	d("rm", "-f", "db", "client")
	if out := d("network", "inspect", "-f", "{{len .Containers}}", "appnet", "othernet"); out != "0\n0\n" {
		t.Fatalf("members after rm: %q", out)
	}
	d("network", "rm", "appnet")
	if out := d("network", "prune", "-f"); !strings.Contains(out, "othernet") {
		t.Fatalf("network prune: %q", out)
	}
	evs := d("events", "--since", itoa(uint64(since)), "--until", itoa(uint64(time.Now().Unix()+1)),
		"--filter", "type=network", "--format", "{{.Action}} {{.Actor.Attributes.name}}")
	for _, want := range []string{"create appnet", "connect appnet", "disconnect appnet", "destroy appnet", "connect othernet", "destroy othernet"} {
		if !strings.Contains(evs, want+"\n") {
			t.Errorf("network events lack %q:\n%s", want, evs)
		}
	}

	t.Run("compose", func(t *testing.T) { testCompose(t, e) })
}

// ncGet is a shell command that prints the HTTP response of host's "/".
func ncGet(host string) string {
	return `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 ` + host + ` 80`
}

// testCompose runs docker-compose v1 (Debian's docker-compose package)
// against the engine: a busybox httpd "web" and a "client" that fetches
// http://web/ by its service name.
func testCompose(t *testing.T, e *engineEnv) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("docker-compose is not installed: apt-get install docker-compose (packaging/setup-linux.sh installs it)")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "docker-compose.yml")
	os.WriteFile(file, []byte(`version: "3.8"
services:
  web:
    image: `+e.Image+`
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"]
  client:
    image: `+e.Image+`
    depends_on: [web]
    command: ["sh", "-c", "n=0; while [ $$n -lt 60 ]; do `+strings.ReplaceAll(ncGet("web"), "$", "$$")+` | grep hello && exit 0; n=$$((n+1)); sleep 1; done; exit 1"]
`), 0o644)
	compose := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"-p", "berthtest", "-f", file, "--ansi", "never"}, args...)...)
		cmd.Env = append(dockerEnv(t, e.Sock), "COMPOSE_INTERACTIVE_NO_CLI=1")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { compose("down", "-t", "1") })
	out, err := compose("up", "--abort-on-container-exit", "--exit-code-from", "client")
	if err != nil || !strings.Contains(out, "client_1  | hello-from-web") || strings.Contains(out, "Traceback") {
		t.Fatalf("docker-compose up: %v\n%s", err, out)
	}
	t.Logf("docker-compose up:\n%s", out)
	d := func(args ...string) string { t.Helper(); return mustDocker(t, e.Sock, args...) }
	if out := d("network", "ls", "--format", "{{.Name}}", "--filter", "label=com.docker.compose.project=berthtest"); strings.TrimSpace(out) != "berthtest_default" {
		t.Fatalf("compose's network: %q", out)
	}
	// Detached: up -d starts the project again, logs and ps read it back.
	if out, err := compose("up", "-d"); err != nil {
		t.Fatalf("docker-compose up -d: %v\n%s", err, out)
	}
	if code := strings.TrimSpace(d("wait", "berthtest_client_1")); code != "0" {
		t.Fatalf("client after up -d exited %s", code)
	}
	if out, err := compose("logs", "--no-color", "client"); err != nil || strings.Count(out, "hello-from-web") != 2 {
		t.Fatalf("docker-compose logs client (two runs): %v\n%s", err, out)
	}
	if out, err := compose("ps"); err != nil || !regexp.MustCompile(`berthtest_web_1 .* Up`).MatchString(out) ||
		!regexp.MustCompile(`berthtest_client_1 .* Exit 0`).MatchString(out) {
		t.Fatalf("docker-compose ps: %v\n%s", err, out)
	}
	if out, err := compose("down", "-t", "1"); err != nil {
		t.Fatalf("docker-compose down: %v\n%s", err, out)
	}
	if out := d("ps", "-a", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("containers left after compose down: %q", out)
	}
	if out := d("network", "ls", "--format", "{{.Name}}"); out != "bridge\nhost\nnone\n" {
		t.Fatalf("networks left after compose down: %q", out)
	}
}
