//go:build linux

package rootfs

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime/ext4"
)

// On a filesystem with reflinks (XFS here), Clone is FICLONE: O(1), sharing
// every block with the snapshot.
func TestCloneReflinkXFS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root for a loop mount (CI runs as root)")
	}
	mkfs, err := exec.LookPath("mkfs.xfs")
	if err != nil {
		t.Fatal("mkfs.xfs not found: install the xfsprogs package")
	}
	dir := t.TempDir()
	dev := filepath.Join(dir, "xfs.img")
	f, _ := os.Create(dev)
	f.Truncate(1 << 30)
	f.Close()
	if out, err := exec.Command(mkfs, "-q", "-m", "reflink=1", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v: %s", err, out)
	}
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o700)
	if out, err := exec.Command("mount", "-o", "loop", dev, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount xfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })

	// A snapshot with 64 MiB of incompressible data.
	payload := make([]byte, 64<<20)
	rand.Read(payload)
	snap := filepath.Join(mnt, "snap.ext4")
	sf, _ := os.Create(snap)
	err = BuildFromTar(context.Background(), sf, bytes.NewReader(tarOf(t, map[string]string{"blob": string(payload)})), ext4.Options{Size: 256 << 20})
	sf.Sync()
	sf.Close()
	if err != nil {
		t.Fatal(err)
	}
	before := usedBytes(t, mnt)
	dst := filepath.Join(mnt, "clone.ext4")
	if err := Clone(snap, dst); err != nil {
		t.Fatal(err)
	}
	grew := usedBytes(t, mnt) - before
	if grew > 8<<20 {
		t.Errorf("clone used %d MiB more on XFS; a reflink shares the blocks", grew>>20)
	}
	fsck(t, dst)
	tree := readTree(t, dst)
	if tree["blob"] != string(payload) {
		t.Error("cloned image content differs")
	}
}

func usedBytes(t *testing.T, path string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}
