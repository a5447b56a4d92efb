package container

import (
	"fmt"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/runtime/portfwd"
)

// MinMemoryMiB is the smallest VM that boots the guest kernel and agent.
const MinMemoryMiB = 128

// mergeConfig applies the image's defaults to the request, Docker's way:
// env from the image overridden per key, entrypoint from the image unless
// the request sets one (in which case the image's cmd is dropped too), cmd
// from the image unless the request has one, labels merged, workdir and
// user from the image unless set.
func mergeConfig(req container.Config, img v1.Config) (container.Config, error) {
	c := req
	c.Env = mergeEnv(img.Env, req.Env)
	if len(req.Entrypoint) == 1 && req.Entrypoint[0] == "" {
		c.Entrypoint = nil // --entrypoint "" clears the image's
	} else if len(req.Entrypoint) == 0 {
		c.Entrypoint = img.Entrypoint
		if len(req.Cmd) == 0 {
			c.Cmd = img.Cmd
		}
	}
	if c.WorkingDir == "" {
		c.WorkingDir = img.WorkingDir
	}
	if c.WorkingDir == "" {
		c.WorkingDir = "/"
	}
	if c.User == "" {
		c.User = img.User
	}
	if c.StopSignal == "" {
		c.StopSignal = img.StopSignal
	}
	if len(img.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range img.Labels {
			labels[k] = v
		}
		for k, v := range req.Labels {
			labels[k] = v
		}
		c.Labels = labels
	}
	if len(img.ExposedPorts) > 0 {
		ports := network.PortSet{}
		for k := range req.ExposedPorts {
			ports[k] = struct{}{}
		}
		for k := range img.ExposedPorts {
			if p, err := network.ParsePort(k); err == nil {
				ports[p] = struct{}{}
			}
		}
		c.ExposedPorts = ports
	}
	if len(c.Entrypoint)+len(c.Cmd) == 0 {
		return c, errf(ErrInvalid, "no command specified: the image has no CMD or ENTRYPOINT, give one after the image name")
	}
	return c, nil
}

func mergeEnv(base, over []string) []string {
	idx := map[string]int{}
	var out []string
	add := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			return
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	for _, kv := range base {
		add(kv)
	}
	for _, kv := range over {
		add(kv)
	}
	if _, ok := idx["PATH"]; !ok {
		out = append(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	return out
}

// checkHostConfig refuses what Berth cannot honour instead of ignoring it.
func checkHostConfig(h *container.HostConfig) error {
	no := func(what string) error {
		return errf(ErrNotImplemented, "%s is not supported by Berth (each container is its own VM)", what)
	}
	switch {
	case h.Privileged:
		return no("--privileged")
	case len(h.VolumesFrom) > 0:
		return no("--volumes-from (name the volumes with -v instead)")
	case len(h.Links) > 0:
		return no("--link")
	case len(h.Devices) > 0 || len(h.DeviceRequests) > 0:
		return no("--device / --gpus")
	case h.PidMode.IsHost() || h.IpcMode.IsHost() || h.UTSMode.IsHost() || h.UsernsMode.IsHost():
		return no("host namespaces (--pid/--ipc/--uts/--userns host)")
	}
	if err := checkNetworkMode(string(h.NetworkMode)); err != nil {
		return err
	}
	if h.RestartPolicy.Name != "" {
		switch h.RestartPolicy.Name {
		case container.RestartPolicyDisabled, container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
			if h.RestartPolicy.MaximumRetryCount != 0 {
				return errf(ErrInvalid, "maximum retry count cannot be used with restart policy %q", h.RestartPolicy.Name)
			}
		case container.RestartPolicyOnFailure:
			if h.RestartPolicy.MaximumRetryCount < 0 {
				return errf(ErrInvalid, "maximum retry count cannot be negative")
			}
		default:
			return errf(ErrInvalid, "invalid restart policy %q (no, always, unless-stopped, on-failure[:N])", h.RestartPolicy.Name)
		}
	}
	if h.AutoRemove && h.RestartPolicy.Name != "" && h.RestartPolicy.Name != container.RestartPolicyDisabled {
		return errf(ErrConflict, "--rm and --restart %s cannot be combined", h.RestartPolicy.Name)
	}
	if h.LogConfig.Type != "" && h.LogConfig.Type != "json-file" {
		return errf(ErrNotImplemented, "log driver %q is not supported (json-file only)", h.LogConfig.Type)
	}
	return nil
}

// resources turns --cpus/--memory into VM size, with clear limits.
func resources(h *container.HostConfig, defCPUs, defMiB int) (cpus, mib int, err error) {
	cpus, mib = defCPUs, defMiB
	if h.NanoCPUs < 0 || h.Memory < 0 {
		return 0, 0, errf(ErrInvalid, "--cpus and --memory cannot be negative")
	}
	if h.NanoCPUs > 0 {
		cpus = int((h.NanoCPUs + 1e9 - 1) / 1e9)
		if max := runtime.NumCPU(); cpus > max {
			return 0, 0, errf(ErrInvalid, "--cpus %.2f is more than the %d CPUs of this machine", float64(h.NanoCPUs)/1e9, max)
		}
	}
	if h.Memory > 0 {
		mib = int((h.Memory + (1<<20 - 1)) >> 20)
		if mib < MinMemoryMiB {
			return 0, 0, errf(ErrInvalid, "--memory %dMiB is too small to boot a container VM: use at least %dm", mib, MinMemoryMiB)
		}
		if mib > 1<<20 {
			return 0, 0, errf(ErrInvalid, "--memory %dMiB is absurdly large", mib)
		}
	}
	if cpus < 1 {
		cpus = 1
	}
	if mib < MinMemoryMiB {
		mib = MinMemoryMiB
	}
	return cpus, mib, nil
}

// portBindings turns HostConfig.PortBindings (and -P) into published ports.
func portBindings(h *container.HostConfig, exposed network.PortSet) ([]portfwd.Binding, error) {
	var out []portfwd.Binding
	add := func(p network.Port, pb network.PortBinding) error {
		if p.Proto() != network.TCP {
			return errf(ErrNotImplemented, "port %s: only tcp ports can be published", p)
		}
		b := portfwd.Binding{HostIP: portfwd.DefaultHostIP, ContainerPort: int(p.Num()), Proto: "tcp"}
		if pb.HostIP.IsValid() {
			b.HostIP = pb.HostIP.String()
		}
		if pb.HostPort != "" {
			var hp int
			if _, err := fmt.Sscan(pb.HostPort, &hp); err != nil || hp < 0 || hp > 65535 {
				return errf(ErrInvalid, "invalid host port %q for %s", pb.HostPort, p)
			}
			b.HostPort = hp
		}
		out = append(out, b)
		return nil
	}
	for p, pbs := range h.PortBindings {
		if len(pbs) == 0 {
			pbs = []network.PortBinding{{}}
		}
		for _, pb := range pbs {
			if err := add(p, pb); err != nil {
				return nil, err
			}
		}
	}
	if h.PublishAllPorts {
		for p := range exposed {
			if _, done := h.PortBindings[p]; done || p.Proto() != network.TCP {
				continue
			}
			if err := add(p, network.PortBinding{}); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
