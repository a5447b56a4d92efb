// Package qemu is the Linux VM backend: each VM is a qemu-system-<arch> child
// process (KVM when it really boots a guest here, TCG otherwise) with the
// kernel, the agent's initramfs, the container's disks as virtio-blk,
// user-mode networking, and the agent channel on vhost-vsock or, where that
// is missing, a virtio-serial port whose QEMU end connects to a unix socket
// the host listens on. QEMU is driven over QMP (also a socket it connects
// to) so the backend knows when the guest opened the agent port and why the
// VM stopped.
//
// The implementation is Linux-only (parent-death signal, /proc); on other
// systems the package is empty.
package qemu
