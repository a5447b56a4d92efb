package cli

// Image commands over the engine API. Only one process may open state.db,
// so while an engine runs, `berth pull`, `berth images`, … must go through
// its socket instead of opening the store: storeOrEngine (image.go) runs
// these then, and the store-based halves otherwise. They read their flags
// by name, as `pull` and `image pull` are two commands with one flag set.

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func flagString(cmd *cobra.Command, name string) string {
	if f := cmd.Flags().Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

func flagBool(cmd *cobra.Command, name string) bool { return flagString(cmd, name) == "true" }

func apiPull(cmd *cobra.Command, args []string, c *client.Client) error {
	if len(args) != 1 {
		return fmt.Errorf("pull takes one image reference")
	}
	var opts client.ImagePullOptions
	if p := flagString(cmd, "platform"); p != "" {
		parts := strings.Split(p, "/")
		if len(parts) < 2 {
			return fmt.Errorf("invalid platform %q: use os/arch[/variant]", p)
		}
		pl := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
		if len(parts) > 2 {
			pl.Variant = parts[2]
		}
		opts.Platforms = []ocispec.Platform{pl}
	}
	resp, err := c.ImagePull(cmd.Context(), args[0], opts)
	if err != nil {
		return err
	}
	defer resp.Close()
	out := cmd.OutOrStdout()
	quiet := flagBool(cmd, "quiet")
	last := map[string]string{}
	err = DecodeProgress(resp, func(m jsonstream.Message) {
		if quiet || m.Status == "" || last[m.ID] == m.Status {
			return // byte counts repeat a status: one line per change
		}
		last[m.ID] = m.Status
		if m.ID != "" {
			fmt.Fprintf(out, "%s: %s\n", m.ID, m.Status)
		} else {
			fmt.Fprintln(out, m.Status)
		}
	})
	if err != nil {
		return err
	}
	if quiet {
		fmt.Fprintln(out, args[0])
	}
	return nil
}

func apiImages(cmd *cobra.Command, args []string, c *client.Client) error {
	res, err := c.ImageList(cmd.Context(), client.ImageListOptions{All: flagBool(cmd, "all")})
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if flagBool(cmd, "quiet") {
		for _, im := range res.Items {
			fmt.Fprintln(out, shortID(im.ID))
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
	for _, im := range res.Items {
		created := "N/A"
		if im.Created > 0 {
			created = units.HumanDuration(time.Since(time.Unix(im.Created, 0))) + " ago"
		}
		tags := im.RepoTags
		if len(tags) == 0 {
			tags = []string{"<none>:<none>"}
		}
		for _, t := range tags {
			repo, tag := t, "<none>"
			if i := strings.LastIndex(t, ":"); i > strings.LastIndex(t, "/") {
				repo, tag = t[:i], t[i+1:]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", repo, tag, shortID(im.ID), created, units.HumanSizeWithPrecision(float64(im.Size), 3))
		}
	}
	return tw.Flush()
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

func apiLoad(cmd *cobra.Command, args []string, c *client.Client) error {
	var in io.Reader = os.Stdin
	if p := flagString(cmd, "input"); p != "" {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return fmt.Errorf("loading an OCI layout directory (%s) needs the engine stopped: tar it up, or stop the engine", p)
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	} else if term.IsTerminal(int(os.Stdin.Fd())) {
		return fmt.Errorf("no archive to load: use -i FILE or pipe one into standard input")
	}
	var opts []client.ImageLoadOption
	if flagBool(cmd, "quiet") {
		opts = append(opts, client.ImageLoadWithQuiet(true))
	}
	resp, err := c.ImageLoad(cmd.Context(), in, opts...)
	if err != nil {
		return err
	}
	defer resp.Close()
	out := cmd.OutOrStdout()
	return DecodeProgress(resp, func(m jsonstream.Message) {
		if m.Stream != "" {
			fmt.Fprint(out, m.Stream)
		}
	})
}

func apiSave(cmd *cobra.Command, args []string, c *client.Client) error {
	if len(args) == 0 {
		return fmt.Errorf("save needs at least one image")
	}
	if f := flagString(cmd, "format"); f != "" && f != "docker" {
		return fmt.Errorf("--format %s is not available through the engine API (docker-archive only): stop the engine to save OCI archives", f)
	}
	var out io.Writer = cmd.OutOrStdout()
	outPath := flagString(cmd, "output")
	if outPath == "" && cmd.OutOrStdout() == os.Stdout && term.IsTerminal(int(os.Stdout.Fd())) {
		return fmt.Errorf("refusing to write an image archive to a terminal: use -o FILE or redirect the output")
	}
	resp, err := c.ImageSave(cmd.Context(), args)
	if err != nil {
		return err
	}
	defer resp.Close()
	if outPath != "" {
		// An interrupted save leaves no half archive.
		return writeAtomically(outPath, func(f *os.File) error {
			if _, err := io.Copy(f, resp); err != nil {
				return fmt.Errorf("save: %w", err)
			}
			return nil
		})
	}
	_, err = io.Copy(out, resp)
	return err
}

func apiTag(cmd *cobra.Command, args []string, c *client.Client) error {
	if len(args) != 2 {
		return fmt.Errorf("tag takes SOURCE and TARGET")
	}
	_, err := c.ImageTag(cmd.Context(), client.ImageTagOptions{Source: args[0], Target: args[1]})
	return err
}

func apiRmi(cmd *cobra.Command, args []string, c *client.Client) error {
	out := cmd.OutOrStdout()
	var failed []string
	for _, ref := range args {
		res, err := c.ImageRemove(cmd.Context(), ref, client.ImageRemoveOptions{Force: flagBool(cmd, "force"), PruneChildren: true})
		if err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "berth: "+err.Error())
			failed = append(failed, ref)
			continue
		}
		for _, d := range res.Items {
			if d.Untagged != "" {
				fmt.Fprintf(out, "Untagged: %s\n", d.Untagged)
			}
			if d.Deleted != "" {
				fmt.Fprintf(out, "Deleted: %s\n", d.Deleted)
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("could not remove %s", strings.Join(failed, ", "))
	}
	return nil
}

func apiImageInspect(cmd *cobra.Command, args []string, c *client.Client) error {
	var all []any
	for _, ref := range args {
		res, err := c.ImageInspect(cmd.Context(), ref)
		if err != nil {
			return err
		}
		all = append(all, res.InspectResponse)
	}
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "    ")
	return enc.Encode(all)
}

func apiImagePrune(cmd *cobra.Command, args []string, c *client.Client) error {
	f := make(client.Filters)
	if flagBool(cmd, "all") {
		f.Add("dangling", "false")
	}
	res, err := c.ImagePrune(cmd.Context(), client.ImagePruneOptions{Filters: f})
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	for _, d := range res.Report.ImagesDeleted {
		if d.Deleted != "" {
			fmt.Fprintf(out, "Deleted: %s\n", d.Deleted)
		}
	}
	fmt.Fprintf(out, "Total reclaimed space: %s\n", units.HumanSize(float64(res.Report.SpaceReclaimed)))
	return nil
}

func apiImport(cmd *cobra.Command, args []string, c *client.Client) error {
	return fmt.Errorf("import is not available while the engine runs (the engine API has no import yet): stop the engine, or `docker load` an image archive")
}
