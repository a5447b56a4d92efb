package cli

// `berth rootfs create` and `berth export IMAGE`: ext4 root filesystems from
// images or tarballs, and images flattened back to one tar.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/runtime/atomicfile"
	"github.com/berth-dev/berth/runtime/ext4"
	"github.com/berth-dev/berth/runtime/image"
	"github.com/berth-dev/berth/runtime/rootfs"
	"github.com/berth-dev/berth/runtime/state"
)

func init() {
	register(func(root *cobra.Command, g *Globals) {
		rc := &cobra.Command{Use: "rootfs", Short: "Build ext4 root filesystems"}
		rc.AddCommand(rootfsCreateCmd(g))
		root.AddCommand(rc, exportCmd(g))
	})
}

func rootfsCreateCmd(g *Globals) *cobra.Command {
	var size, tarFile, platform string
	cmd := &cobra.Command{
		Use:   "create [--size N] (--tar FILE | IMAGE) OUT.ext4",
		Short: "Write an image or a tarball as a sparse ext4 filesystem image",
		Long: "Write an image's flattened layers (or one tar, plain/gzip/zstd; - for stdin) as a sparse,\n" +
			"writable ext4 image. The file's apparent size is --size (default 64G); it only occupies\n" +
			"what the files need.",
		Args: func(cmd *cobra.Command, args []string) error {
			if tarFile != "" && len(args) != 1 {
				return errors.New("usage: berth rootfs create --tar FILE OUT.ext4")
			}
			if tarFile == "" && len(args) != 2 {
				return errors.New("usage: berth rootfs create [--size N] (--tar FILE | IMAGE) OUT.ext4")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := units.RAMInBytes(size)
			if err != nil || n <= 0 {
				return fmt.Errorf("--size %q: want a size like 512M, 8G or 64G", size)
			}
			out := args[len(args)-1]
			opts := ext4.Options{Size: n, Warn: func(m string) { fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+m) }}
			ctx := cmd.Context()
			if tarFile != "" {
				in := io.Reader(cmd.InOrStdin())
				if tarFile != "-" {
					f, err := os.Open(tarFile)
					if err != nil {
						return err
					}
					defer f.Close()
					in = f
				}
				if err := writeAtomically(out, func(f *os.File) error { return rootfs.BuildFromTar(ctx, f, in, opts) }); err != nil {
					return err
				}
				return printUsage(cmd.OutOrStdout(), out)
			}
			img, _, done, err := resolveImage(ctx, g, args[0], platform)
			if err != nil {
				return err
			}
			defer done()
			if err := writeAtomically(out, func(f *os.File) error { return rootfs.Build(ctx, f, img, opts) }); err != nil {
				return err
			}
			return printUsage(cmd.OutOrStdout(), out)
		},
	}
	cmd.Flags().StringVar(&size, "size", "64G", "apparent size of the image (sparse)")
	cmd.Flags().StringVar(&tarFile, "tar", "", "build from this tar file (plain, gzip or zstd; - for stdin) instead of an image")
	cmd.Flags().StringVar(&platform, "platform", "", "image platform (default: this machine's)")
	return cmd
}

func exportCmd(g *Globals) *cobra.Command {
	var output, platform string
	cmd := &cobra.Command{
		Use:   "export IMAGE [-o FILE.tar]",
		Short: "Write an image's flattened filesystem as a tar archive",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			img, _, done, err := resolveImage(ctx, g, args[0], platform)
			if err != nil {
				return err
			}
			defer done()
			tmp, err := os.CreateTemp("", "berth-export-*.ext4")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			defer tmp.Close()
			if err := rootfs.Build(ctx, tmp, img, ext4.Options{Warn: func(m string) { fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+m) }}); err != nil {
				return err
			}
			rd, err := ext4.Open(tmp)
			if err != nil {
				return err
			}
			if output == "" || output == "-" {
				if isTerminal(cmd.OutOrStdout()) {
					return errors.New("refusing to write a tar to a terminal: use -o FILE.tar or redirect stdout")
				}
				return rd.WriteTar(cmd.OutOrStdout())
			}
			return writeAtomically(output, func(f *os.File) error { return rd.WriteTar(f) })
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to FILE instead of stdout")
	cmd.Flags().StringVar(&platform, "platform", "", "image platform (default: this machine's)")
	return cmd
}

// printUsage reports what the new image holds, e.g.
// "out.ext4: 1532 files, 12.3MiB used of 64GiB".
func printUsage(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rd, err := ext4.Open(f)
	if err != nil {
		return err
	}
	u := rd.Usage()
	used := int64((u.Blocks - u.FreeBlocks) * u.BlockSize)
	files := u.Inodes - u.FreeInodes - 10 // inodes 1..10 are reserved
	fmt.Fprintf(w, "%s: %d files, %s used of %s\n", path, files,
		units.BytesSize(float64(used)), units.BytesSize(float64(u.Blocks*u.BlockSize)))
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// writeAtomically writes path (0644) through a temp file in the same
// directory and renames it into place only on success.
func writeAtomically(path string, write func(f *os.File) error) error {
	return atomicfile.Write(path, 0o644, "", write)
}

// resolveImage finds a local image. With an engine running, the image comes
// through its API (`docker save` form): only the engine opens the store.
// Otherwise the store is read directly.
func resolveImage(ctx context.Context, g *Globals, ref, platform string) (v1.Image, string, func(), error) {
	plat, err := optionalPlatform(platform)
	if err != nil {
		return nil, "", nil, err
	}
	if plat == nil {
		p := image.DefaultPlatform()
		plat = &p
	}
	if g.EngineRunning() {
		c, err := g.Client()
		if err != nil {
			return nil, "", nil, err
		}
		defer c.Close()
		res, err := c.ImageSave(ctx, []string{ref})
		if err != nil {
			return nil, "", nil, err
		}
		defer res.Close()
		tmp, err := os.CreateTemp("", "berth-image-*.tar")
		if err != nil {
			return nil, "", nil, err
		}
		done := func() { tmp.Close(); os.Remove(tmp.Name()) }
		if _, err := io.Copy(tmp, res); err != nil {
			done()
			return nil, "", nil, fmt.Errorf("fetch %s from the engine: %w", ref, err)
		}
		img, err := tarball.ImageFromPath(tmp.Name(), nil)
		if err != nil {
			done()
			return nil, "", nil, fmt.Errorf("read %s from the engine: %w", ref, err)
		}
		d, _ := img.Digest()
		return img, d.String(), done, nil
	}
	root, err := g.Root()
	if err != nil {
		return nil, "", nil, err
	}
	db, err := state.Open(root.StateDB())
	if err != nil {
		return nil, "", nil, fmt.Errorf("open the image store: %w", err)
	}
	store, err := image.New(db, root)
	if err != nil {
		db.Close()
		return nil, "", nil, err
	}
	// Sync: the store may still be syncing blobs in the background (a
	// recovered pull's); the process must not exit before they are durable.
	done := func() {
		store.Sync()
		db.Close()
	}
	img, d, err := store.Resolve(ctx, ref, plat)
	if err != nil {
		done()
		return nil, "", nil, err
	}
	return img, d.String(), done, nil
}
