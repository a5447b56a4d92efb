//go:build linux

package agent_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	ragent "github.com/berth-dev/berth/runtime/agent"
)

func freeUDPPort(t *testing.T) int {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// ask sends one query to server and returns the reply's rcode and answers.
func ask(t *testing.T, server, name string, typ dnsmessage.Type) (dnsmessage.RCode, []string) {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: uint16(rand.IntN(65536)), RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	c, err := net.Dial("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(q)
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range m.Answers {
		switch r := a.Body.(type) {
		case *dnsmessage.AResource:
			out = append(out, net.IP(r.A[:]).String())
		case *dnsmessage.AAAAResource:
			out = append(out, net.IP(r.AAAA[:]).String())
		}
	}
	return m.RCode, out
}

// upstream is a stand-in for the network's DNS server (there is none
// offline): it answers every A query with 192.0.2.99.
func upstream(t *testing.T) string {
	ip := fmt.Sprintf("127.0.0.%d", 100+rand.IntN(150))
	c, err := net.ListenPacket("udp4", ip+":53")
	if err != nil {
		t.Fatalf("upstream DNS on %s:53: %v", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, _ := p.Question()
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true})
			b.StartQuestions()
			b.Question(q)
			b.StartAnswers()
			b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: [4]byte{192, 0, 2, 99}})
			out, _ := b.Finish()
			c.WriteTo(out, from)
		}
	}()
	return ip
}

func TestEmbeddedDNS(t *testing.T) {
	port := freeUDPPort(t)
	ta := startAgent(t, "-dns-addr", fmt.Sprintf("127.0.0.1:%d", port))
	server := fmt.Sprintf("127.0.0.1:%d", port)
	up := upstream(t)
	ctx := context.Background()
	if err := ta.c.SetupSystem(ctx, &ragent.SystemConfig{
		DnsServers:  []string{up},
		Hosts:       []*ragent.HostEntry{{Ip: "172.18.0.2", Names: []string{"db", "Database"}}, {Ip: "fd00::2", Names: []string{"db"}}},
		EmbeddedDns: true,
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		typ   dnsmessage.Type
		rcode dnsmessage.RCode
		want  string
	}{
		{"db.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "172.18.0.2"},
		{"DATABASE.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "172.18.0.2"},
		{"db.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, "fd00::2"},
		{"database.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, ""},           // held, no v6: NOERROR, empty
		{"example.org.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "192.0.2.99"}, // forwarded
	} {
		rcode, got := ask(t, server, tc.name, tc.typ)
		if rcode != tc.rcode || strings.Join(got, ",") != tc.want {
			t.Errorf("%s %v: %v %v, want %v %q", tc.name, tc.typ, rcode, got, tc.rcode, tc.want)
		}
	}
	// A later hosts update (a peer joined) is answered at once.
	if err := ta.c.SetupSystem(ctx, &ragent.SystemConfig{Hosts: []*ragent.HostEntry{{Ip: "172.18.0.3", Names: []string{"web"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, got := ask(t, server, "web.", dnsmessage.TypeA); strings.Join(got, ",") != "172.18.0.3" {
		t.Errorf("web after the update: %v", got)
	}
	// resolv.conf names the server, not the upstream.
	rc, err := os.ReadFile(filepath.Join(ta.stateDir, "etc", "resolv.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if string(rc) != "nameserver 127.0.0.1\noptions ndots:0\n" {
		t.Errorf("resolv.conf:\n%s", rc)
	}
	// Garbage is dropped, and the server still answers.
	c, _ := net.Dial("udp", server)
	c.Write([]byte("not dns"))
	c.Close()
	if _, got := ask(t, server, "db.", dnsmessage.TypeA); len(got) != 1 {
		t.Errorf("after garbage: %v", got)
	}
}
