package cli

// Container commands: clients of the engine's Docker API on the data root's
// socket (the same API the real docker CLI uses).

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berth-dev/berth/runtime/portfwd"
)

// withEngine runs fn with a client of the running engine (Globals.Client),
// closed when fn returns; without an engine it returns ErrNoEngine.
func withEngine(g *Globals, fn func(cli *client.Client) error) error {
	cli, err := g.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	return fn(cli)
}

// onEngine is a RunE for a command that is one call of the engine's API.
func onEngine(g *Globals, run func(cmd *cobra.Command, args []string, cli *client.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		return withEngine(g, func(cli *client.Client) error { return run(cmd, args, cli) })
	}
}

// createFlags are the flags `run` and `create` share (Docker's names).
type createFlags struct {
	name, workdir, user, entrypoint, hostname, restart, memory, platform, kernel string
	stopSignal, detachKeys, network, ip                                          string
	env, labels, publish, addHost, logOpts, volumes, tmpfs, aliases              []string
	cpus                                                                         float64
	stopTimeout                                                                  int
	interactive, tty, rm, publishAll                                             bool
}

func (f *createFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.SetInterspersed(false) // flags after the image belong to the container's command
	fl.StringVar(&f.name, "name", "", "container name (default: a random adjective_surname)")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container")
	fl.StringVarP(&f.user, "user", "u", "", "user[:group] to run as")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "override the image's entrypoint")
	fl.StringVar(&f.hostname, "hostname", "", "container hostname")
	fl.StringVar(&f.restart, "restart", "no", "restart policy: no, on-failure[:N], always, unless-stopped")
	fl.StringVarP(&f.memory, "memory", "m", "", "VM memory, e.g. 512m or 1g (at least 128m)")
	fl.Float64Var(&f.cpus, "cpus", 0, "number of vCPUs")
	fl.StringVar(&f.platform, "platform", "", "image platform, e.g. linux/arm64")
	fl.StringVar(&f.kernel, "kernel", "", "guest kernel image for this container")
	fl.StringVar(&f.stopSignal, "stop-signal", "", "signal to stop the container (default SIGTERM)")
	fl.IntVar(&f.stopTimeout, "stop-timeout", -2, "seconds to wait before killing at stop (default 10)")
	fl.StringVar(&f.detachKeys, "detach-keys", "", "key sequence to detach (default ctrl-p,ctrl-q)")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable (KEY=VALUE, or KEY to copy it from here)")
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "set a label (key=value)")
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a port: [hostip:]hostport:containerport[/tcp]")
	fl.StringArrayVar(&f.addHost, "add-host", nil, "add a host:ip line to /etc/hosts")
	fl.StringArrayVar(&f.logOpts, "log-opt", nil, "json-file log option: max-size=10m, max-file=3")
	fl.StringArrayVarP(&f.volumes, "volume", "v", nil, "mount a host directory or file (/host:/dst[:ro]), a named volume (name:/dst[:ro]) or a new anonymous volume (/dst)")
	fl.StringArrayVar(&f.tmpfs, "tmpfs", nil, "mount a tmpfs: /dst[:size=64m,noexec,…]")
	fl.StringVar(&f.network, "network", "", "connect to a user network (docker network create) instead of only the default NAT network")
	fl.StringArrayVar(&f.aliases, "network-alias", nil, "another name the container answers to on --network")
	fl.StringVar(&f.ip, "ip", "", "the container's IPv4 address on --network")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open")
	fl.BoolVarP(&f.tty, "tty", "t", false, "allocate a terminal")
	fl.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	fl.BoolVarP(&f.publishAll, "publish-all", "P", false, "publish every exposed port on a random host port")
}

func (f *createFlags) options(args []string) (client.ContainerCreateOptions, error) {
	cfg := &container.Config{
		Image: args[0], Cmd: args[1:], WorkingDir: f.workdir, User: f.user, Hostname: f.hostname,
		Tty: f.tty, OpenStdin: f.interactive, StdinOnce: f.interactive, AttachStdin: f.interactive,
		AttachStdout: true, AttachStderr: true, StopSignal: f.stopSignal,
	}
	if f.entrypoint != "" {
		cfg.Entrypoint = []string{f.entrypoint}
	}
	if f.stopTimeout != -2 {
		cfg.StopTimeout = &f.stopTimeout
	}
	for _, e := range f.env {
		if !strings.Contains(e, "=") {
			v, ok := os.LookupEnv(e)
			if !ok {
				continue
			}
			e += "=" + v
		}
		cfg.Env = append(cfg.Env, e)
	}
	if len(f.labels) > 0 {
		cfg.Labels = map[string]string{}
		for _, l := range f.labels {
			k, v, _ := strings.Cut(l, "=")
			cfg.Labels[k] = v
		}
	}
	hc := &container.HostConfig{AutoRemove: f.rm, PublishAllPorts: f.publishAll, ExtraHosts: f.addHost}
	pol, err := parseRestart(f.restart)
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}
	hc.RestartPolicy = pol
	for _, o := range f.logOpts {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			return client.ContainerCreateOptions{}, fmt.Errorf("--log-opt %q: use key=value", o)
		}
		if hc.LogConfig.Config == nil {
			hc.LogConfig = container.LogConfig{Type: "json-file", Config: map[string]string{}}
		}
		hc.LogConfig.Config[k] = v
	}
	if f.memory != "" {
		n, err := units.RAMInBytes(f.memory)
		if err != nil || n <= 0 {
			return client.ContainerCreateOptions{}, fmt.Errorf("--memory %q: use a size like 512m or 1g", f.memory)
		}
		hc.Memory = n
	}
	if f.cpus < 0 {
		return client.ContainerCreateOptions{}, fmt.Errorf("--cpus %v: must be positive", f.cpus)
	}
	hc.NanoCPUs = int64(f.cpus * 1e9)
	if len(f.publish) > 0 {
		hc.PortBindings = network.PortMap{}
		cfg.ExposedPorts = network.PortSet{}
		for _, spec := range f.publish {
			bs, err := portfwd.Parse(spec)
			if err != nil {
				return client.ContainerCreateOptions{}, err
			}
			for _, b := range bs {
				p, _ := network.PortFrom(uint16(b.ContainerPort), network.TCP)
				ip, _ := netip.ParseAddr(b.HostIP)
				hp := ""
				if b.HostPort != 0 {
					hp = strconv.Itoa(b.HostPort)
				}
				hc.PortBindings[p] = append(hc.PortBindings[p], network.PortBinding{HostIP: ip, HostPort: hp})
				cfg.ExposedPorts[p] = struct{}{}
			}
		}
	}
	if err := f.mounts(cfg, hc); err != nil {
		return client.ContainerCreateOptions{}, err
	}
	if f.kernel != "" {
		hc.Annotations = map[string]string{"io.berth.kernel": f.kernel}
	}
	opts := client.ContainerCreateOptions{Config: cfg, HostConfig: hc, Name: f.name}
	if err := f.networking(&opts); err != nil {
		return opts, err
	}
	if f.platform != "" {
		os_, arch, ok := strings.Cut(f.platform, "/")
		if !ok {
			return opts, fmt.Errorf("--platform %q: use os/arch, e.g. linux/arm64", f.platform)
		}
		arch, variant, _ := strings.Cut(arch, "/")
		opts.Platform = &ocispec.Platform{OS: os_, Architecture: arch, Variant: variant}
	}
	return opts, nil
}

// networking turns --network, --network-alias and --ip into the request
// the docker CLI sends: NetworkMode plus one endpoint with the settings.
// The engine checks the network and the alias.
func (f *createFlags) networking(opts *client.ContainerCreateOptions) error {
	if f.network == "" {
		if len(f.aliases) > 0 || f.ip != "" {
			return fmt.Errorf("--network-alias and --ip need --network NAME (a user network)")
		}
		return nil
	}
	opts.HostConfig.NetworkMode = container.NetworkMode(f.network)
	ep := &network.EndpointSettings{Aliases: f.aliases}
	if f.ip != "" {
		a, err := netip.ParseAddr(f.ip)
		if err != nil || !a.Is4() {
			return fmt.Errorf("--ip %q: use an IPv4 address such as 172.18.0.10", f.ip)
		}
		ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: a}
	}
	opts.NetworkingConfig = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{f.network: ep}}
	return nil
}

// mounts turns -v and --tmpfs into the request the way the docker CLI
// does: "/dst" alone is an anonymous volume (Config.Volumes), a relative
// host path ("./dir") is made absolute here, where it means something;
// the engine checks the rest.
func (f *createFlags) mounts(cfg *container.Config, hc *container.HostConfig) error {
	for _, v := range f.volumes {
		src, rest, ok := strings.Cut(v, ":")
		if !ok {
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			cfg.Volumes[v] = struct{}{}
			continue
		}
		if src == "." || src == ".." || strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../") {
			abs, err := filepath.Abs(src)
			if err != nil {
				return fmt.Errorf("-v %s: %w", v, err)
			}
			v = abs + ":" + rest
		}
		hc.Binds = append(hc.Binds, v)
	}
	for _, t := range f.tmpfs {
		dst, opts, _ := strings.Cut(t, ":")
		if hc.Tmpfs == nil {
			hc.Tmpfs = map[string]string{}
		}
		hc.Tmpfs[dst] = opts
	}
	return nil
}

func parseRestart(s string) (container.RestartPolicy, error) {
	name, count, hasCount := strings.Cut(s, ":")
	p := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	switch p.Name {
	case "", "no", "always", "unless-stopped":
		if hasCount {
			return p, fmt.Errorf("--restart %q: only on-failure takes a maximum retry count", s)
		}
	case "on-failure":
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil || n < 0 {
				return p, fmt.Errorf("--restart %q: the retry count must be a whole number", s)
			}
			p.MaximumRetryCount = n
		}
	default:
		return p, fmt.Errorf("--restart %q: use no, on-failure[:N], always or unless-stopped", s)
	}
	return p, nil
}

// createContainer creates, pulling the image first if the engine lacks it
// (Docker's --pull=missing).
func createContainer(ctx context.Context, cli *client.Client, opts client.ContainerCreateOptions, errOut io.Writer) (string, error) {
	res, err := cli.ContainerCreate(ctx, opts)
	if err != nil && errdefs.IsNotFound(err) && strings.Contains(strings.ToLower(err.Error()), "image") {
		fmt.Fprintf(errOut, "Unable to find image '%s' locally, pulling…\n", opts.Config.Image)
		pull := client.ImagePullOptions{}
		if opts.Platform != nil {
			pull.Platforms = []ocispec.Platform{*opts.Platform}
		}
		rc, perr := cli.ImagePull(ctx, opts.Config.Image, pull)
		if perr != nil {
			return "", err // the original "no such image" says more
		}
		if werr := rc.Wait(ctx); werr != nil {
			return "", fmt.Errorf("pull %s: %w", opts.Config.Image, werr)
		}
		res, err = cli.ContainerCreate(ctx, opts)
	}
	if err != nil {
		return "", err
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(errOut, "WARNING:", w)
	}
	return res.ID, nil
}

// rawTerminal puts stdin in raw mode when it is a terminal; the returned
// function restores it.
func rawTerminal() func() {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return func() {}
	}
	st, err := term.MakeRaw(fd)
	if err != nil {
		return func() {}
	}
	return func() { term.Restore(fd, st) }
}

// forwardResizes sends the terminal size now and on every SIGWINCH.
func forwardResizes(ctx context.Context, resize func(h, w uint)) {
	fd := int(os.Stdout.Fd())
	if !term.IsTerminal(fd) {
		return
	}
	send := func() {
		if w, h, err := term.GetSize(fd); err == nil && w > 0 && h > 0 {
			resize(uint(h), uint(w))
		}
	}
	send()
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ch:
				send()
			case <-ctx.Done():
				return
			}
		}
	}()
}

func terminalSize() *[2]uint {
	if w, h, err := term.GetSize(int(os.Stdout.Fd())); err == nil && w > 0 && h > 0 {
		return &[2]uint{uint(h), uint(w)}
	}
	return nil
}
