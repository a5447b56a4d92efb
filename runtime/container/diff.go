package container

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/runtime/ext4"
)

// docker diff and docker commit compare two ext4 images: the container's
// root disk and the snapshot it was cloned from (the image flattened).
// There is no overlay upper directory to list, so a change is found by
// metadata: type, permission bits, owner, size, mtime, symlink target,
// device numbers and xattrs. A file rewritten with the same size and the
// same mtime (e.g. `touch -r`) is therefore not seen, the same trade-off
// rsync makes without --checksum; reading every file twice to compare
// contents would make diff as slow as a full export.
//
// Directories are compared without their size and mtime (both change
// whenever an entry does); instead every parent of a change is reported
// as changed, which is what Docker shows (overlay copies the parents up).

// change is one difference; entry is the container's (nil for a delete).
type change struct {
	kind  container.ChangeType
	path  string // slash separated, no leading slash
	entry *ext4.Entry
}

// runtimePaths are created or mounted over by the agent at every start
// (/etc/hosts, hostname and resolv.conf are bind-mounted, /dev, /proc and
// /sys are mount points): Docker keeps them out of diff and commit, since
// they belong to the runtime, not to the container's changes.
var runtimePaths = map[string]bool{
	"etc/hosts": true, "etc/hostname": true, "etc/resolv.conf": true,
	"dev": true, "proc": true, "sys": true,
}

func excluded(p string) bool {
	for q := p; q != "." && q != ""; q = path.Dir(q) {
		if runtimePaths[q] {
			return true
		}
	}
	return false
}

// readTree indexes every entry of an image by path ("" is the root).
func readTree(rd *ext4.Reader) (map[string]*ext4.Entry, error) {
	out := map[string]*ext4.Entry{}
	err := rd.Walk(func(e *ext4.Entry) error {
		out[e.Path] = e
		return nil
	})
	return out, err
}

// diffTrees lists what changed from base to cur, sorted by path (parents
// before children). Deletes are reported only at the top-most deleted
// path, as Docker does.
func diffTrees(base, cur *ext4.Reader) ([]change, error) {
	bt, err := readTree(base)
	if err != nil {
		return nil, fmt.Errorf("read the image's root filesystem: %w", err)
	}
	ct, err := readTree(cur)
	if err != nil {
		return nil, fmt.Errorf("read the container's root filesystem: %w", err)
	}
	return diffMaps(bt, ct), nil
}

func diffMaps(bt, ct map[string]*ext4.Entry) []change {
	found := map[string]change{}
	touched := map[string]bool{} // directories with a changed entry
	mark := func(p string) {
		for d := path.Dir(p); d != "." && d != "/" && d != ""; d = path.Dir(d) {
			touched[d] = true
		}
	}
	for p, e := range ct {
		if p == "" || excluded(p) {
			continue
		}
		b, ok := bt[p]
		switch {
		case !ok:
			found[p] = change{container.ChangeAdd, p, e}
			mark(p)
		case !sameMeta(b, e):
			found[p] = change{container.ChangeModify, p, e}
			mark(p)
		}
	}
	for p := range bt {
		if p == "" || excluded(p) {
			continue
		}
		if _, ok := ct[p]; ok {
			continue
		}
		parent := path.Dir(p)
		if parent == "." {
			parent = ""
		}
		// Only the top-most deleted path: its parent still exists as a
		// directory in the container (a parent turned into a file is
		// itself a change that hides the whole subtree).
		if pe, ok := ct[parent]; !ok || !pe.Mode.IsDir() {
			continue
		}
		if pb, ok := bt[parent]; !ok || !pb.Mode.IsDir() {
			continue
		}
		found[p] = change{container.ChangeDelete, p, nil}
		mark(p)
	}
	for d := range touched {
		if _, ok := found[d]; ok || excluded(d) {
			continue
		}
		if e, ok := ct[d]; ok {
			if _, inBase := bt[d]; inBase {
				found[d] = change{container.ChangeModify, d, e}
			}
		}
	}
	out := make([]change, 0, len(found))
	for _, c := range found {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return pathLess(out[i].path, out[j].path) })
	return out
}

// pathLess orders paths component by component, so a directory's entries
// follow it directly ("a", "a/b", "a-b"), as a layer tar needs.
func pathLess(a, b string) bool {
	return strings.ReplaceAll(a, "/", "\x00") < strings.ReplaceAll(b, "/", "\x00")
}

// sameMeta reports whether two entries look unchanged (see the top of
// this file for what is compared and why).
func sameMeta(a, b *ext4.Entry) bool {
	if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid || a.Link != b.Link ||
		a.Major != b.Major || a.Minor != b.Minor {
		return false
	}
	if !a.Mode.IsDir() && (a.Size != b.Size || !a.Mtime.Equal(b.Mtime)) {
		return false
	}
	if len(a.Xattrs) != len(b.Xattrs) {
		return false
	}
	for k, v := range a.Xattrs {
		w, ok := b.Xattrs[k]
		if !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// Diff lists the container's filesystem changes against its image, as
// `docker diff` shows them.
func (m *Manager) Diff(ctx context.Context, ref string) ([]container.FilesystemChange, error) {
	c, err := m.get(ref)
	if err != nil {
		return nil, err
	}
	var changes []change
	err = m.withDisks(ctx, c, func(base, cur *ext4.Reader) error {
		var err error
		changes, err = diffTrees(base, cur)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]container.FilesystemChange, 0, len(changes))
	for _, ch := range changes {
		out = append(out, container.FilesystemChange{Kind: ch.kind, Path: "/" + ch.path})
	}
	return out, nil
}

// withDisks runs fn on the image's snapshot and the container's root disk
// while the disk holds still. A stopped container's disk is read as it is
// (c.op keeps it from starting). A running one is synced by its agent, so
// the guest's dirty pages reach the disk file, and frozen while fn runs:
// a guest writing meanwhile would leave the metadata half-updated for the
// reader. The freeze is brief (one metadata walk, or one layer written)
// and not shown as a pause (no event, State stays running).
func (m *Manager) withDisks(ctx context.Context, c *ctr, fn func(base, cur *ext4.Reader) error) error {
	m.mu.Lock()
	imageID, arch, name := c.rec.ImageID, c.rec.Arch, c.rec.Name
	m.mu.Unlock()
	img, _, err := m.cfg.Images.Resolve(ctx, imageID, platformOf(arch))
	if err != nil {
		return errf(ErrConflict, "container %s: its image %s is no longer stored, so there is nothing to compare with: pull or load it again", name, imageID)
	}
	snap, err := m.cfg.Rootfs.Snapshot(ctx, img, imageID)
	if err != nil {
		return fmt.Errorf("root filesystem of image %s: %w", imageID, err)
	}
	bf, err := os.Open(snap)
	if err != nil {
		return fmt.Errorf("open the image's root filesystem: %w", err)
	}
	defer bf.Close()
	base, err := ext4.Open(bf)
	if err != nil {
		return fmt.Errorf("read the image's root filesystem %s: %w", snap, err)
	}

	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	rn := c.run
	_, still := m.byID[c.rec.ID]
	paused := rn != nil && rn.paused
	m.mu.Unlock()
	if !still {
		return errf(ErrNotFound, "no such container: %s", name)
	}
	if rn != nil {
		if paused {
			// Paused by the user: its dirty pages may not be on disk yet.
			// Let it run for the sync, then freeze it again.
			if err := rn.machine.Resume(); err != nil {
				return fmt.Errorf("container %s: resume for the sync: %w", name, err)
			}
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := rn.guest.Sync(sctx)
		cancel()
		if err != nil {
			if paused {
				rn.machine.Pause()
			}
			return fmt.Errorf("container %s: flush its filesystem (sync in the guest): %w", name, err)
		}
		if err := rn.machine.Pause(); err != nil {
			return fmt.Errorf("container %s: freeze it to read its disk: %w", name, err)
		}
		if !paused {
			defer func() {
				if err := rn.machine.Resume(); err != nil {
					m.log.Warn("resume after reading the disk", "id", c.rec.ID, "err", err)
					return
				}
				tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := rn.guest.SetTime(tctx, time.Now()); err != nil {
					m.log.Warn("set guest time after reading the disk", "id", c.rec.ID, "err", err)
				}
			}()
		}
	}
	f, err := os.Open(c.rootfs())
	if err != nil {
		return fmt.Errorf("open root filesystem of %s: %w", name, err)
	}
	defer f.Close()
	cur, err := ext4.Open(f)
	if err != nil {
		return fmt.Errorf("read root filesystem of %s: %w", name, err)
	}
	return fn(base, cur)
}
