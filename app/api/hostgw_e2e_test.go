package api

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// TestDockerCLIHostDockerInternal: every container reaches the host as
// host.docker.internal (and --add-host NAME:host-gateway), like Docker
// Desktop: a server on the host's loopback answers a container. One VM.
func TestDockerCLIHostDockerInternal(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs; skipped in -short mode")
	}
	e := startEngine(t)
	sock, img := e.Sock, e.Image
	mustDocker(t, sock, "pull", img)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, "hello from the host\n")
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	script := fmt.Sprintf("cat /etc/hosts; echo ---; nc host.docker.internal %d </dev/null; nc mine %d </dev/null", port, port)
	out := mustDocker(t, sock, "run", "--rm", "--add-host", "mine:host-gateway", "--add-host", "fixed:192.0.2.7", img, "sh", "-c", script)
	hosts, replies, _ := strings.Cut(out, "---\n")
	ipOf := map[string]string{}
	for _, line := range strings.Split(hosts, "\n") {
		f := strings.Fields(line)
		for _, n := range f[min(1, len(f)):] {
			ipOf[n] = f[0]
		}
	}
	for name, ip := range map[string]string{"host.docker.internal": "10.0.2.2", "mine": "10.0.2.2", "fixed": "192.0.2.7"} {
		if ipOf[name] != ip {
			t.Errorf("/etc/hosts has %s at %q, want %s:\n%s", name, ipOf[name], ip, hosts)
		}
	}
	if strings.Count(replies, "hello from the host\n") != 2 {
		t.Fatalf("the container did not reach the host's loopback server by both names:\n%s", out)
	}
}
