package vmm

import (
	"crypto/sha256"
	"fmt"
)

// StableMAC derives a locally administered, unicast MAC address from a
// container ID, so a container keeps its address (and its DHCP lease)
// across restarts.
func StableMAC(id string) string {
	h := sha256.Sum256([]byte("berth-mac:" + id))
	h[0] = (h[0] | 0x02) &^ 0x01 // locally administered, unicast
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", h[0], h[1], h[2], h[3], h[4], h[5])
}
