// Package engine is Berth's composition root: it opens the data root and
// wires the image store, rootfs snapshots, kernel and initramfs, the VM
// backend (QEMU on Linux, Virtualization.framework on macOS) and the guest
// agent client into a container Manager. `berth daemon` and the macOS app
// both run exactly this.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berth-dev/berth/runtime/container"
	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/image"
	"github.com/berth-dev/berth/runtime/network"
	"github.com/berth-dev/berth/runtime/rootfs"
	"github.com/berth-dev/berth/runtime/state"
	"github.com/berth-dev/berth/runtime/vmm"
	"github.com/berth-dev/berth/runtime/volume"
)

// Options configure an engine.
type Options struct {
	Root dataroot.Root
	// GuestDir holds berth-agent and initramfs.cpio.gz per arch
	// (<GuestDir>/<arch>/…); "" finds it by the convention in GuestDirFor.
	GuestDir string
	// Kernel overrides the default guest kernel for every container.
	Kernel string
	// Arch is the default guest architecture ("" = the host's).
	Arch string
	// Backend overrides the platform's VM backend (tests).
	Backend vmm.Backend
	// DefaultCPUs / DefaultMemoryMiB size containers without --cpus/--memory.
	DefaultCPUs      int
	DefaultMemoryMiB int
	// BootTimeout bounds the wait for a guest's agent (0: the default).
	BootTimeout time.Duration
	Log         *slog.Logger
}

// Engine is one running Berth engine.
type Engine struct {
	Root       dataroot.Root
	DB         *state.DB
	Images     *image.Store
	Containers *container.Manager
	Volumes    *volume.Store
	Networks   *network.Store
	Events     *container.Events
	Boot       *BootFiles
	log        *slog.Logger
}

// Open opens the data root's database (failing fast if another engine
// holds it), cleans scratch space, builds every part and reconciles the
// containers a previous engine left behind.
func Open(ctx context.Context, o Options) (*Engine, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	db, err := state.Open(o.Root.StateDB())
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			db.Close()
		}
	}()
	// Scratch space is only ever used by a live engine: empty it.
	os.RemoveAll(o.Root.Tmp())
	if err := os.MkdirAll(o.Root.Tmp(), 0o700); err != nil {
		return nil, err
	}
	images, err := image.New(db, o.Root)
	if err != nil {
		return nil, err
	}
	vols, err := volume.Open(db, o.Root)
	if err != nil {
		return nil, err
	}
	nets, err := network.Open(db)
	if err != nil {
		return nil, err
	}
	backend := o.Backend
	if backend == nil {
		backend = platformBackend()
	}
	boot := &BootFiles{Root: o.Root, GuestDir: o.GuestDir, Kernel: o.Kernel}
	snaps := &rootfs.Snapshots{Dir: o.Root.Snapshots(), Warn: func(msg string) { o.Log.Warn("rootfs: " + msg) }}
	mgr, err := container.New(container.Config{
		DB: db, Root: o.Root,
		Images:   imageResolver{images},
		Rootfs:   snaps,
		Kernels:  boot,
		Backend:  backend,
		Dial:     dialGuest,
		Volumes:  vols,
		Networks: networkStore{nets},
		Arch:     o.Arch, DefaultCPUs: o.DefaultCPUs, DefaultMemoryMiB: o.DefaultMemoryMiB,
		KillStale: killStale, BootTimeout: o.BootTimeout,
		Log: o.Log,
	})
	if err != nil {
		return nil, err
	}
	images.InUse = func(d v1.Hash) bool { return mgr.ImageInUse(d.String()) }
	vols.InUse = mgr.VolumeUsers
	nets.ContainerName = mgr.ContainerName
	if err := nets.Reconcile(mgr.OnNetwork); err != nil {
		return nil, err
	}
	if err := mgr.Restore(ctx); err != nil {
		return nil, err
	}
	ok = true
	return &Engine{Root: o.Root, DB: db, Images: images, Containers: mgr, Volumes: vols, Networks: nets, Events: mgr.Events(), Boot: boot, log: o.Log}, nil
}

// Close stops every container gracefully and closes the database.
func (e *Engine) Close(ctx context.Context) error {
	err := e.Containers.Shutdown(ctx)
	// Pulled blobs are published before they reach the disk; wait for their
	// background sync so the next start has nothing to re-verify.
	e.Images.Sync()
	e.Networks.Close()
	if cerr := e.DB.Close(); err == nil {
		err = cerr
	}
	return err
}

// imageResolver adapts the image store to the container manager's seam and
// gives a missing image Docker's wording.
type imageResolver struct{ s *image.Store }

func (r imageResolver) Resolve(ctx context.Context, ref string, p v1.Platform) (v1.Image, string, error) {
	img, d, err := r.s.Resolve(ctx, ref, &p)
	if err != nil {
		if errors.Is(err, image.ErrNotFound) {
			return nil, "", &notFound{fmt.Sprintf("no such image: %s (pull or load it first: berth pull %s)", ref, ref)}
		}
		return nil, "", err
	}
	return img, d.String(), nil
}

type notFound struct{ msg string }

func (e *notFound) Error() string { return e.msg }
func (e *notFound) Unwrap() error { return container.ErrNotFound }
