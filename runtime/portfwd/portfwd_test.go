package portfwd

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := map[string]string{
		"8080:80":             "127.0.0.1:8080 -> 80/tcp",
		"80":                  "127.0.0.1:0 -> 80/tcp",
		"0.0.0.0:8080:80/tcp": "0.0.0.0:8080 -> 80/tcp",
		"127.0.0.1::80":       "127.0.0.1:0 -> 80/tcp",
		"[::1]:8080:80":       "[::1]:8080 -> 80/tcp",
		"8000-8001:80-81":     "127.0.0.1:8000 -> 80/tcp,127.0.0.1:8001 -> 81/tcp",
		" 9000:90/TCP ":       "127.0.0.1:9000 -> 90/tcp",
	}
	for spec, want := range good {
		bs, err := Parse(spec)
		if err != nil {
			t.Errorf("%q: %v", spec, err)
			continue
		}
		var got []string
		for _, b := range bs {
			got = append(got, b.String())
		}
		if strings.Join(got, ",") != want {
			t.Errorf("%q: got %v want %s", spec, got, want)
		}
	}
	bad := map[string]string{
		"":             "empty",
		"8080:80/udp":  "not supported",
		"8080:0":       "not a port",
		"8080:70000":   "not a port",
		"abc:80":       "not a port",
		"1.2.3:80:80":  "not an IP",
		"1:2:3:4":      "too many colons",
		"80/xyz":       "unknown protocol",
		"8000-8002:80": "differ in length",
		"90-80:90-80":  "ends before",
	}
	for spec, want := range bad {
		_, err := Parse(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want it to mention %q", spec, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"8080:80", "[::1]:1:2/tcp", "1-2:3-4", "a:b:c:d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		bs, err := Parse(s)
		if err != nil {
			return
		}
		for _, b := range bs {
			if b.ContainerPort < 1 || b.ContainerPort > 65535 || b.HostPort < 0 || b.HostPort > 65535 || b.Proto != "tcp" {
				t.Fatalf("%q parsed to %+v", s, b)
			}
		}
	})
}

// TestRelay publishes a port whose "container side" is a real TCP server on
// loopback, and checks bytes flow both ways and half-close propagates.
func TestRelay(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() {
				data, _ := io.ReadAll(c)
				fmt.Fprintf(c, "got %d bytes: %s", len(data), data)
				c.Close()
			}()
		}
	}()
	dialedC := make(chan int, 10)
	set, err := Publish([]Binding{{HostIP: "127.0.0.1", ContainerPort: 80, Proto: "tcp"}}, func(ctx context.Context, port int) (net.Conn, error) {
		dialedC <- port
		return net.Dial("tcp", backend.Addr().String())
	})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	if set.Bindings[0].HostPort == 0 {
		t.Fatal("host port not filled in")
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", set.Bindings[0].HostPort))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello"))
	c.(*net.TCPConn).CloseWrite()
	reply, _ := io.ReadAll(c)
	if string(reply) != "got 5 bytes: hello" || len(dialedC) != 1 || <-dialedC != 80 {
		t.Fatalf("reply %q", reply)
	}
	// A taken port is a clear error and leaves nothing listening.
	_, err = Publish([]Binding{{HostIP: "127.0.0.1", HostPort: set.Bindings[0].HostPort, ContainerPort: 1, Proto: "tcp"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "host port") {
		t.Fatalf("clash: %v", err)
	}
}
