// Package portfwd publishes container ports on the host: it parses Docker's
// -p specs and relays each accepted host connection through the guest
// agent's port-forward stream (no route to the VM's own address needed).
package portfwd

// Binding is one published port: host address and port → container port.
type Binding struct {
	HostIP        string `json:"hostIp"`        // "127.0.0.1" by default
	HostPort      int    `json:"hostPort"`      // 0 = pick a free port at start
	ContainerPort int    `json:"containerPort"`
	Proto         string `json:"proto"` // "tcp"
}
