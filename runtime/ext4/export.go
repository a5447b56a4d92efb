package ext4

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
)

// WriteTar writes the image's whole tree as a PAX tar: ownership, modes,
// nanosecond times and xattrs preserved, hard links as link entries. The
// root's empty lost+found (an ext4 artefact) is left out.
func (rd *Reader) WriteTar(w io.Writer) error {
	tw := tar.NewWriter(w)
	firstPath := map[uint32]string{}
	buf := make([]byte, 1<<20)
	err := rd.Walk(func(e *Entry) error {
		if e.Path == "lost+found" && e.Mode.IsDir() {
			if ents, err := rd.readDir(e); err == nil && len(ents) == 0 {
				return nil
			}
		}
		hdr := &tar.Header{
			Name:       e.Path,
			Mode:       int64(e.Mode.Perm()),
			Uid:        int(e.Uid),
			Gid:        int(e.Gid),
			ModTime:    e.Mtime,
			AccessTime: e.Atime,
			ChangeTime: e.Ctime,
			Format:     tar.FormatPAX,
		}
		if e.Path == "" {
			hdr.Name = "./"
		}
		hdr.Mode |= modeBits(e)
		if len(e.Xattrs) > 0 {
			hdr.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				hdr.PAXRecords["SCHILY.xattr."+k] = string(v)
			}
		}
		var body io.Reader
		switch {
		case e.Mode.IsDir():
			hdr.Typeflag = tar.TypeDir
			if hdr.Name != "./" {
				hdr.Name += "/"
			}
		case e.Mode.IsRegular():
			if p, ok := firstPath[e.Ino]; ok && e.Nlink > 1 {
				hdr.Typeflag = tar.TypeLink
				hdr.Linkname = p
				break
			}
			firstPath[e.Ino] = e.Path
			hdr.Typeflag = tar.TypeReg
			hdr.Size = e.Size
			r, err := rd.OpenFile(e)
			if err != nil {
				return err
			}
			body = r
		case e.Mode.Type() == fs.ModeSymlink:
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = e.Link
		case e.Mode.Type() == fs.ModeDevice|fs.ModeCharDevice:
			hdr.Typeflag = tar.TypeChar
			hdr.Devmajor, hdr.Devminor = int64(e.Major), int64(e.Minor)
		case e.Mode.Type() == fs.ModeDevice:
			hdr.Typeflag = tar.TypeBlock
			hdr.Devmajor, hdr.Devminor = int64(e.Major), int64(e.Minor)
		case e.Mode.Type() == fs.ModeNamedPipe:
			hdr.Typeflag = tar.TypeFifo
		default:
			return nil // sockets have no tar form
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
		if body != nil {
			if _, err := io.CopyBuffer(tw, body, buf); err != nil {
				return fmt.Errorf("%s: %w", e.Path, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// modeBits returns the setuid/setgid/sticky bits in tar's numeric form.
func modeBits(e *Entry) int64 {
	var m int64
	if e.Mode&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if e.Mode&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if e.Mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}
