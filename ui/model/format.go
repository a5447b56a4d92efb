package model

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
)

// FormatBytes renders a size the way docker does (decimal units, three
// significant digits): 0 B, 999 B, 1.5 kB, 12.3 MB, 123 MB, 1.23 GB.
func FormatBytes(n int64) string {
	if n < 0 {
		return "-"
	}
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	f := float64(n)
	i := 0
	for f >= 999.5 && i < len(units)-1 {
		f /= 1000
		i++
	}
	switch {
	case i == 0:
		return fmt.Sprintf("%d B", n)
	case f < 9.995:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", f), "0"), ".") + " " + units[i]
	case f < 99.95:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", f), "0"), ".") + " " + units[i]
	default:
		return fmt.Sprintf("%.0f %s", f, units[i])
	}
}

// FormatMiB renders a memory size given in MiB (settings, run dialog).
func FormatMiB(mib int64) string {
	if mib >= 1024 && mib%1024 == 0 {
		return fmt.Sprintf("%d GiB", mib/1024)
	}
	if mib >= 1024 {
		return fmt.Sprintf("%.1f GiB", float64(mib)/1024)
	}
	return fmt.Sprintf("%d MiB", mib)
}

// FormatUptime renders how long something has run, compactly, to the two
// most significant units: 42s, 5m, 2h 10m, 3d 4h.
func FormatUptime(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm", s/60)
	case s < 86400:
		if m := s % 3600 / 60; m != 0 {
			return fmt.Sprintf("%dh %dm", s/3600, m)
		}
		return fmt.Sprintf("%dh", s/3600)
	default:
		if h := s % 86400 / 3600; h != 0 {
			return fmt.Sprintf("%dd %dh", s/86400, h)
		}
		return fmt.Sprintf("%dd", s/86400)
	}
}

// FormatAgo renders a past moment relative to now: "just now", "5 minutes
// ago", "3 days ago", then a date for anything older than 30 days.
func FormatAgo(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit + " ago"
		}
		return fmt.Sprintf("%d %ss ago", n, unit)
	}
	switch {
	case d < 10*time.Second:
		return "just now"
	case d < time.Minute:
		return plural(int64(d/time.Second), "second")
	case d < time.Hour:
		return plural(int64(d/time.Minute), "minute")
	case d < 24*time.Hour:
		return plural(int64(d/time.Hour), "hour")
	case d < 30*24*time.Hour:
		return plural(int64(d/(24*time.Hour)), "day")
	default:
		return t.Local().Format("2 Jan 2006")
	}
}

// FormatPorts renders published ports as docker ps does, sorted and
// de-duplicated: "127.0.0.1:8080->80/tcp, 443/tcp".
func FormatPorts(ports []container.PortSummary) string {
	seen := map[string]bool{}
	var out []string
	sorted := append([]container.PortSummary(nil), ports...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].PrivatePort != sorted[j].PrivatePort {
			return sorted[i].PrivatePort < sorted[j].PrivatePort
		}
		if sorted[i].Type != sorted[j].Type {
			return sorted[i].Type < sorted[j].Type
		}
		return sorted[i].PublicPort < sorted[j].PublicPort
	})
	for _, p := range sorted {
		proto := p.Type
		if proto == "" {
			proto = "tcp"
		}
		var s string
		if p.PublicPort != 0 {
			host := "0.0.0.0"
			if p.IP.IsValid() {
				host = p.IP.String()
				if p.IP.Is6() {
					host = "[" + host + "]"
				}
			}
			s = fmt.Sprintf("%s:%d->%d/%s", host, p.PublicPort, p.PrivatePort, proto)
		} else {
			s = fmt.Sprintf("%d/%s", p.PrivatePort, proto)
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return strings.Join(out, ", ")
}

// BrowserURL is the address to open for a published TCP port: the host side
// of the binding, with a wildcard bind shown as localhost.
func BrowserURL(p container.PortSummary) (string, bool) {
	if p.PublicPort == 0 || (p.Type != "" && p.Type != "tcp") {
		return "", false
	}
	host := "localhost"
	if p.IP.IsValid() && !p.IP.IsUnspecified() && !p.IP.IsLoopback() {
		host = p.IP.String()
		if p.IP.Is6() {
			host = "[" + host + "]"
		}
	}
	scheme := "http"
	if p.PrivatePort == 443 || p.PrivatePort == 8443 {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s:%d", scheme, host, p.PublicPort), true
}

// ShortID is the 12-character ID docker shows, without a "sha256:" prefix.
func ShortID(id string) string {
	if i := strings.IndexByte(id, ':'); i >= 0 {
		id = id[i+1:]
	}
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ContainerName is the primary name without docker's leading slash.
func ContainerName(names []string, id string) string {
	for _, n := range names {
		n = strings.TrimPrefix(n, "/")
		if n != "" && !strings.Contains(n, "/") { // skip legacy link aliases (a/b)
			return n
		}
	}
	return ShortID(id)
}

// SummaryIP is the container's address on its first network (by name).
func SummaryIP(c container.Summary) string {
	if c.NetworkSettings == nil {
		return ""
	}
	names := make([]string, 0, len(c.NetworkSettings.Networks))
	for n := range c.NetworkSettings.Networks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if ep := c.NetworkSettings.Networks[n]; ep != nil && ep.IPAddress.IsValid() && !ep.IPAddress.IsUnspecified() {
			return ep.IPAddress.String()
		}
	}
	return ""
}

// FormatPercent renders a CPU share: "0.0%", "12.5%", "250%".
func FormatPercent(p float64) string {
	if p >= 100 {
		return strconv.FormatFloat(p, 'f', 0, 64) + "%"
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + "%"
}
