package model

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// RunForm is the Run dialog's fields, as the user typed them.
type RunForm struct {
	Image   string
	Name    string // optional
	Command string // optional; shell-like quoting: sh -c "echo hi"
	Env     string // KEY=VALUE, one per line (or comma-separated)
	Ports   string // [hostip:]hostport:containerport[/proto], separated by commas, spaces or newlines
	CPUs    string // optional, e.g. 2 or 0.5
	Memory  string // optional, e.g. 512m, 2g, 1GiB
	Restart string // no | always | on-failure[:N] | unless-stopped
	Remove  bool   // --rm
}

// RunLimits bound the CPU and memory a container may ask for.
type RunLimits struct {
	MaxCPUs      int
	MaxMemoryMiB int64
}

// MinMemoryMiB is the least memory a container VM boots with.
const MinMemoryMiB = 64

// FormErrors maps a field name ("image", "name", "command", "env", "ports",
// "cpus", "memory", "restart") to a one-line message.
type FormErrors map[string]string

func (e FormErrors) Error() string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e[k]
	}
	return strings.Join(parts, "; ")
}

// RunRequest is the validated form: what to create and how to name it.
type RunRequest struct {
	Name   string
	Create container.CreateRequest
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)
var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks every field and builds the create request. All problems
// are reported at once, keyed by field, so the dialog can mark each.
func (f RunForm) Validate(lim RunLimits) (RunRequest, error) {
	errs := FormErrors{}
	cfg := &container.Config{}
	hc := &container.HostConfig{AutoRemove: f.Remove}

	img := strings.TrimSpace(f.Image)
	switch {
	case img == "":
		errs["image"] = "enter an image, e.g. busybox or docker.io/library/nginx:latest"
	default:
		if _, err := reference.ParseNormalizedNamed(img); err != nil {
			errs["image"] = fmt.Sprintf("%q is not a valid image reference (%v)", img, err)
		}
	}
	cfg.Image = img

	name := strings.TrimPrefix(strings.TrimSpace(f.Name), "/")
	if name != "" && !nameRE.MatchString(name) {
		errs["name"] = "names use letters, digits, _ . - (at least 2 characters, starting with a letter or digit)"
	}

	if cmd := strings.TrimSpace(f.Command); cmd != "" {
		args, err := SplitCommand(cmd)
		if err != nil {
			errs["command"] = err.Error()
		}
		cfg.Cmd = args
	}

	env, err := parseEnv(f.Env)
	if err != nil {
		errs["env"] = err.Error()
	}
	cfg.Env = env

	exposed, bindings, err := ParsePorts(f.Ports)
	if err != nil {
		errs["ports"] = err.Error()
	}
	if len(exposed) > 0 {
		cfg.ExposedPorts = exposed
		hc.PortBindings = bindings
	}

	if s := strings.TrimSpace(f.CPUs); s != "" {
		c, err := strconv.ParseFloat(s, 64)
		switch {
		case err != nil || c <= 0:
			errs["cpus"] = fmt.Sprintf("%q is not a positive number of CPUs", s)
		case lim.MaxCPUs > 0 && c > float64(lim.MaxCPUs):
			errs["cpus"] = fmt.Sprintf("this Mac allows at most %d CPUs per container", lim.MaxCPUs)
		default:
			hc.NanoCPUs = int64(c * 1e9)
		}
	}

	if s := strings.TrimSpace(f.Memory); s != "" {
		b, err := ParseMemory(s)
		switch {
		case err != nil:
			errs["memory"] = err.Error()
		case b < MinMemoryMiB<<20:
			errs["memory"] = fmt.Sprintf("a container VM needs at least %d MiB", MinMemoryMiB)
		case lim.MaxMemoryMiB > 0 && b > lim.MaxMemoryMiB<<20:
			errs["memory"] = fmt.Sprintf("at most %s per container on this Mac", FormatMiB(lim.MaxMemoryMiB))
		default:
			hc.Memory = b
		}
	}

	rp, err := ParseRestartPolicy(f.Restart)
	if err != nil {
		errs["restart"] = err.Error()
	}
	hc.RestartPolicy = rp
	if f.Remove && rp.Name != container.RestartPolicyDisabled && rp.Name != "" {
		errs["restart"] = "a container removed on exit (--rm) cannot have a restart policy"
	}

	if len(errs) > 0 {
		return RunRequest{}, errs
	}
	return RunRequest{Name: name, Create: container.CreateRequest{Config: cfg, HostConfig: hc}}, nil
}

// SplitCommand splits a command line with POSIX-shell-like quoting ('…',
// "…", backslash escapes); no variable expansion or globbing.
func SplitCommand(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg := false
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0:
				i++
				cur.WriteByte(s[i])
			default:
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inArg = c, true
		case c == '\\':
			if i+1 == len(s) {
				return nil, errors.New("the command ends with a lone backslash")
			}
			i++
			cur.WriteByte(s[i])
			inArg = true
		case c == ' ' || c == '\t' || c == '\n':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unclosed %c quote in the command", quote)
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}

func parseEnv(s string) ([]string, error) {
	var out []string
	for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%q: write KEY=VALUE", line)
		}
		if !envKeyRE.MatchString(k) {
			return nil, fmt.Errorf("%q is not a valid variable name", k)
		}
		out = append(out, line)
	}
	return out, nil
}

// ParsePorts parses docker's -p syntax, several specs separated by commas or
// white space: 8080:80, 127.0.0.1:8080:80/tcp, [::1]:8080:80, 80 (exposed,
// published on a port the engine picks is not offered: a host port is
// required, so the dialog knows what "Open in Browser" will use).
func ParsePorts(s string) (network.PortSet, network.PortMap, error) {
	specs := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' })
	if len(specs) == 0 {
		return nil, nil, nil
	}
	set := network.PortSet{}
	pm := network.PortMap{}
	usedHost := map[string]string{}
	for _, spec := range specs {
		hostIP, hostPort, ctrPort, proto, err := splitPortSpec(spec)
		if err != nil {
			return nil, nil, err
		}
		p, err := network.ParsePort(ctrPort + "/" + proto)
		if err != nil {
			return nil, nil, fmt.Errorf("%q: %v", spec, err)
		}
		key := hostIP.String() + ":" + hostPort + "/" + proto
		if prev, dup := usedHost[key]; dup {
			return nil, nil, fmt.Errorf("%q and %q both use host port %s/%s", prev, spec, hostPort, proto)
		}
		usedHost[key] = spec
		set[p] = struct{}{}
		pm[p] = append(pm[p], network.PortBinding{HostIP: hostIP, HostPort: hostPort})
	}
	return set, pm, nil
}

func splitPortSpec(spec string) (hostIP netip.Addr, hostPort, ctrPort, proto string, err error) {
	bad := func(why string) error {
		return fmt.Errorf("%q: %s (use [host-ip:]host-port:container-port[/tcp|udp], e.g. 8080:80)", spec, why)
	}
	rest := spec
	proto = "tcp"
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		proto = strings.ToLower(rest[i+1:])
		rest = rest[:i]
		if proto != "tcp" && proto != "udp" {
			return hostIP, "", "", "", bad("protocol must be tcp or udp")
		}
	}
	if strings.HasPrefix(rest, "[") { // [v6]:host:ctr
		end := strings.Index(rest, "]:")
		if end < 0 {
			return hostIP, "", "", "", bad("unclosed [ in the IPv6 address")
		}
		hostIP, err = netip.ParseAddr(rest[1:end])
		if err != nil {
			return hostIP, "", "", "", bad("bad IPv6 address")
		}
		rest = rest[end+2:]
	}
	parts := strings.Split(rest, ":")
	switch len(parts) {
	case 1:
		return hostIP, "", "", "", bad("a host port is needed")
	case 2:
		hostPort, ctrPort = parts[0], parts[1]
	case 3:
		if hostIP.IsValid() {
			return hostIP, "", "", "", bad("too many colons")
		}
		if hostIP, err = netip.ParseAddr(parts[0]); err != nil {
			return hostIP, "", "", "", bad(fmt.Sprintf("%q is not an IP address", parts[0]))
		}
		hostPort, ctrPort = parts[1], parts[2]
	default:
		return hostIP, "", "", "", bad("too many colons")
	}
	for _, p := range []string{hostPort, ctrPort} {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return hostIP, "", "", "", bad(fmt.Sprintf("%q is not a port number (1-65535)", p))
		}
	}
	if !hostIP.IsValid() {
		hostIP = netip.AddrFrom4([4]byte{127, 0, 0, 1}) // Berth publishes on loopback unless told otherwise
	}
	return hostIP, hostPort, ctrPort, proto, nil
}

// ParseMemory parses sizes as docker does (b, k, m, g, t; binary multiples;
// optional "b"/"ib" suffix): 512m, 2g, 1GiB, 1073741824.
func ParseMemory(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "ib"), "b")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || f <= 0 || f*float64(mult) > 1<<50 {
		return 0, fmt.Errorf("%q is not a memory size (e.g. 512m or 2g)", s)
	}
	return int64(f * float64(mult)), nil
}

// ParseRestartPolicy parses no | always | on-failure[:N] | unless-stopped
// (empty = no).
func ParseRestartPolicy(s string) (container.RestartPolicy, error) {
	s = strings.TrimSpace(s)
	name, count, hasCount := strings.Cut(s, ":")
	rp := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	switch rp.Name {
	case "", container.RestartPolicyDisabled:
		rp.Name = container.RestartPolicyDisabled
	case container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
	case container.RestartPolicyOnFailure:
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil || n < 0 {
				return rp, fmt.Errorf("on-failure:%s: the retry count must be a whole number", count)
			}
			rp.MaximumRetryCount = n
			return rp, nil
		}
	default:
		return rp, fmt.Errorf("%q is not a restart policy (no, always, on-failure[:N], unless-stopped)", s)
	}
	if hasCount {
		return rp, fmt.Errorf("only on-failure takes a retry count")
	}
	return rp, nil
}

// RestartPolicies are the choices the dialog's popup offers.
var RestartPolicies = []string{"no", "on-failure", "always", "unless-stopped"}
