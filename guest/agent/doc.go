// Package agent is Berth's guest agent: PID 1 of every container VM. It
// prepares the VM (Boot), then serves the berth.agent.v1 gRPC service
// (guest/api) to the host: it mounts the container's root filesystem, runs
// the container's processes in their own namespaces, relays their stdio and
// TCP ports, and powers the VM off on request.
//
// The same code runs as an ordinary (root) process on a Linux host, which is
// how its process machinery is tested: Config.PID1 false keeps it away from
// the machine (no boot steps, no power-off, mounts in its own namespace).
package agent
