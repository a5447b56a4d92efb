//go:build linux

// Command berth-agent is PID 1 of every Berth container VM (see guest/agent).
//
// As PID 1 it boots the VM and serves on vsock port 1024 and on the
// virtio-serial port "berth.agent". Run by hand (tests), it serves on the
// sockets given with -listen and keeps its mounts in its own namespace:
//
//	unshare -m berth-agent -listen unix:/tmp/agent.sock -state /tmp/agent-state
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mdlayher/vsock"

	"github.com/berth-dev/berth/guest/agent"
)

const (
	vsockPort  = 1024          // = vmm.AgentPort
	serialName = "berth.agent" // = vmm.AgentSerialName
)

func main() {
	if filepath.Base(os.Args[0]) == agent.HelperName {
		agent.HelperMain()
	}
	if os.Getpid() == 1 {
		pid1()
	}
	listen := flag.String("listen", "", "comma-separated listeners: unix:PATH, vsock:PORT, serial:NAME")
	state := flag.String("state", "", "state directory (default /run/berth)")
	cgroup := flag.String("cgroup", "", "cgroup2 directory for container processes (optional)")
	dnsAddr := flag.String("dns-addr", "", "where the embedded DNS server listens when asked for (default "+agent.DefaultDNSAddr+")")
	flag.Parse()
	if *listen == "" {
		fmt.Fprintln(os.Stderr, "berth-agent: no -listen given (e.g. -listen unix:/tmp/agent.sock); as PID 1 it listens on vsock and virtio-serial")
		os.Exit(2)
	}
	a, err := agent.New(agent.Config{StateDir: *state, CgroupDir: *cgroup, DNSAddr: *dnsAddr})
	if err != nil {
		log.Fatalf("berth-agent: %v", err)
	}
	var ls []net.Listener
	for _, spec := range strings.Split(*listen, ",") {
		l, err := listenOn(spec)
		if err != nil {
			log.Fatalf("berth-agent: listen %s: %v", spec, err)
		}
		ls = append(ls, l)
	}
	if err := a.Serve(ls...); err != nil {
		log.Fatalf("berth-agent: %v", err)
	}
}

func listenOn(spec string) (net.Listener, error) {
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "unix":
		os.Remove(arg)
		l, err := net.Listen("unix", arg)
		if err == nil {
			os.Chmod(arg, 0o600)
		}
		return l, err
	case "vsock":
		var port uint32
		if _, err := fmt.Sscan(arg, &port); err != nil {
			return nil, fmt.Errorf("vsock port %q: %w", arg, err)
		}
		return vsock.Listen(port, nil)
	case "serial":
		p, ok := agent.FindSerialPort(arg)
		if !ok {
			return nil, fmt.Errorf("no virtio-serial port named %s", arg)
		}
		return agent.NewSerialListener(p), nil
	}
	return nil, fmt.Errorf("unknown listener kind %q (unix, vsock, serial)", kind)
}

// pid1 runs the agent as the VM's init. It never returns: PID 1 exiting is
// a kernel panic, so every failure is logged and the agent keeps serving
// whatever it can, or powers off.
func pid1() {
	log.SetFlags(0)
	log.SetPrefix("")
	// The container's memory matters more than the agent's GC latency.
	debug.SetGCPercent(50)
	warnings, modules := agent.Boot()
	log.Printf("berth-agent: /init at %.2fs, booted at %.2fs (%d modules)", agent.InitStart, agent.Uptime(), len(modules))
	for _, w := range warnings {
		log.Printf("berth-agent: boot: %s", w)
	}
	a, err := agent.New(agent.Config{PID1: true, CgroupDir: agent.CgroupDir})
	if err != nil {
		log.Printf("berth-agent: %v", err)
		halt()
	}
	a.SetBootInfo(warnings, modules)
	for {
		ls := pid1Listeners()
		if len(ls) == 0 {
			log.Printf("berth-agent: no agent channel: neither vsock nor a virtio-serial port named %s", serialName)
			halt()
		}
		// Serve returns only if a listener fails; it closes them all, so
		// start over with fresh ones.
		err := a.Serve(ls...)
		log.Printf("berth-agent: serve: %v (restarting listeners)", err)
		for _, l := range ls {
			l.Close()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func pid1Listeners() []net.Listener {
	var ls []net.Listener
	if p, ok := agent.FindSerialPort(serialName); ok {
		ls = append(ls, agent.NewSerialListener(p))
	}
	if _, err := os.Stat("/dev/vsock"); err == nil {
		if l, err := vsock.Listen(vsockPort, nil); err == nil {
			ls = append(ls, l)
		} else {
			log.Printf("berth-agent: vsock: %v", err)
		}
	}
	return ls
}

func halt() {
	log.Printf("berth-agent: powering off")
	agent.PowerOff()
	select {}
}
