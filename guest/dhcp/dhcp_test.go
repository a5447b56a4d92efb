//go:build linux

package dhcp

// The client against a real server: busybox udhcpd in one network namespace,
// the client in another (a re-run of this test binary), joined by a veth
// pair. udhcpd hands out 4-second leases, so renewals, a server that loses
// every lease, expiry and re-acquisition all happen within seconds.

import (
	"bufio"
	"context"
	"fmt"

	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

const helperEnv = "BERTH_DHCP_TEST_HELPER"

func TestKeepAgainstUdhcpd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (network namespaces): run it as root, as CI does")
	}
	for _, tool := range []string{"ip", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install iproute2 and busybox-static (packaging/setup-linux.sh)", tool)
		}
	}
	id := fmt.Sprint(os.Getpid() % 1000000)
	srv, cli := "bdhcp-s"+id, "bdhcp-c"+id
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{srv, cli} {
		run("ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	run("ip", "-n", cli, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", srv)
	run("ip", "-n", srv, "addr", "add", "192.168.77.1/24", "dev", "v1")
	run("ip", "-n", srv, "link", "set", "v1", "up")
	run("ip", "-n", cli, "link", "set", "lo", "up")

	dir := t.TempDir()
	startServer := func(name, first, last string) *exec.Cmd {
		leases := filepath.Join(dir, strings.TrimSuffix(name, "2")+".leases") // a2 takes over a's leases
		conf := filepath.Join(dir, name+".conf")
		os.WriteFile(conf, []byte(fmt.Sprintf(`start %s
end %s
interface v1
lease_file %s
pidfile %s
option subnet 255.255.255.0
option router 192.168.77.1
option dns 192.168.77.53
option lease 4
`, first, last, leases, filepath.Join(dir, name+".pid"))), 0o644)
		cmd := exec.Command("ip", "netns", "exec", srv, "busybox", "udhcpd", "-f", conf)
		logf, _ := os.Create(filepath.Join(dir, name+".log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		t.Cleanup(func() {
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("udhcpd %s:\n%s", name, b)
			}
		})
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	server := startServer("a", "192.168.77.100", "192.168.77.109")

	helper := exec.Command("ip", "netns", "exec", cli, os.Args[0], "-test.run=^TestHelperKeep$")
	helper.Env = append(os.Environ(), helperEnv+"=v0")
	helper.Stderr = os.Stderr
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { helper.Process.Kill(); helper.Wait() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// expect waits for a helper line starting with prefix; it returns the
	// line's fields.
	expect := func(prefix string, within time.Duration) []string {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("helper exited before %q", prefix)
				}
				t.Logf("client: %s", l)
				if strings.HasPrefix(l, prefix) {
					return strings.Fields(l)
				}
			case <-deadline:
				t.Fatalf("no %q from the client within %s", prefix, within)
			}
		}
	}

	// bound ADDR SERVER LEASE, then the interface's addresses.
	first := expect("bound", 20*time.Second)
	if !strings.HasPrefix(first[1], "192.168.77.10") || first[2] != "192.168.77.1" || first[3] != "4s" {
		t.Fatalf("first lease: %v", first)
	}
	if addrs := expect("addrs", 5*time.Second); !contains(addrs, first[1]) {
		t.Fatalf("address not on the interface: %v", addrs)
	}
	// Renewed at T1 (2 s), twice: the same address, no gap.
	for i := 0; i < 2; i++ {
		if r := expect("renewed", 10*time.Second); r[1] != first[1] {
			t.Fatalf("renewal changed the address: %v", r)
		}
		if addrs := expect("addrs", 5*time.Second); !contains(addrs, first[1]) {
			t.Fatalf("address gone after a renewal: %v", addrs)
		}
	}
	// The server moves to another address, keeping its leases: renewing
	// (unicast to the old address) gets no answer, rebinding (broadcast)
	// at T2 does, and the lease now names the new server.
	server.Process.Signal(syscall.SIGTERM) // udhcpd writes its leases on SIGTERM
	server.Wait()
	run("ip", "-n", srv, "addr", "del", "192.168.77.1/24", "dev", "v1")
	run("ip", "-n", srv, "addr", "add", "192.168.77.2/24", "dev", "v1")
	server = startServer("a2", "192.168.77.100", "192.168.77.109")
	if r := expect("rebound", 15*time.Second); r[1] != first[1] || r[2] != "192.168.77.2" {
		t.Fatalf("rebound: %v", r)
	}
	expect("addrs", 5*time.Second)
	// The server goes away and comes back with no memory of the lease and
	// another range: renewing and rebinding get no answer, the lease
	// expires, the address is dropped, and a new one is acquired.
	server.Process.Kill()
	server.Wait()
	startServer("b", "192.168.77.120", "192.168.77.129")
	if e := expect("expired", 15*time.Second); e[1] != first[1] {
		t.Fatalf("expired: %v", e)
	}
	if addrs := expect("addrs", 5*time.Second); contains(addrs, first[1]) {
		t.Fatalf("expired address still on the interface: %v", addrs)
	}
	second := expect("bound", 30*time.Second)
	if !strings.HasPrefix(second[1], "192.168.77.12") {
		t.Fatalf("second lease: %v", second)
	}
	if addrs := expect("addrs", 5*time.Second); !contains(addrs, second[1]) || contains(addrs, first[1]) {
		t.Fatalf("addresses after the new lease: %v", addrs)
	}
}

func contains(fields []string, s string) bool {
	for _, f := range fields {
		if f == s {
			return true
		}
	}
	return false
}

// TestHelperKeep is the client side of TestKeepAgainstUdhcpd, run in the
// client's network namespace. It prints one line per event and the
// interface's addresses after each.
func TestHelperKeep(t *testing.T) {
	ifname := os.Getenv(helperEnv)
	if ifname == "" {
		return // only as TestKeepAgainstUdhcpd's helper process
	}
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	c := &Client{Interface: ifname, MAC: link.Attrs().HardwareAddr}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addrs := func() {
		list, _ := netlink.AddrList(link, netlink.FAMILY_V4)
		var s []string
		for _, a := range list {
			s = append(s, a.IPNet.String())
		}
		fmt.Printf("addrs %s\n", strings.Join(s, " "))
	}
	report := func(event string, old, new *Lease) error {
		if err := Apply(ifname, old, new); err != nil {
			return err
		}
		l := new
		if l == nil {
			l = old
		}
		fmt.Printf("%s %s %s %s\n", event, l.Addr, l.Server, l.Duration)
		addrs()
		return nil
	}
	l, err := c.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := report(Bound, nil, l); err != nil {
		t.Fatal(err)
	}
	c.Keep(ctx, l, report, func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
}
