package model

import (
	"net/netip"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		-1: "-", 0: "0 B", 999: "999 B", 1000: "1 kB", 1500: "1.5 kB", 12345678: "12.3 MB",
		123456789: "123 MB", 1234567890: "1.23 GB", 999_999: "1 MB", 4_300_000: "4.3 MB",
	} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFormatMiB(t *testing.T) {
	for n, want := range map[int64]string{512: "512 MiB", 1024: "1 GiB", 1536: "1.5 GiB", 8192: "8 GiB"} {
		if got := FormatMiB(n); got != want {
			t.Errorf("FormatMiB(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFormatUptime(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 0: "0s", 42 * time.Second: "42s", 5*time.Minute + 3*time.Second: "5m",
		2 * time.Hour: "2h", 2*time.Hour + 10*time.Minute: "2h 10m", 3*24*time.Hour + 4*time.Hour + 59*time.Minute: "3d 4h",
		48 * time.Hour: "2d",
	} {
		if got := FormatUptime(d); got != want {
			t.Errorf("FormatUptime(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestFormatAgo(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		time.Second: "just now", 30 * time.Second: "30 seconds ago", time.Minute: "1 minute ago",
		3 * time.Hour: "3 hours ago", 49 * time.Hour: "2 days ago",
	} {
		if got := FormatAgo(now.Add(-d), now); got != want {
			t.Errorf("FormatAgo(-%v) = %q, want %q", d, got, want)
		}
	}
	if got := FormatAgo(time.Time{}, now); got != "-" {
		t.Errorf("zero time: %q", got)
	}
	if got := FormatAgo(now.AddDate(0, -3, 0), now); got == "" || got[len(got)-4:] != "2026" {
		t.Errorf("old date: %q", got)
	}
}

func TestFormatPortsAndURLs(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	ports := []container.PortSummary{
		{IP: lo, PrivatePort: 80, PublicPort: 8080, Type: "tcp"},
		{PrivatePort: 443, Type: "tcp"},
		{IP: lo, PrivatePort: 80, PublicPort: 8080, Type: "tcp"}, // duplicate (v4 + same) collapses
		{IP: netip.MustParseAddr("::1"), PrivatePort: 53, PublicPort: 5353, Type: "udp"},
	}
	if got, want := FormatPorts(ports), "[::1]:5353->53/udp, 127.0.0.1:8080->80/tcp, 443/tcp"; got != want {
		t.Errorf("FormatPorts = %q, want %q", got, want)
	}
	if u, ok := BrowserURL(ports[0]); !ok || u != "http://localhost:8080" {
		t.Errorf("BrowserURL = %q %v", u, ok)
	}
	if _, ok := BrowserURL(ports[1]); ok {
		t.Error("an unpublished port has no URL")
	}
	if _, ok := BrowserURL(ports[3]); ok {
		t.Error("a UDP port has no URL")
	}
	if u, _ := BrowserURL(container.PortSummary{IP: netip.MustParseAddr("192.168.1.5"), PrivatePort: 443, PublicPort: 8443, Type: "tcp"}); u != "https://192.168.1.5:8443" {
		t.Errorf("https URL = %q", u)
	}
}

func TestIDsAndNames(t *testing.T) {
	if got := ShortID("sha256:0123456789abcdef0123"); got != "0123456789ab" {
		t.Errorf("ShortID = %q", got)
	}
	if got := ContainerName([]string{"/web/db", "/web"}, "x"); got != "web" {
		t.Errorf("ContainerName = %q", got)
	}
	if got := ContainerName(nil, "0123456789abcdef"); got != "0123456789ab" {
		t.Errorf("ContainerName fallback = %q", got)
	}
}
