package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/app/api"
	"github.com/berth-dev/berth/app/engine"
)

func init() {
	register(func(root *cobra.Command, g *Globals) {
		var guestDir, kernel, logLevel string
		var hosts []string
		var cpus, memMiB int
		cmd := &cobra.Command{
			Use:   "daemon",
			Short: "Run the engine in the foreground (headless), serving the Docker API on the data root's socket",
			Long: "Runs Berth's engine without the menu-bar app: containers, images and the Docker Engine API\n" +
				"on <data root>/berth.sock (mode 0600). SIGTERM or Ctrl-C stops every container gracefully.",
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				root, err := g.Root()
				if err != nil {
					return err
				}
				var lvl slog.Level
				if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
					return fmt.Errorf("--log-level %q: use debug, info, warn or error", logLevel)
				}
				log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
				ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
				defer stop()
				eng, err := engine.Open(ctx, engine.Options{Root: root, GuestDir: guestDir, Kernel: kernel,
					DefaultCPUs: cpus, DefaultMemoryMiB: memMiB, Log: log})
				if err != nil {
					return err
				}
				srv := api.New(api.Options{Version: Version, Backend: APIBackend(eng, root.Dir)})
				// Only the data root's 0600 socket, unless --host asks for
				// more (tcp:// is warned about: it is root-equivalent).
				lns, err := api.ListenHosts(root.Socket(), hosts, func(w string) { fmt.Fprintln(cmd.ErrOrStderr(), "berth daemon: "+w) })
				if err != nil {
					eng.Close(context.Background())
					return err
				}
				for _, ln := range lns {
					go srv.Serve(ln)
					fmt.Fprintf(cmd.OutOrStdout(), "berth daemon: listening on %s://%s\n", ln.Addr().Network(), ln.Addr().String())
				}
				fmt.Fprintf(cmd.OutOrStdout(), "berth daemon: point docker at it with: export DOCKER_HOST=unix://%s\n", root.Socket())
				<-ctx.Done()
				stop()
				fmt.Fprintln(cmd.OutOrStdout(), "berth daemon: stopping containers…")
				sctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				srv.Shutdown(sctx)
				err = eng.Close(sctx)
				os.Remove(root.Socket())
				return err
			},
		}
		cmd.Flags().StringVar(&guestDir, "guest-dir", "", "directory with <arch>/initramfs.cpio.gz (env "+engine.GuestDirEnv+")")
		cmd.Flags().StringVar(&kernel, "kernel", "", "guest kernel image for every container (default: newest /boot/vmlinuz-*)")
		cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
		cmd.Flags().StringArrayVarP(&hosts, "host", "H", nil, "serve the Docker API here instead (repeatable): unix:///path or tcp://HOST:PORT (no TLS: anyone who connects controls every container)")
		cmd.Flags().IntVar(&cpus, "default-cpus", 0, "vCPUs of containers without --cpus (default min(2, host CPUs))")
		cmd.Flags().IntVar(&memMiB, "default-memory", 0, "MiB of containers without --memory (default 512)")
		root.AddCommand(cmd)
	})
}

// APIBackend is what the Docker API server serves from an open engine: the
// headless daemon and the Mac app's in-process engine both use it.
func APIBackend(eng *engine.Engine, dataRoot string) api.Backend {
	return api.Backend{
		Images:     &api.ImageStore{Store: eng.Images, Publish: eng.Events.Publish},
		Containers: eng.Containers,
		Events:     eng.Events,
		Volumes:    &api.VolumeStore{Store: eng.Volumes, Publish: eng.Events.Publish},
		Networks:   &api.NetworkStore{Store: eng.Networks, Containers: eng.Containers, DefaultSubnet: eng.DefaultSubnet(), Publish: eng.Events.Publish},
		DataRoot:   dataRoot,
	}
}
