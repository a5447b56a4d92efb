package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func init() {
	register(func(root *cobra.Command, g *Globals) {
		root.AddCommand(runCmd(g), createCmd(g), startCmd(g), stopCmd(g, "stop"), stopCmd(g, "restart"),
			killCmd(g), rmCmd(g), psCmd(g), execCmd(g), logsCmd(g), inspectCmd(g), waitCmd(g), statsCmd(g), portCmd(g))
	})
}

func runCmd(g *Globals) *cobra.Command {
	var f createFlags
	var detach bool
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [COMMAND] [ARG...]",
		Short: "Create and start a container in its own VM",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options(args)
			if err != nil {
				return err
			}
			if f.tty {
				opts.HostConfig.ConsoleSize = [2]uint{}
				if sz := terminalSize(); sz != nil {
					opts.HostConfig.ConsoleSize = *sz
				}
			}
			return withEngine(g, func(cli *client.Client) error {
				ctx := cmd.Context()
				if ctx == nil {
					ctx = context.Background()
				}
				id, err := createContainer(ctx, cli, opts, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				if detach {
					if _, err := cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
						return err
					}
					fmt.Fprintln(cmd.OutOrStdout(), id)
					return nil
				}
				return runAttached(ctx, cmd, cli, id, f)
			})
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "run in the background and print the container ID")
	return cmd
}

// runAttached is `run` without -d: attach before start (no output is
// lost), start, stream, and exit with the container's status.
func runAttached(ctx context.Context, cmd *cobra.Command, cli *client.Client, id string, f createFlags) error {
	att, err := cli.ContainerAttach(ctx, id, client.ContainerAttachOptions{
		Stream: true, Stdin: f.interactive, Stdout: true, Stderr: true, DetachKeys: f.detachKeys,
	})
	if err != nil {
		return err
	}
	defer att.Close()
	cond := container.WaitConditionNextExit
	if f.rm {
		cond = container.WaitConditionRemoved
	}
	wait := cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: cond})
	if _, err := cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		if f.rm {
			cli.ContainerRemove(context.Background(), id, client.ContainerRemoveOptions{Force: true})
		}
		// Docker's statuses for a run whose start failed.
		fmt.Fprintln(cmd.ErrOrStderr(), "berth:", err)
		msg := strings.ToLower(err.Error())
		switch {
		case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory"):
			return ExitError{Code: 127}
		case strings.Contains(msg, "permission denied"):
			return ExitError{Code: 126}
		}
		return ExitError{Code: 125}
	}
	stream(ctx, cmd, att.HijackedResponse, f.tty, f.interactive, func(ctx context.Context, h, w uint) {
		cli.ContainerResize(ctx, id, client.ContainerResizeOptions{Height: h, Width: w})
	})
	errOut := cmd.ErrOrStderr()
	select {
	case res := <-wait.Result:
		if res.Error != nil && res.Error.Message != "" {
			fmt.Fprintln(errOut, "berth:", res.Error.Message)
		}
		if res.StatusCode != 0 {
			return ExitError{Code: int(res.StatusCode)}
		}
		return nil
	case err := <-wait.Error:
		return err
	}
}

// stream joins an attached session (run, start -a, exec) to this terminal
// until its output ends: stdout/stderr out, stdin in when interactive and,
// for a tty, the terminal raw and its size forwarded through resize.
func stream(ctx context.Context, cmd *cobra.Command, att client.HijackedResponse, tty, interactive bool, resize func(ctx context.Context, h, w uint)) {
	restore := func() {}
	if tty && interactive {
		restore = rawTerminal()
	}
	defer restore()
	if tty {
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		forwardResizes(rctx, func(h, w uint) { resize(rctx, h, w) })
	}
	if interactive {
		go func() {
			io.Copy(att.Conn, os.Stdin)
			att.CloseWrite()
		}()
	}
	if tty {
		io.Copy(cmd.OutOrStdout(), att.Reader)
	} else {
		stdcopy.StdCopy(cmd.OutOrStdout(), cmd.ErrOrStderr(), att.Reader)
	}
}

func createCmd(g *Globals) *cobra.Command {
	var f createFlags
	cmd := &cobra.Command{
		Use:   "create [flags] IMAGE [COMMAND] [ARG...]",
		Short: "Create a container (its root filesystem) without starting it",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options(args)
			if err != nil {
				return err
			}
			return withEngine(g, func(cli *client.Client) error {
				id, err := createContainer(cmd.Context(), cli, opts, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), id)
				return nil
			})
		},
	}
	f.add(cmd)
	return cmd
}

// each runs fn for every argument, printing the argument on success and
// reporting all failures (Docker's multi-container behaviour).
func each(cmd *cobra.Command, args []string, fn func(ctx context.Context, ref string) error) error {
	var failed []string
	for _, ref := range args {
		if err := fn(cmd.Context(), ref); err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "berth:", err)
			failed = append(failed, ref)
			continue
		}
		fmt.Fprintln(cmd.OutOrStdout(), ref)
	}
	if len(failed) > 0 {
		return ExitError{Code: 1}
	}
	return nil
}

// eachCmd is a command that makes one engine call per container argument
// (see each).
func eachCmd(g *Globals, use, short string, do func(ctx context.Context, cli *client.Client, ref string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: onEngine(g, func(cmd *cobra.Command, args []string, cli *client.Client) error {
			return each(cmd, args, func(ctx context.Context, ref string) error { return do(ctx, cli, ref) })
		}),
	}
}

func startCmd(g *Globals) *cobra.Command {
	var attach bool
	cmd := &cobra.Command{
		Use:   "start [-a] CONTAINER...",
		Short: "Start stopped containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: onEngine(g, func(cmd *cobra.Command, args []string, cli *client.Client) error {
			if attach {
				if len(args) != 1 {
					return errors.New("start -a takes exactly one container")
				}
				info, err := cli.ContainerInspect(cmd.Context(), args[0], client.ContainerInspectOptions{})
				if err != nil {
					return err
				}
				c := info.Container.Config
				return runAttached(cmd.Context(), cmd, cli, info.Container.ID, createFlags{tty: c.Tty, interactive: false})
			}
			return each(cmd, args, func(ctx context.Context, ref string) error {
				_, err := cli.ContainerStart(ctx, ref, client.ContainerStartOptions{})
				return err
			})
		}),
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "attach stdout/stderr and exit with the container's status")
	return cmd
}

func stopCmd(g *Globals, verb string) *cobra.Command {
	var signal string
	var timeout int
	var cmd *cobra.Command
	cmd = eachCmd(g, verb+" [flags] CONTAINER...",
		map[string]string{"stop": "Stop containers (signal, grace period, then kill; the VM powers off)", "restart": "Restart containers"}[verb],
		func(ctx context.Context, cli *client.Client, ref string) error {
			var t *int
			if cmd.Flags().Changed("timeout") {
				t = &timeout
			}
			if verb == "stop" {
				_, err := cli.ContainerStop(ctx, ref, client.ContainerStopOptions{Signal: signal, Timeout: t})
				return err
			}
			_, err := cli.ContainerRestart(ctx, ref, client.ContainerRestartOptions{Signal: signal, Timeout: t})
			return err
		})
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "signal to send first (default: the container's stop signal, SIGTERM)")
	cmd.Flags().IntVarP(&timeout, "timeout", "t", 10, "seconds to wait before killing")
	return cmd
}

func killCmd(g *Globals) *cobra.Command {
	var signal string
	cmd := eachCmd(g, "kill [-s SIGNAL] CONTAINER...", "Send a signal (default SIGKILL) to containers' main process",
		func(ctx context.Context, cli *client.Client, ref string) error {
			_, err := cli.ContainerKill(ctx, ref, client.ContainerKillOptions{Signal: signal})
			return err
		})
	cmd.Flags().StringVarP(&signal, "signal", "s", "KILL", "signal to send")
	return cmd
}

func rmCmd(g *Globals) *cobra.Command {
	var force bool
	cmd := eachCmd(g, "rm [-f] CONTAINER...", "Remove containers (their disk, logs and records)",
		func(ctx context.Context, cli *client.Client, ref string) error {
			_, err := cli.ContainerRemove(ctx, ref, client.ContainerRemoveOptions{Force: force})
			return err
		})
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first")
	return cmd
}

func psCmd(g *Globals) *cobra.Command {
	var all, quiet, noTrunc bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "ps [-a] [-q]",
		Short: "List containers",
		Args:  cobra.NoArgs,
		RunE: onEngine(g, func(cmd *cobra.Command, args []string, cli *client.Client) error {
			fl := client.Filters{}
			for _, f := range filters {
				k, v, _ := strings.Cut(f, "=")
				fl.Add(k, v)
			}
			res, err := cli.ContainerList(cmd.Context(), client.ContainerListOptions{All: all, Filters: fl})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if quiet {
				for _, c := range res.Items {
					fmt.Fprintln(out, short(c.ID, noTrunc))
				}
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES")
			for _, c := range res.Items {
				command := c.Command
				if !noTrunc && len(command) > 20 {
					command = command[:19] + "…"
				}
				fmt.Fprintf(tw, "%s\t%s\t%q\t%s ago\t%s\t%s\t%s\n", short(c.ID, noTrunc), c.Image, command,
					units.HumanDuration(time.Since(time.Unix(c.Created, 0))), c.Status, formatPorts(c.Ports), strings.TrimPrefix(strings.Join(c.Names, ","), "/"))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show stopped containers too")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only IDs")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not shorten IDs and commands")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "filter (id, name, label, status, exited, ancestor)")
	return cmd
}

func short(id string, full bool) string {
	if full || len(id) < 12 {
		return id
	}
	return id[:12]
}

func formatPorts(ps []container.PortSummary) string {
	var out []string
	for _, p := range ps {
		if p.PublicPort != 0 {
			out = append(out, fmt.Sprintf("%s:%d->%d/%s", p.IP, p.PublicPort, p.PrivatePort, p.Type))
		} else {
			out = append(out, fmt.Sprintf("%d/%s", p.PrivatePort, p.Type))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func execCmd(g *Globals) *cobra.Command {
	var interactive, tty, detach bool
	var env []string
	var user, workdir, detachKeys string
	cmd := &cobra.Command{
		Use:   "exec [flags] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: onEngine(g, func(cmd *cobra.Command, args []string, cli *client.Client) error {
			ctx := cmd.Context()
			opts := client.ExecCreateOptions{
				User: user, TTY: tty, AttachStdin: interactive, AttachStdout: !detach, AttachStderr: !detach,
				DetachKeys: detachKeys, Env: env, WorkingDir: workdir, Cmd: args[1:],
			}
			if tty {
				if sz := terminalSize(); sz != nil {
					opts.ConsoleSize = client.ConsoleSize{Height: sz[0], Width: sz[1]}
				}
			}
			ex, err := cli.ExecCreate(ctx, args[0], opts)
			if err != nil {
				return err
			}
			if detach {
				_, err := cli.ExecStart(ctx, ex.ID, client.ExecStartOptions{Detach: true, TTY: tty})
				return err
			}
			att, err := cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{TTY: tty, ConsoleSize: opts.ConsoleSize})
			if err != nil {
				return err
			}
			defer att.Close()
			stream(ctx, cmd, att.HijackedResponse, tty, interactive, func(ctx context.Context, h, w uint) {
				cli.ExecResize(ctx, ex.ID, client.ExecResizeOptions{Height: h, Width: w})
			})
			var code int
			for i := 0; i < 100; i++ { // the exit code lands right after the stream ends
				res, err := cli.ExecInspect(context.Background(), ex.ID, client.ExecInspectOptions{})
				if err != nil {
					return err
				}
				if !res.Running {
					code = res.ExitCode
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if code != 0 {
				return ExitError{Code: code}
			}
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&interactive, "interactive", "i", false, "keep stdin open")
	fl.BoolVarP(&tty, "tty", "t", false, "allocate a terminal")
	fl.BoolVarP(&detach, "detach", "d", false, "run in the background")
	fl.StringArrayVarP(&env, "env", "e", nil, "set an environment variable")
	fl.StringVarP(&user, "user", "u", "", "user[:group]")
	fl.StringVarP(&workdir, "workdir", "w", "", "working directory")
	fl.StringVar(&detachKeys, "detach-keys", "", "key sequence to detach")
	return cmd
}

func logsCmd(g *Globals) *cobra.Command {
	var follow, timestamps bool
	var tail, since, until string
	cmd := &cobra.Command{
		Use:   "logs [-f] [-t] [--tail N] CONTAINER",
		Short: "Show a container's output",
		Args:  cobra.ExactArgs(1),
		RunE: onEngine(g, func(cmd *cobra.Command, args []string, cli *client.Client) error {
			info, err := cli.ContainerInspect(cmd.Context(), args[0], client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			rc, err := cli.ContainerLogs(cmd.Context(), args[0], client.ContainerLogsOptions{
				ShowStdout: true, ShowStderr: true, Follow: follow, Timestamps: timestamps, Tail: tail, Since: since, Until: until,
			})
			if err != nil {
				return err
			}
			defer rc.Close()
			if info.Container.Config.Tty {
				_, err = io.Copy(cmd.OutOrStdout(), rc)
			} else {
				_, err = stdcopy.StdCopy(cmd.OutOrStdout(), cmd.ErrOrStderr(), rc)
			}
			return err
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until the container stops")
	cmd.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "prefix each line with its time")
	cmd.Flags().StringVarP(&tail, "tail", "n", "all", "only the last N lines")
	cmd.Flags().StringVar(&since, "since", "", "only lines after a time (RFC 3339, Unix time or a duration like 10m)")
	cmd.Flags().StringVar(&until, "until", "", "only lines before a time")
	return cmd
}

func inspectCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect CONTAINER...",
		Short: "Show containers' full configuration and state as JSON (IP address under NetworkSettings)",
		Args:  cobra.MinimumNArgs(1),
		RunE: onEngine(g, func(cmd *cobra.Command, args []string, cli *client.Client) error {
			var all []json.RawMessage
			var firstErr error
			for _, ref := range args {
				res, err := cli.ContainerInspect(cmd.Context(), ref, client.ContainerInspectOptions{})
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "berth:", err)
					firstErr = ExitError{Code: 1}
					continue
				}
				all = append(all, res.Raw)
			}
			if all == nil {
				all = []json.RawMessage{}
			}
			data, err := json.MarshalIndent(all, "", "    ")
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(data))
			return firstErr
		}),
	}
}

func waitCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER...",
		Short: "Wait for containers to stop and print their exit codes",
		Args:  cobra.MinimumNArgs(1),
		RunE: onEngine(g, func(cmd *cobra.Command, args []string, cli *client.Client) error {
			var failed bool
			for _, ref := range args {
				w := cli.ContainerWait(cmd.Context(), ref, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
				select {
				case res := <-w.Result:
					fmt.Fprintln(cmd.OutOrStdout(), res.StatusCode)
				case err := <-w.Error:
					fmt.Fprintln(cmd.ErrOrStderr(), "berth:", err)
					failed = true
				}
			}
			if failed {
				return ExitError{Code: 1}
			}
			return nil
		}),
	}
}

func statsCmd(g *Globals) *cobra.Command {
	var noStream bool
	cmd := &cobra.Command{
		Use:   "stats [--no-stream] CONTAINER...",
		Short: "Show containers' CPU, memory, network and disk use",
		Args:  cobra.MinimumNArgs(1),
		RunE: onEngine(g, func(cmd *cobra.Command, args []string, cli *client.Client) error {
			out := cmd.OutOrStdout()
			for {
				tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
				if !noStream {
					fmt.Fprint(out, "\033[2J\033[H")
				}
				fmt.Fprintln(tw, "CONTAINER ID\tNAME\tCPU %\tMEM USAGE / LIMIT\tMEM %\tNET I/O\tBLOCK I/O\tPIDS")
				for _, ref := range args {
					res, err := cli.ContainerStats(cmd.Context(), ref, client.ContainerStatsOptions{Stream: false})
					if err != nil {
						return err
					}
					var s container.StatsResponse
					err = json.NewDecoder(res.Body).Decode(&s)
					res.Body.Close()
					if err != nil {
						return err
					}
					fmt.Fprintln(tw, statsRow(&s))
				}
				tw.Flush()
				if noStream {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(time.Second):
				}
			}
		}),
	}
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "print one sample and exit")
	return cmd
}

func statsRow(s *container.StatsResponse) string {
	cpu := 0.0
	if d, sd := float64(s.CPUStats.CPUUsage.TotalUsage)-float64(s.PreCPUStats.CPUUsage.TotalUsage),
		float64(s.CPUStats.SystemUsage)-float64(s.PreCPUStats.SystemUsage); d > 0 && sd > 0 {
		cpu = d / sd * float64(max(s.CPUStats.OnlineCPUs, 1)) * 100
	}
	mem := 0.0
	if s.MemoryStats.Limit > 0 {
		mem = float64(s.MemoryStats.Usage) / float64(s.MemoryStats.Limit) * 100
	}
	var rx, tx, br, bw uint64
	for _, n := range s.Networks {
		rx, tx = rx+n.RxBytes, tx+n.TxBytes
	}
	for _, e := range s.BlkioStats.IoServiceBytesRecursive {
		switch strings.ToLower(e.Op) {
		case "read":
			br += e.Value
		case "write":
			bw += e.Value
		}
	}
	return fmt.Sprintf("%s\t%s\t%.2f%%\t%s / %s\t%.2f%%\t%s / %s\t%s / %s\t%d", short(s.ID, false), strings.TrimPrefix(s.Name, "/"), cpu,
		units.BytesSize(float64(s.MemoryStats.Usage)), units.BytesSize(float64(s.MemoryStats.Limit)), mem,
		units.HumanSize(float64(rx)), units.HumanSize(float64(tx)), units.HumanSize(float64(br)), units.HumanSize(float64(bw)), s.PidsStats.Current)
}

func portCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PORT]",
		Short: "List a container's published ports",
		Args:  cobra.RangeArgs(1, 2),
		RunE: onEngine(g, func(cmd *cobra.Command, args []string, cli *client.Client) error {
			res, err := cli.ContainerInspect(cmd.Context(), args[0], client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			var lines []string
			for p, bs := range res.Container.NetworkSettings.Ports {
				if len(args) == 2 && args[1] != p.Port() && args[1] != p.String() {
					continue
				}
				for _, b := range bs {
					lines = append(lines, fmt.Sprintf("%s -> %s:%s", p, b.HostIP, b.HostPort))
				}
			}
			sort.Strings(lines)
			if len(lines) == 0 && len(args) == 2 {
				return fmt.Errorf("no public port %s published for %s", args[1], args[0])
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.Join(lines, "\n"))
			return nil
		}),
	}
}
