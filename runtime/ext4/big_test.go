//go:build linux

package ext4

import (
	"os"
	"testing"
)

// A 1 TiB image (8192 groups): geometry at scale, and uninit_bg keeps it
// small on the host and quick for e2fsck (holes for unused inode tables and
// bitmaps, INODE_UNINIT groups skipped).
func TestOneTiBImage(t *testing.T) {
	t.Parallel()
	data := everyType(t)
	img, err := build(t, data, Options{Size: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(img)
	if d := blocksOnDisk(st); d > 4<<20 {
		t.Errorf("a 1 TiB image of a small tree occupies %d KiB on the host", d>>10)
	}
	checkImage(t, img, refApply(t, [][]byte{data}, false))
}
