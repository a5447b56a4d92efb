package container

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/moby/moby/api/types/mount"

	"github.com/berth-dev/berth/runtime/ext4"
)

// copyUpVolumes fills each empty volume from the image, as Docker does: a
// volume mounted over /usr/share/nginx/html starts with nginx's page, one
// over a database's data directory with its owner and mode. It reads the
// container's fresh root filesystem (the image's content) and writes
// through an os.Root opened on the volume's directory, so nothing an image
// names — "..", absolute symlinks — lands outside it. A volume that already
// holds anything, or one mounted nocopy, is left alone.
func copyUpVolumes(specs []mountSpec, vols Volumes, rootfs string) error {
	var toFill []mountSpec
	for _, m := range specs {
		if m.Type != mount.TypeVolume || m.NoCopy || vols == nil {
			continue
		}
		ents, err := os.ReadDir(vols.Path(m.Source))
		if err != nil {
			return fmt.Errorf("%s: %w", describeMount(m), err)
		}
		if len(ents) == 0 {
			toFill = append(toFill, m)
		}
	}
	if len(toFill) == 0 {
		return nil
	}
	f, err := os.Open(rootfs)
	if err != nil {
		return err
	}
	defer f.Close()
	rd, err := ext4.Open(f)
	if err != nil {
		return fmt.Errorf("read the root filesystem: %w", err)
	}
	paths, err := diskPaths(rd)
	if err != nil {
		return err
	}
	for _, m := range toFill {
		target, err := resolveOnDisk(m.Target, paths)
		if errors.Is(err, ErrNotFound) || (err == nil && !paths[target].mode.IsDir()) {
			continue // nothing there in the image (or not a directory): the volume stays empty
		}
		if err != nil {
			return fmt.Errorf("%s: %w", describeMount(m), err)
		}
		root, err := os.OpenRoot(vols.Path(m.Source))
		if err != nil {
			return err
		}
		err = copyTree(rd, target, root)
		if err != nil {
			// The volume was empty: leave it so, not half filled.
			if ents, rerr := os.ReadDir(vols.Path(m.Source)); rerr == nil {
				for _, e := range ents {
					root.RemoveAll(e.Name())
				}
			}
		}
		root.Close()
		if err != nil {
			return fmt.Errorf("%s: fill the new volume from the image: %w", describeMount(m), err)
		}
	}
	return nil
}

// copyTree copies the image's directory target into root: directories,
// files (hard links become copies), symlinks as they are; owners, modes
// and times kept. Devices, fifos and sockets are skipped.
func copyTree(rd *ext4.Reader, target string, root *os.Root) error {
	buf := make([]byte, 256<<10)
	type dirTime struct {
		name string
		e    *ext4.Entry
	}
	var dirs []dirTime // times set last: writing entries changes them
	err := walkResolved(rd, target, ".", func(e *ext4.Entry, name string) error {
		switch {
		case e.Mode.IsDir():
			if name != "." {
				if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
					return err
				}
			}
			dirs = append(dirs, dirTime{name, e})
		case e.Mode.IsRegular():
			w, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			r, err := rd.OpenFile(e)
			if err == nil {
				_, err = io.CopyBuffer(w, r, buf)
			}
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case e.Mode&fs.ModeSymlink != 0:
			if err := root.Symlink(e.Link, name); err != nil {
				return err
			}
			return owner(root, name, e)
		default:
			return nil
		}
		if err := owner(root, name, e); err != nil {
			return err
		}
		if err := root.Chmod(name, e.Mode.Perm()|e.Mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
		if e.Mode.IsRegular() {
			return root.Chtimes(name, e.Atime, e.Mtime)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		root.Chtimes(dirs[i].name, dirs[i].e.Atime, dirs[i].e.Mtime)
	}
	return nil
}

// owner gives name the image's owner. Without the privilege to (Berth.app
// runs as the Mac user) the files stay the user's, which is what the VM
// sees through virtiofs anyway.
func owner(root *os.Root, name string, e *ext4.Entry) error {
	err := root.Lchown(name, int(e.Uid), int(e.Gid))
	if errors.Is(err, syscall.EPERM) {
		return nil
	}
	return err
}
