package model

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
)

// ContainerRow is one line of the Containers window's table.
type ContainerRow struct {
	ID, Name, Image, State, Status, IP, Ports, CPU, Memory string
	Running                                                bool
	Actions                                                []Item // the same actions and enabling rules as the menu
}

// ContainerColumns are the table's columns, in order (identifier, title).
var ContainerColumns = [][2]string{
	{"name", "Name"}, {"image", "Image"}, {"state", "State"}, {"ip", "IP"},
	{"ports", "Ports"}, {"cpu", "CPU"}, {"memory", "Memory"},
}

// Cell returns the row's value for a column identifier.
func (r ContainerRow) Cell(col string) string {
	switch col {
	case "name":
		return r.Name
	case "image":
		return r.Image
	case "state":
		return r.Status
	case "ip":
		return r.IP
	case "ports":
		return r.Ports
	case "cpu":
		return r.CPU
	case "memory":
		return r.Memory
	}
	return ""
}

// ContainerRows builds the table from the container list and the latest
// stats sample per container ID (may be nil or partial).
func ContainerRows(cs []container.Summary, stats map[string]container.StatsResponse, now time.Time) []ContainerRow {
	sorted := sortContainers(cs)
	rows := make([]ContainerRow, 0, len(sorted))
	for _, c := range sorted {
		r := ContainerRow{
			ID: c.ID, Name: ContainerName(c.Names, c.ID), Image: c.Image, State: string(c.State),
			Status: stateLine(c), IP: orDash(SummaryIP(c)), Ports: orDash(FormatPorts(c.Ports)),
			CPU: "-", Memory: "-", Running: c.State == container.StateRunning,
		}
		if s, ok := stats[c.ID]; ok && r.Running {
			r.CPU = FormatPercent(CPUPercent(s))
			if s.MemoryStats.Usage > 0 {
				r.Memory = FormatBytes(int64(MemoryUsed(s)))
				if s.MemoryStats.Limit > 0 {
					r.Memory += " / " + FormatBytes(int64(s.MemoryStats.Limit))
				}
			}
		}
		r.Actions = containerItem(c, now).Submenu
		rows = append(rows, r)
	}
	return rows
}

// CPUPercent is docker stats' figure: the container's share of the host CPU
// time between the two samples in s, times the CPUs it can use.
func CPUPercent(s container.StatsResponse) float64 {
	cpuDelta := float64(s.CPUStats.CPUUsage.TotalUsage) - float64(s.PreCPUStats.CPUUsage.TotalUsage)
	sysDelta := float64(s.CPUStats.SystemUsage) - float64(s.PreCPUStats.SystemUsage)
	cpus := float64(s.CPUStats.OnlineCPUs)
	if cpus == 0 {
		cpus = float64(len(s.CPUStats.CPUUsage.PercpuUsage))
	}
	if cpus == 0 {
		cpus = 1
	}
	if cpuDelta <= 0 || sysDelta <= 0 {
		return 0
	}
	return cpuDelta / sysDelta * cpus * 100
}

// MemoryUsed is usage minus page cache (cgroup v2 "inactive_file"), as docker
// stats shows it.
func MemoryUsed(s container.StatsResponse) uint64 {
	u := s.MemoryStats.Usage
	if v, ok := s.MemoryStats.Stats["inactive_file"]; ok && v < u {
		return u - v
	}
	return u
}

// ImageRow is one line of the Images window's table.
type ImageRow struct {
	ID, Repository, Tag, Digest, Size, Platform, Created string
	InUse                                                bool
	Ref                                                  string // what `docker run` would take: repo:tag, or the ID
}

// ImageColumns are the Images table's columns, in order.
var ImageColumns = [][2]string{
	{"repository", "Repository"}, {"tag", "Tag"}, {"digest", "Image ID"},
	{"size", "Size"}, {"platform", "Platform"}, {"created", "Created"},
}

// Cell returns the row's value for a column identifier.
func (r ImageRow) Cell(col string) string {
	switch col {
	case "repository":
		return r.Repository
	case "tag":
		return r.Tag
	case "digest":
		return r.Digest
	case "size":
		return r.Size
	case "platform":
		return r.Platform
	case "created":
		return r.Created
	}
	return ""
}

// ImageRows lists one row per tag (untagged images get one "<none>" row),
// sorted by repository and tag, as `docker images` does.
func ImageRows(imgs []image.Summary, now time.Time) []ImageRow {
	var rows []ImageRow
	for _, im := range imgs {
		base := ImageRow{
			ID: im.ID, Digest: ShortID(im.ID), Size: FormatBytes(im.Size),
			Platform: imagePlatform(im), Created: FormatAgo(time.Unix(im.Created, 0), now),
			InUse: im.Containers > 0,
		}
		if len(im.RepoTags) == 0 {
			r := base
			r.Repository, r.Tag, r.Ref = "<none>", "<none>", ShortID(im.ID)
			if len(im.RepoDigests) > 0 {
				r.Repository = strings.SplitN(im.RepoDigests[0], "@", 2)[0]
				r.Ref = im.RepoDigests[0]
			}
			rows = append(rows, r)
			continue
		}
		for _, rt := range im.RepoTags {
			r := base
			r.Repository, r.Tag = splitRepoTag(rt)
			r.Ref = rt
			rows = append(rows, r)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Repository != rows[j].Repository {
			return rows[i].Repository < rows[j].Repository
		}
		return rows[i].Tag < rows[j].Tag
	})
	return rows
}

// splitRepoTag splits at the last colon that is after the last slash (a
// registry port is not a tag).
func splitRepoTag(s string) (string, string) {
	slash := strings.LastIndexByte(s, '/')
	if i := strings.LastIndexByte(s, ':'); i > slash {
		return s[:i], s[i+1:]
	}
	return s, "latest"
}

func imagePlatform(im image.Summary) string {
	if im.Descriptor != nil && im.Descriptor.Platform != nil {
		p := im.Descriptor.Platform
		s := p.OS + "/" + p.Architecture
		if p.Variant != "" {
			s += "/" + p.Variant
		}
		return s
	}
	var ps []string
	for _, m := range im.Manifests {
		if m.Descriptor.Platform != nil && m.Available {
			ps = append(ps, m.Descriptor.Platform.OS+"/"+m.Descriptor.Platform.Architecture)
		}
	}
	if len(ps) > 0 {
		return strings.Join(ps, ", ")
	}
	return "-"
}

// Detail is one labelled value of the container details pane.
type Detail struct{ Label, Value string }

// ContainerDetails flattens docker inspect into the details pane.
func ContainerDetails(in container.InspectResponse, now time.Time) []Detail {
	d := []Detail{{"Name", strings.TrimPrefix(in.Name, "/")}, {"ID", in.ID}, {"Image", in.Image}}
	if in.Config != nil {
		d[2].Value = in.Config.Image
		d = append(d, Detail{"Command", strings.Join(append(append([]string{}, in.Config.Entrypoint...), in.Config.Cmd...), " ")})
		if in.Config.WorkingDir != "" {
			d = append(d, Detail{"Working directory", in.Config.WorkingDir})
		}
		if len(in.Config.Env) > 0 {
			d = append(d, Detail{"Environment", strings.Join(in.Config.Env, "\n")})
		}
	}
	if in.State != nil {
		st := stateTitle(in.State.Status)
		if started, err := time.Parse(time.RFC3339Nano, in.State.StartedAt); err == nil && in.State.Running {
			st += ", up " + FormatUptime(now.Sub(started))
		} else if !in.State.Running && in.State.FinishedAt != "" && in.State.Status == container.StateExited {
			st += fmt.Sprintf(" (exit code %d)", in.State.ExitCode)
			if fin, err := time.Parse(time.RFC3339Nano, in.State.FinishedAt); err == nil {
				st += ", " + FormatAgo(fin, now)
			}
		}
		d = append(d, Detail{"State", st})
		if in.State.Error != "" {
			d = append(d, Detail{"Error", in.State.Error})
		}
		if in.State.OOMKilled {
			d = append(d, Detail{"Out of memory", "the kernel killed the main process"})
		}
	}
	if created, err := time.Parse(time.RFC3339Nano, in.Created); err == nil {
		d = append(d, Detail{"Created", FormatAgo(created, now)})
	}
	if in.NetworkSettings != nil {
		var ips []string
		for _, name := range sortedKeys(in.NetworkSettings.Networks) {
			if ep := in.NetworkSettings.Networks[name]; ep != nil && ep.IPAddress.IsValid() {
				ips = append(ips, ep.IPAddress.String())
			}
		}
		if len(ips) > 0 {
			d = append(d, Detail{"IP address", strings.Join(ips, ", ")})
		}
		var ports []string
		for p, bs := range in.NetworkSettings.Ports {
			for _, b := range bs {
				host := "127.0.0.1"
				if b.HostIP.IsValid() {
					host = b.HostIP.String()
				}
				ports = append(ports, fmt.Sprintf("%s:%s->%s", host, b.HostPort, p.String()))
			}
		}
		sort.Strings(ports)
		if len(ports) > 0 {
			d = append(d, Detail{"Ports", strings.Join(ports, ", ")})
		}
	}
	if hc := in.HostConfig; hc != nil {
		if hc.NanoCPUs > 0 {
			d = append(d, Detail{"CPUs", fmt.Sprintf("%g", float64(hc.NanoCPUs)/1e9)})
		}
		if hc.Memory > 0 {
			d = append(d, Detail{"Memory", FormatMiB(hc.Memory >> 20)})
		}
		if rp := hc.RestartPolicy; rp.Name != "" && rp.Name != container.RestartPolicyDisabled {
			v := string(rp.Name)
			if rp.MaximumRetryCount > 0 {
				v += fmt.Sprintf(":%d", rp.MaximumRetryCount)
			}
			d = append(d, Detail{"Restart policy", fmt.Sprintf("%s (restarted %d times)", v, in.RestartCount)})
		}
	}
	if in.Platform != "" {
		d = append(d, Detail{"Platform", in.Platform})
	}
	return d
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
