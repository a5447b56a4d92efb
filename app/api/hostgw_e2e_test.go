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
	e, _ := vmTest(t)
	sock, img := e.Sock, e.Image
	port := hostServer(t, "hello from the host\n")
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

// TestDockerCLIIsolatedNetworks: --network none leaves a container with
// loopback only, and members of an --internal network reach each other
// but not the host or anything beyond. Three VMs.
func TestDockerCLIIsolatedNetworks(t *testing.T) {
	e, d := vmTest(t)
	img := e.Image
	port := hostServer(t, "HOST\n")
	reach := fmt.Sprintf("nc -w 3 10.0.2.2 %d </dev/null || echo NO-HOST", port)

	out := d("run", "--rm", "--network", "none", img, "sh", "-c", "ip -4 addr show eth0 | grep -c inet; ping -c 1 -W 2 127.0.0.1 >/dev/null && echo LO-OK; "+reach)
	if !strings.HasPrefix(out, "0\n") || !strings.Contains(out, "LO-OK") || !strings.Contains(out, "NO-HOST") || strings.Contains("\n"+out, "\nHOST\n") {
		t.Fatalf("--network none: want no eth0 address, loopback up, host unreachable:\n%s", out)
	}
	if out := d("inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", "--type", "container", strings.TrimSpace(d("create", "--network", "none", img, "true"))); strings.TrimSpace(out) != "none" {
		t.Fatalf("inspect of a --network none container lists %q", out)
	}

	d("network", "create", "--internal", "priv")
	d("run", "-d", "--name", "srv", "--network", "priv", img, "sh", "-c", "while true; do echo INSIDE | nc -l -p 7000; done")
	out = d("run", "--rm", "--network", "priv", img, "sh", "-c", "nc -w 3 srv 7000 </dev/null; ip route | grep -c default; "+reach+"; echo ---; cat /etc/resolv.conf; nslookup srv")
	if !strings.Contains(out, "INSIDE") || !strings.Contains(out, "\n0\n") || !strings.Contains(out, "NO-HOST") || strings.Contains("\n"+out, "\nHOST\n") {
		t.Fatalf("--internal network: want the member reached, no default route, host unreachable:\n%s", out)
	}
	// The embedded DNS server (127.0.0.11) answers for peers, for tools
	// that ask DNS directly.
	srvIP := strings.TrimSpace(d("inspect", "-f", "{{.NetworkSettings.Networks.priv.IPAddress}}", "srv"))
	_, dns, _ := strings.Cut(out, "---\n")
	if !strings.Contains(dns, "nameserver 127.0.0.11") || !strings.Contains(dns, "Address: "+srvIP) {
		t.Fatalf("embedded DNS: resolv.conf and nslookup srv (want %s):\n%s", srvIP, dns)
	}
	d("rm", "-f", "srv")
}

// hostServer listens on the host's loopback and answers every connection
// with reply; it returns the port.
func hostServer(t *testing.T, reply string) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, reply)
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}
