//go:build linux

package agent

import (
	"io"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-dev/berth/guest/api"
)

// PortForward relays one TCP connection inside the VM (the container shares
// the VM's network namespace).
func (a *Agent) PortForward(stream api.Agent_PortForwardServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if first.Port == 0 || first.Port > 65535 {
		return status.Errorf(codes.InvalidArgument, "port forward: port %d is not 1-65535", first.Port)
	}
	host := first.Address
	if host == "" {
		host = "127.0.0.1"
	}
	if net.ParseIP(host) == nil {
		return status.Errorf(codes.InvalidArgument, "port forward: address %q is not an IP address", host)
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(first.Port)))
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return status.Errorf(codes.Unavailable, "port forward: nothing accepts connections on %s in the VM: %v", addr, err)
	}
	tcp := conn.(*net.TCPConn)
	defer tcp.Close()
	if len(first.Data) > 0 {
		if _, err := tcp.Write(first.Data); err != nil {
			return status.Errorf(codes.Aborted, "port forward %s: %v", addr, err)
		}
	}
	// host -> VM
	go func() {
		for {
			f, err := stream.Recv()
			if err == io.EOF {
				tcp.CloseWrite()
				return
			}
			if err != nil {
				tcp.Close() // the host went away: end both directions
				return
			}
			if _, err := tcp.Write(f.Data); err != nil {
				return
			}
		}
	}()
	// VM -> host; the stream ends with the TCP read side.
	buf := make([]byte, 32<<10)
	for {
		n, err := tcp.Read(buf)
		if n > 0 {
			if serr := stream.Send(&api.PortForwardFrame{Data: append([]byte(nil), buf[:n]...)}); serr != nil {
				return serr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ne, ok := err.(*net.OpError); ok && ne.Err != nil && stream.Context().Err() != nil {
				return status.FromContextError(stream.Context().Err()).Err()
			}
			return status.Errorf(codes.Aborted, "port forward %s: %v", addr, err)
		}
	}
}
