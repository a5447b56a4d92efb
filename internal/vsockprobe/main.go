//go:build linux

// Command vsockprobe is a test client that runs inside a Berth VM and talks
// to the VM's own agent over AF_VSOCK, through the kernel's loopback
// transport (vsock_loopback, CID 1). Hosts here have no vhost-vsock, so this
// is how the tests make the agent's vsock listener carry real calls: the
// same runtime/agent client the host uses, over a real vsock socket.
//
//	vsockprobe [port [timeout]]    (default 1024, the agent's port; 30s)
//
// It prints the agent's health and the output of an exec, and exits 0 only
// if both worked over vsock.
package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/mdlayher/vsock"

	ragent "github.com/berth-dev/berth/runtime/agent"
)

func main() {
	port := uint64(1024)
	if len(os.Args) > 1 {
		p, err := strconv.ParseUint(os.Args[1], 10, 32)
		if err != nil {
			fail("port %q: %v", os.Args[1], err)
		}
		port = p
	}
	timeout := 30 * time.Second
	if len(os.Args) > 2 {
		d, err := time.ParseDuration(os.Args[2])
		if err != nil {
			fail("timeout %q: %v", os.Args[2], err)
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var local net.Addr
	c, err := ragent.Connect(ctx, func(context.Context) (net.Conn, error) {
		conn, err := vsock.Dial(vsock.Local, uint32(port), nil)
		if err == nil {
			local = conn.LocalAddr()
		}
		return conn, err
	})
	if err != nil {
		fail("connect: %v", err)
	}
	defer c.Close()
	h, err := c.Health(ctx)
	if err != nil {
		fail("health: %v", err)
	}
	fmt.Printf("vsock %s health: pid1=%v version=%s\n", local, h.Pid1, h.Version)
	var out bytes.Buffer
	st, err := c.Exec(ctx, fmt.Sprintf("vsockprobe-%d", os.Getpid()), &ragent.ProcessSpec{Args: []string{"echo", "exec over vsock"}}, ragent.Stdio{Stdout: &out})
	if err != nil {
		fail("exec: %v", err)
	}
	fmt.Printf("exit %d: %s", st.Code, out.String())
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vsockprobe: "+format+"\n", args...)
	os.Exit(1)
}
