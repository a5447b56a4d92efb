package cli

// Image commands: pull, images, load, import, save, tag, rmi, and the
// `image` group (ls, inspect, prune, ...). Each works on the image store
// directly, or through the engine's API while an engine runs
// (storeOrEngine; the API halves are in client_images.go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/runtime/image"
	"github.com/berth-dev/berth/runtime/state"
)

func init() {
	register(func(root *cobra.Command, g *Globals) {
		root.AddCommand(pullCmd(g), imagesCmd(g, "images"), loadCmd(g), importCmd(g), saveCmd(g), tagCmd(g), rmiCmd(g, "rmi"))
		grp := &cobra.Command{Use: "image", Short: "Manage images"}
		grp.AddCommand(pullCmd(g), imagesCmd(g, "ls"), loadCmd(g), importCmd(g), saveCmd(g), tagCmd(g), rmiCmd(g, "rm"),
			imageInspectCmd(g), imagePruneCmd(g))
		root.AddCommand(grp)
	})
}

// withStore opens the data root's image store for one command. Only one
// process may open state.db: if an engine runs, the error says so.
func withStore(g *Globals, fn func(s *image.Store) error) error {
	root, err := g.Root()
	if err != nil {
		return err
	}
	db, err := state.Open(root.StateDB())
	if err != nil {
		return err
	}
	defer db.Close()
	s, err := image.New(db, root)
	if err != nil {
		return err
	}
	defer s.Sync() // blobs still syncing in the background are durable before exit
	return fn(s)
}

// interruptible returns a context canceled by Ctrl-C / SIGTERM, so an
// interrupted pull or load cleans up its temp files before exiting.
func interruptible(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// How an image command's direct work takes Ctrl-C (storeOrEngine).
const (
	quick       = false // short work: Ctrl-C simply ends the process
	cancellable = true  // Ctrl-C cancels the work, which removes its temp files
)

// storeOrEngine is the RunE of an image command. Only one process may open
// state.db, so while an engine runs the command goes through its API
// (viaEngine, client_images.go); otherwise it works on the store directly.
func storeOrEngine(g *Globals, interrupt bool,
	direct func(ctx context.Context, cmd *cobra.Command, args []string, s *image.Store) error,
	viaEngine func(cmd *cobra.Command, args []string, c *client.Client) error,
) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if g.EngineRunning() {
			return onEngine(g, viaEngine)(cmd, args)
		}
		ctx := cmd.Context()
		if interrupt {
			var cancel context.CancelFunc
			ctx, cancel = interruptible(ctx)
			defer cancel()
		}
		return withStore(g, func(s *image.Store) error { return direct(ctx, cmd, args, s) })
	}
}

func pullCmd(g *Globals) *cobra.Command {
	var platform string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "pull [--platform OS/ARCH] IMAGE",
		Short: "Download an image from a registry",
		Args:  imageArgs(1, "berth pull IMAGE"),
		RunE: storeOrEngine(g, cancellable, func(ctx context.Context, cmd *cobra.Command, args []string, s *image.Store) error {
			return PullImage(ctx, s, args[0], platform, cmd.OutOrStdout(), quiet)
		}, apiPull),
	}
	cmd.Flags().StringVar(&platform, "platform", "", "platform to pull from a multi-platform image, e.g. linux/arm64 (default: linux/<host arch>)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the image name")
	return cmd
}

// PullImage pulls ref into s, drawing per-layer progress on out (bars on a
// terminal, one line per layer state change otherwise).
func PullImage(ctx context.Context, s *image.Store, ref, platform string, out io.Writer, quiet bool) error {
	plat, err := optionalPlatform(platform)
	if err != nil {
		return err
	}
	opts := image.PullOptions{Platform: plat}
	var bar *ProgressView
	if !quiet {
		bar = NewProgressView(out, IsTerminal(out))
		opts.Progress = bar.Handle
		fmt.Fprintf(out, "Pulling %s\n", ref)
	}
	rec, err := s.Pull(ctx, ref, opts)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	if quiet {
		fmt.Fprintln(out, ref)
		return nil
	}
	fmt.Fprintf(out, "Digest: %s\nPulled %s (%s, %s)\n", rec.Digest, ref, rec.Platform.String(), imageSize(rec.Size))
	return nil
}

func imagesCmd(g *Globals, use string) *cobra.Command {
	var quiet, digests bool
	cmd := &cobra.Command{
		Use:   use + " [-q]",
		Short: "List images",
		Args:  imageArgs(0, "berth "+use),
		RunE: storeOrEngine(g, quick, func(ctx context.Context, cmd *cobra.Command, args []string, s *image.Store) error {
			return ListImages(s, cmd.OutOrStdout(), quiet, digests)
		}, apiImages),
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only image IDs")
	cmd.Flags().BoolVar(&digests, "digests", false, "show manifest digests")
	return cmd
}

// ListImages prints s's images as a table, one row per tag.
func ListImages(s *image.Store, out io.Writer, quiet, digests bool) error {
	imgs, err := s.List()
	if err != nil {
		return err
	}
	if quiet {
		for _, im := range imgs {
			fmt.Fprintln(out, im.ID())
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	hdr := "REPOSITORY\tTAG\tIMAGE ID\tPLATFORM\tCREATED\tSIZE"
	if digests {
		hdr = "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tPLATFORM\tCREATED\tSIZE"
	}
	fmt.Fprintln(tw, hdr)
	for _, im := range imgs {
		tags := im.Tags
		if len(tags) == 0 {
			tags = []string{"<none>:<none>"}
		}
		for _, t := range tags {
			i := strings.LastIndex(t, ":")
			repo, tag := t[:i], t[i+1:]
			row := []string{repo, tag}
			if digests {
				row = append(row, im.Digest.String())
			}
			row = append(row, im.ID(), im.Platform.String(), imageAge(im.Created), imageSize(im.Size))
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
	}
	return tw.Flush()
}

func loadCmd(g *Globals) *cobra.Command {
	var input, platform string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [-i FILE]",
		Short: "Load images from a docker-archive or OCI archive (tar, tar.gz, tar.zst) or an OCI layout directory",
		Args:  imageArgs(0, "berth load -i FILE"),
		RunE: storeOrEngine(g, cancellable, func(ctx context.Context, cmd *cobra.Command, args []string, s *image.Store) error {
			return LoadImages(ctx, s, input, platform, cmd.InOrStdin(), cmd.OutOrStdout(), quiet)
		}, apiLoad),
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "archive file or OCI layout directory (default: standard input)")
	cmd.Flags().StringVar(&platform, "platform", "", "platform to take from multi-platform archives")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress output")
	return cmd
}

// LoadImages loads input ("" or "-" = stdin) into s and names what it loaded.
func LoadImages(ctx context.Context, s *image.Store, input, platform string, stdin io.Reader, out io.Writer, quiet bool) error {
	plat, err := optionalPlatform(platform)
	if err != nil {
		return err
	}
	opts := image.LoadOptions{Platform: plat}
	var view *ProgressView
	if !quiet && IsTerminal(out) {
		view = NewProgressView(out, true)
		opts.Progress = view.Handle
	}
	var imgs []image.Image
	if input == "" || input == "-" {
		if f, ok := stdin.(*os.File); ok && IsTerminal(f) {
			return errors.New("no input: give an archive with -i FILE or pipe one to standard input")
		}
		imgs, err = s.Load(ctx, stdin, opts)
	} else {
		imgs, err = s.LoadPath(ctx, input, opts)
	}
	if view != nil {
		view.Finish()
	}
	if err != nil {
		if input != "" && input != "-" {
			return fmt.Errorf("load %s: %w", input, err)
		}
		return fmt.Errorf("load: %w", err)
	}
	for _, im := range imgs {
		if len(im.Tags) == 0 {
			fmt.Fprintf(out, "Loaded image ID: sha256:%s\n", im.Config.Hex)
		}
		for _, t := range im.Tags {
			fmt.Fprintf(out, "Loaded image: %s\n", t)
		}
	}
	return nil
}

func importCmd(g *Globals) *cobra.Command {
	var platform string
	cmd := &cobra.Command{
		Use:   "import FILE NAME[:TAG]",
		Short: "Make a one-layer image from a root filesystem tar (FILE - reads standard input)",
		Args:  imageArgs(2, "berth import FILE NAME"),
		RunE: storeOrEngine(g, cancellable, func(ctx context.Context, cmd *cobra.Command, args []string, s *image.Store) error {
			return ImportImage(ctx, s, args[0], args[1], platform, cmd.InOrStdin(), cmd.OutOrStdout())
		}, apiImport),
	}
	cmd.Flags().StringVar(&platform, "platform", "", "platform to record in the image (default: linux/<host arch>)")
	return cmd
}

// ImportImage imports the root filesystem tar file (or stdin for "-") as name.
func ImportImage(ctx context.Context, s *image.Store, file, name, platform string, stdin io.Reader, out io.Writer) error {
	plat, err := optionalPlatform(platform)
	if err != nil {
		return err
	}
	opts := image.ImportOptions{Platform: plat}
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		r = f
	}
	rec, err := s.Import(ctx, r, name, opts)
	if err != nil {
		return fmt.Errorf("import %s: %w", file, err)
	}
	fmt.Fprintf(out, "sha256:%s\n", rec.Config.Hex)
	return nil
}

func saveCmd(g *Globals) *cobra.Command {
	var output, format string
	cmd := &cobra.Command{
		Use:   "save [-o FILE] [--format docker|oci] IMAGE...",
		Short: "Write images to a tar archive (docker-archive or OCI)",
		Args:  imageMinArgs(1, "berth save -o FILE IMAGE..."),
		RunE: storeOrEngine(g, cancellable, func(ctx context.Context, cmd *cobra.Command, args []string, s *image.Store) error {
			return SaveImages(ctx, s, args, output, format, cmd.OutOrStdout())
		}, apiSave),
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "file to write (default: standard output, if it is not a terminal)")
	cmd.Flags().StringVar(&format, "format", image.FormatDocker, "archive format: docker or oci")
	return cmd
}

// SaveImages writes refs to output, atomically: a failed save leaves no file.
func SaveImages(ctx context.Context, s *image.Store, refs []string, output, format string, stdout io.Writer) error {
	if output == "" || output == "-" {
		if IsTerminal(stdout) {
			return errors.New("refusing to write an archive to a terminal: use -o FILE or redirect standard output")
		}
		return s.Save(ctx, stdout, refs, format)
	}
	err := writeAtomically(output, func(f *os.File) error { return s.Save(ctx, f, refs, format) })
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

func tagCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE TARGET",
		Short: "Give an image another name",
		Args:  imageArgs(2, "berth tag SOURCE TARGET"),
		RunE: storeOrEngine(g, quick, func(ctx context.Context, cmd *cobra.Command, args []string, s *image.Store) error {
			return s.Tag(args[0], args[1])
		}, apiTag),
	}
}

func rmiCmd(g *Globals, use string) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   use + " [-f] IMAGE...",
		Short: "Remove images (untag, or delete when the last name goes)",
		Args:  imageMinArgs(1, "berth "+use+" IMAGE..."),
		RunE: storeOrEngine(g, quick, func(ctx context.Context, cmd *cobra.Command, args []string, s *image.Store) error {
			return RemoveImages(s, args, force, cmd.OutOrStdout())
		}, apiRmi),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove even if tagged several times or used by a container")
	return cmd
}

// RemoveImages removes each ref, reporting like docker; it goes on past a
// failure and returns the errors joined.
func RemoveImages(s *image.Store, refs []string, force bool, out io.Writer) error {
	var errs []string
	for _, r := range refs {
		res, err := s.Remove(r, force)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		for _, t := range res.Untagged {
			fmt.Fprintf(out, "Untagged: %s\n", t)
		}
		for _, d := range res.Deleted {
			fmt.Fprintf(out, "Deleted: %s\n", d)
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; ")) // one line, as every CLI error
	}
	return nil
}

func imageInspectCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect IMAGE...",
		Short: "Show images' config, layers, sizes and platform as JSON",
		Args:  imageMinArgs(1, "berth image inspect IMAGE..."),
		RunE: storeOrEngine(g, quick, func(ctx context.Context, cmd *cobra.Command, args []string, s *image.Store) error {
			return InspectImages(s, args, cmd.OutOrStdout())
		}, apiImageInspect),
	}
}

// InspectImages prints a JSON array of details, one per ref.
func InspectImages(s *image.Store, refs []string, out io.Writer) error {
	var all []*image.Details
	for _, r := range refs {
		d, err := s.Inspect(r)
		if err != nil {
			return err
		}
		all = append(all, d)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(all)
}

func imagePruneCmd(g *Globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "prune [-a]",
		Short: "Remove untagged images (all unused ones with -a) and unreferenced blobs",
		Args:  imageArgs(0, "berth image prune"),
		RunE: storeOrEngine(g, quick, func(ctx context.Context, cmd *cobra.Command, args []string, s *image.Store) error {
			return PruneImages(s, all, cmd.OutOrStdout())
		}, apiImagePrune),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove every image no container uses, not just untagged ones")
	return cmd
}

// PruneImages prunes s and reports what went.
func PruneImages(s *image.Store, all bool, out io.Writer) error {
	res, err := s.Prune(all)
	if err != nil {
		return err
	}
	for _, d := range res.Deleted {
		fmt.Fprintf(out, "Deleted: %s\n", d)
	}
	fmt.Fprintf(out, "Total reclaimed space: %s (%d blobs)\n", imageSize(res.Reclaimed), res.Blobs)
	return nil
}

// optionalPlatform parses a --platform flag; "" gives nil (the default).
func optionalPlatform(s string) (*v1.Platform, error) {
	if s == "" {
		return nil, nil
	}
	p, err := image.ParsePlatform(s)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

func imageArgs(n int, usage string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%q takes %d argument(s), got %d: usage: %s", cmd.CommandPath(), n, len(args), usage)
		}
		return nil
	}
}

func imageMinArgs(n int, usage string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return fmt.Errorf("%q needs at least %d argument(s): usage: %s", cmd.CommandPath(), n, usage)
		}
		return nil
	}
}

// humanSize prints bytes the way docker does (decimal units).
func imageSize(n int64) string {
	f := float64(n)
	for _, u := range []string{"B", "kB", "MB", "GB", "TB"} {
		if f < 1000 || u == "TB" {
			if u == "B" {
				return fmt.Sprintf("%dB", n)
			}
			return fmt.Sprintf("%.3g%s", f, u)
		}
		f /= 1000
	}
	return ""
}

func imageAge(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "Less than a minute ago"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours ago", int(d.Hours()))
	case d < 60*24*time.Hour:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	case d < 2*365*24*time.Hour:
		return fmt.Sprintf("%d months ago", int(d.Hours()/24/30))
	}
	return fmt.Sprintf("%d years ago", int(d.Hours()/24/365))
}
