package container

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/runtime/vmm"
)

func platformOf(arch string) v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: arch}
	if arch == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// shownRecord is c's record as the API shows it: a running container whose
// VM is paused is "paused" (the record keeps "running": a pause does not
// outlive the VM, so it is never persisted). m.mu held.
func (c *ctr) shownRecord() record {
	r := c.rec
	if r.State == container.StateRunning && c.run != nil && c.run.paused {
		r.State = container.StatePaused
	}
	return r
}

// status is Docker's human column ("Up 3 minutes", "Exited (0) 2 seconds ago").
func status(r *record, now time.Time) string {
	switch r.State {
	case container.StateRunning:
		return "Up " + human(now.Sub(r.StartedAt))
	case container.StatePaused:
		return "Up " + human(now.Sub(r.StartedAt)) + " (Paused)"
	case container.StateRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", r.ExitCode, human(now.Sub(r.FinishedAt)))
	case container.StateExited:
		return fmt.Sprintf("Exited (%d) %s ago", r.ExitCode, human(now.Sub(r.FinishedAt)))
	case container.StateRemoving:
		return "Removal In Progress"
	case container.StateDead:
		return "Dead"
	}
	return "Created"
}

func human(d time.Duration) string {
	switch s := d.Seconds(); {
	case s < 1:
		return "Less than a second"
	case s < 2:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", int(s))
	case d.Minutes() < 2:
		return "About a minute"
	case d.Minutes() < 60:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	case d.Hours() < 2:
		return "About an hour"
	case d.Hours() < 48:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

func commandLine(r *record) string {
	parts := append([]string{r.Path}, r.Args...)
	for i, p := range parts {
		if strings.ContainsAny(p, " \t\"'") {
			parts[i] = strconv.Quote(p)
		}
	}
	return strings.Join(parts, " ")
}

func portSummaries(r *record) []container.PortSummary {
	out := []container.PortSummary{}
	for _, b := range r.Ports {
		ps := container.PortSummary{PrivatePort: uint16(b.ContainerPort), Type: b.Proto}
		if r.State == container.StateRunning {
			ps.PublicPort = uint16(b.HostPort)
			ps.IP, _ = netip.ParseAddr(b.HostIP)
		}
		out = append(out, ps)
	}
	return out
}

func (m *Manager) endpoint(r *record) *network.EndpointSettings {
	ep := &network.EndpointSettings{NetworkID: DefaultNetworkID, EndpointID: r.ID, IPPrefixLen: r.PrefixLen,
		MacAddress: hwAddr(vmm.StableMAC(r.ID))}
	if a, err := netip.ParseAddr(r.IP); err == nil {
		ep.IPAddress = a
	}
	if a, err := netip.ParseAddr(r.Gateway); err == nil {
		ep.Gateway = a
	}
	return ep
}

// isAncestor is the ancestor filter without the image store: the image name
// as given at create (with or without ":latest"), the image ID (full, or a
// prefix of at least 4 hex digits, with or without "sha256:"), or the
// manifest digest.
func isAncestor(r *record, v string) bool {
	switch {
	case v == "":
		return false
	case r.Config.Image == v, r.Config.Image == v+":latest", r.Config.Image+":latest" == v:
		return true
	case v == r.ImageID, v == r.dockerImageID():
		return true
	}
	hex := strings.TrimPrefix(v, "sha256:")
	id := strings.TrimPrefix(r.dockerImageID(), "sha256:")
	if len(hex) < 4 || strings.Trim(hex, "0123456789abcdef") != "" {
		return false
	}
	return strings.HasPrefix(id, hex)
}

// resolveAncestors adds, for each ancestor value the image store knows
// (any tag, digest or ID of a local image), that image's ID, so
// ancestor=other-tag matches containers created under another name, as in
// Docker. Values it does not know still match by name (isAncestor).
func (m *Manager) resolveAncestors(ctx context.Context, f map[string][]string) map[string][]string {
	vals := f["ancestor"]
	if len(vals) == 0 || m.cfg.Images == nil {
		return f
	}
	out := make(map[string][]string, len(f))
	for k, v := range f {
		out[k] = v
	}
	ids := append([]string(nil), vals...)
	for _, v := range vals {
		img, _, err := m.cfg.Images.Resolve(ctx, v, platformOf(m.cfg.Arch))
		if err != nil {
			continue
		}
		if id, err := img.ConfigName(); err == nil {
			ids = append(ids, id.String())
		}
	}
	out["ancestor"] = ids
	return out
}

func matchFilters(r *record, f map[string][]string) (bool, error) {
	for key, vals := range f {
		if len(vals) == 0 {
			continue
		}
		ok := false
		for _, v := range vals {
			switch key {
			case "id":
				ok = ok || strings.HasPrefix(r.ID, v)
			case "name":
				ok = ok || strings.Contains(r.Name, strings.TrimPrefix(v, "/"))
			case "status":
				ok = ok || string(r.State) == v
			case "exited":
				ok = ok || (r.State == container.StateExited && strconv.Itoa(r.ExitCode) == v)
			case "ancestor":
				ok = ok || isAncestor(r, v)
			case "label": // Docker ANDs label terms (compose filters on project AND service)
				if !slices.ContainsFunc(f[key], func(t string) bool {
					k, val, hasVal := strings.Cut(t, "=")
					got, has := r.Config.Labels[k]
					return !has || (hasVal && got != val)
				}) {
					ok = true
				}
			case "network": // a user network's name or ID (prefix), or the default
				if isDefaultNetwork(v) || v == DefaultNetworkID {
					ok = ok || isDefaultNetwork(string(r.HostConfig.NetworkMode))
				}
				for _, a := range r.Networks {
					ok = ok || a.Name == v || (len(v) >= 3 && strings.HasPrefix(a.NetworkID, v))
				}
			case "until":
				t, err := parseTime(v)
				if err != nil {
					return false, err
				}
				ok = ok || r.Created.Before(t)
			default:
				return false, errf(ErrInvalid, "filter %q is not supported (id, name, status, exited, ancestor, label, until, network)", key)
			}
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

func parseTime(v string) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d), nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	return time.Time{}, errf(ErrInvalid, "invalid time %q (use a duration like 10m, a Unix time or RFC 3339)", v)
}

func (m *Manager) list(ctx context.Context, o ListOptions) ([]container.Summary, error) {
	m.mu.Lock()
	recs := make([]record, 0, len(m.byID))
	for _, c := range m.byID {
		recs = append(recs, c.shownRecord())
	}
	m.mu.Unlock()
	sort.Slice(recs, func(i, j int) bool { return recs[i].Created.After(recs[j].Created) })
	o.Filters = m.resolveAncestors(ctx, o.Filters)
	now := time.Now()
	out := []container.Summary{}
	for i := range recs {
		r := &recs[i]
		if !o.All && r.State != container.StateRunning && r.State != container.StatePaused && r.State != container.StateRestarting && len(o.Filters["status"]) == 0 {
			continue
		}
		ok, err := matchFilters(r, o.Filters)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		s := container.Summary{
			ID: r.ID, Names: []string{"/" + r.Name}, Image: r.Config.Image, ImageID: r.dockerImageID(),
			Command: commandLine(r), Created: r.Created.Unix(), Ports: portSummaries(r),
			Labels: r.Config.Labels, State: r.State, Status: status(r, now), Mounts: mountPoints(r.Mounts, m.cfg.Volumes),
		}
		s.HostConfig.NetworkMode = string(r.HostConfig.NetworkMode)
		if isDefaultNetwork(s.HostConfig.NetworkMode) {
			s.HostConfig.NetworkMode = "default"
		}
		s.NetworkSettings = &container.NetworkSettingsSummary{Networks: m.endpoints(r)}
		out = append(out, s)
		if o.Limit > 0 && len(out) == o.Limit {
			break
		}
	}
	return out, nil
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (m *Manager) inspect(ctx context.Context, ref string) (container.InspectResponse, error) {
	c, err := m.get(ref)
	if err != nil {
		return container.InspectResponse{}, err
	}
	m.mu.Lock()
	r := c.shownRecord()
	var execIDs []string
	for id, e := range m.execs {
		if e.ctrID == r.ID {
			execIDs = append(execIDs, id)
		}
	}
	m.mu.Unlock()
	running := r.State == container.StateRunning || r.State == container.StatePaused
	cfg := r.Config
	hc := r.HostConfig
	ports := network.PortMap{}
	for _, b := range r.Ports {
		p, _ := network.PortFrom(uint16(b.ContainerPort), network.TCP)
		if !running {
			ports[p] = nil
			continue
		}
		ip, _ := netip.ParseAddr(b.HostIP)
		ports[p] = append(ports[p], network.PortBinding{HostIP: ip, HostPort: strconv.Itoa(b.HostPort)})
	}
	resp := container.InspectResponse{
		ID: r.ID, Created: rfc3339(r.Created), Path: r.Path, Args: r.Args,
		State: &container.State{
			Status: r.State, Running: running, Paused: r.State == container.StatePaused, Restarting: r.State == container.StateRestarting,
			Dead: r.State == container.StateDead, Pid: r.GuestPID, ExitCode: r.ExitCode, Error: r.Error,
			StartedAt: rfc3339(r.StartedAt), FinishedAt: rfc3339(r.FinishedAt),
		},
		Image: r.dockerImageID(), LogPath: c.log.Path(), Name: "/" + r.Name, RestartCount: r.RestartCount,
		Driver: "ext4", Platform: "linux", ExecIDs: execIDs, HostConfig: &hc, Mounts: mountPoints(r.Mounts, m.cfg.Volumes),
		Config: &cfg,
		NetworkSettings: &container.NetworkSettings{
			SandboxID: r.ID, Ports: ports,
			Networks: m.endpoints(&r),
		},
	}
	return resp, nil
}

func (m *Manager) rename(ctx context.Context, ref, newName string) error {
	name, err := checkName(newName)
	if err != nil {
		return err
	}
	c, err := m.get(ref)
	if err != nil {
		return err
	}
	m.mu.Lock()
	old := c.rec.Name
	if old == name {
		m.mu.Unlock()
		return errf(ErrConflict, "container %s already has the name %q", ref, name)
	}
	if other, taken := m.names[name]; taken {
		m.mu.Unlock()
		return errf(ErrConflict, "the container name \"/%s\" is already in use by container %q", name, other)
	}
	c.rec.Name = name
	delete(m.names, old)
	m.names[name] = c.rec.ID
	r := c.rec
	m.mu.Unlock()
	if err := m.put(&r); err != nil {
		return err
	}
	m.emit(events.ActionRename, c, map[string]string{"oldName": "/" + old})
	return nil
}

func (m *Manager) prune(ctx context.Context, f map[string][]string) (container.PruneReport, error) {
	m.mu.Lock()
	var cands []*ctr
	for _, c := range m.byID {
		if c.run == nil && (c.rec.State == container.StateExited || c.rec.State == container.StateCreated || c.rec.State == container.StateDead) {
			cands = append(cands, c)
		}
	}
	m.mu.Unlock()
	rep := container.PruneReport{ContainersDeleted: []string{}}
	for _, c := range cands {
		ok, err := matchFilters(&c.rec, f)
		if err != nil {
			return rep, err
		}
		if !ok {
			continue
		}
		size := diskUsage(c.dir)
		if err := m.remove(ctx, c.rec.ID, RemoveOptions{}); err != nil {
			continue // it was started meanwhile
		}
		rep.ContainersDeleted = append(rep.ContainersDeleted, c.rec.ID)
		rep.SpaceReclaimed += uint64(size)
	}
	m.events.Publish(events.Message{Type: events.ContainerEventType, Action: events.ActionPrune,
		Actor: events.Actor{Attributes: map[string]string{"reclaimed": strconv.FormatUint(rep.SpaceReclaimed, 10)}}})
	return rep, nil
}

func (m *Manager) stats(ctx context.Context, ref string) (container.StatsResponse, error) {
	c, err := m.get(ref)
	if err != nil {
		return container.StatsResponse{}, err
	}
	m.mu.Lock()
	rn := c.run
	paused := rn != nil && rn.paused
	prev := c.prevStats
	name := c.rec.Name
	m.mu.Unlock()
	resp := container.StatsResponse{ID: c.rec.ID, Name: "/" + name, OSType: "linux", Read: time.Now().UTC()}
	if rn == nil || paused {
		// Docker returns zeroes for a stopped container; a paused VM
		// cannot answer (and uses no CPU).
		return resp, nil
	}
	s, err := rn.guest.Stats(ctx)
	if err != nil {
		return resp, fmt.Errorf("stats of %s: %w", ref, err)
	}
	// The agent reports the container's CPU time only; the "system" time
	// Docker divides by is wall time times the VM's CPUs, which gives the
	// same percentage.
	cpus := uint32(c.rec.CPUs)
	if s.OnlineCPUs > 0 {
		cpus = s.OnlineCPUs
	}
	sys := s.SystemCPUNanos
	if sys == 0 {
		sys = uint64(resp.Read.UnixNano()) * uint64(cpus)
	}
	resp.CPUStats = container.CPUStats{
		CPUUsage:    container.CPUUsage{TotalUsage: s.CPUUsageNanos},
		SystemUsage: sys, OnlineCPUs: cpus,
	}
	limit := s.MemoryLimit
	if limit == 0 {
		limit = s.VMMemoryTotal
	}
	resp.MemoryStats = container.MemoryStats{Usage: s.MemoryUsage, Limit: limit}
	resp.PidsStats = container.PidsStats{Current: s.Pids}
	resp.NumProcs = uint32(s.Pids)
	resp.Networks = map[string]container.NetworkStats{"eth0": {
		RxBytes: s.NetRxBytes, TxBytes: s.NetTxBytes, RxPackets: s.NetRxPackets, TxPackets: s.NetTxPackets}}
	resp.BlkioStats = container.BlkioStats{IoServiceBytesRecursive: []container.BlkioStatEntry{
		{Major: 254, Minor: 0, Op: "read", Value: s.BlockReadBytes},
		{Major: 254, Minor: 0, Op: "write", Value: s.BlockWriteBytes},
	}}
	if prev != nil {
		resp.PreCPUStats, resp.PreRead = prev.CPUStats, prev.Read
	}
	m.mu.Lock()
	c.prevStats = &resp
	m.mu.Unlock()
	return resp, nil
}

// top runs ps inside the container (the image must have one: busybox does).
func (m *Manager) top(ctx context.Context, ref, psArgs string) (container.TopResponse, error) {
	args := []string{"ps"}
	if psArgs != "" {
		args = append(args, strings.Fields(psArgs)...)
	}
	out, code, err := m.execOutput(ctx, ref, args)
	if err != nil {
		return container.TopResponse{}, err
	}
	if code != 0 && (psArgs == "-ef" || psArgs == "aux") {
		// Docker's default arguments; busybox ps knows neither.
		if out, code, err = m.execOutput(ctx, ref, []string{"ps"}); err != nil {
			return container.TopResponse{}, err
		}
	}
	if code != 0 {
		return container.TopResponse{}, fmt.Errorf("ps %s in the container exited with %d: %s", psArgs, code, strings.TrimSpace(out))
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || lines[0] == "" {
		return container.TopResponse{}, fmt.Errorf("ps printed nothing")
	}
	titles := strings.Fields(lines[0])
	resp := container.TopResponse{Titles: titles, Processes: [][]string{}}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) > len(titles) { // the last column (command) may contain spaces
			f = append(f[:len(titles)-1], strings.Join(f[len(titles)-1:], " "))
		}
		resp.Processes = append(resp.Processes, f)
	}
	return resp, nil
}

// ImageInUse reports whether any container was created from the image with
// this manifest digest (the image store refuses to remove it then).
func (m *Manager) ImageInUse(digest string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.byID {
		if c.rec.ImageID == digest {
			return true
		}
	}
	return false
}
