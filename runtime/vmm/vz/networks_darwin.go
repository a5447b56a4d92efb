//go:build darwin

package vz

import (
	"fmt"
	"os"
	"syscall"

	vzf "github.com/Code-Hex/vz/v3"
)

// userNetworks builds one virtio-net device per user network, each on a
// VZFileHandleNetworkDeviceAttachment over the VM's end of the network's
// switch socket (one Ethernet frame per datagram, the framework's format).
//
// vz v3.7.1 wraps the raw fd in an NSFileHandle without dup'ing it and
// without closing it on dealloc, while vmm.NetworkAttachment lets the caller
// close its File once Start returns. So each socket is dup'ed here and the
// dup goes into the returned keep list: it stays open for as long as the
// machine (and with it the framework's objects) is reachable, and the
// *os.File finalizer closes it after that — the lifetime vz's later fix
// (84a9a94: dup + close on dealloc) gives it.
func userNetworks(nics []userNIC) ([]*vzf.VirtioNetworkDeviceConfiguration, []any, error) {
	var out []*vzf.VirtioNetworkDeviceConfiguration
	var keep []any
	for i, n := range nics {
		eth := fmt.Sprintf("network %d (eth%d)", i+1, i+1)
		fd, err := syscall.Dup(int(n.File.Fd()))
		if err != nil {
			return nil, nil, fmt.Errorf("vz: %s: dup socket: %w", eth, err)
		}
		syscall.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), n.File.Name())
		att, err := vzf.NewFileHandleNetworkDeviceAttachment(f)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("vz: %s: %w (want the VM's end from netswitch.Attach)", eth, err)
		}
		nic, err := vzf.NewVirtioNetworkDeviceConfiguration(att)
		if err != nil {
			return nil, nil, fmt.Errorf("vz: %s: network device: %w", eth, err)
		}
		mac, err := vzf.NewMACAddress(n.MAC)
		if err != nil {
			return nil, nil, fmt.Errorf("vz: %s: MAC %s: %w", eth, n.MAC, err)
		}
		nic.SetMACAddress(mac)
		out, keep = append(out, nic), append(keep, f, att, nic, mac)
	}
	return out, keep, nil
}
