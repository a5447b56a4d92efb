package api

import (
	"strings"
	"testing"
	"time"
)

// TestDockerCLIPause: docker pause freezes the container's VM. ps and
// inspect say so, calls that need the guest fail at once with a clear
// message, unpause brings it back (with the guest clock set again), and a
// paused container can still be stopped. One VM boot.
func TestDockerCLIPause(t *testing.T) {
	e, d := vmTest(t)
	sock, img := e.Sock, e.Image
	events := startBackground(t, t.Context(), sock, "events", "--format", "{{.Action}}", "--filter", "type=container")
	d("run", "-d", "--name", "p1", img, "sleep", "100000")

	d("pause", "p1")
	if out := d("ps", "--format", "{{.Names}} {{.Status}}"); !strings.Contains(out, "p1 Up") || !strings.Contains(out, "(Paused)") {
		t.Fatalf("ps after pause:\n%s", out)
	}
	if out := strings.TrimSpace(d("inspect", "-f", "{{.State.Status}} {{.State.Paused}} {{.State.Running}}", "p1")); out != "paused true true" {
		t.Fatalf("inspect after pause: %q", out)
	}
	if out := d("ps", "--filter", "status=paused", "--format", "{{.Names}}"); strings.TrimSpace(out) != "p1" {
		t.Fatalf("ps --filter status=paused: %q", out)
	}
	start := time.Now()
	r := docker(t, sock, nil, "exec", "p1", "true")
	if r.Code == 0 || !strings.Contains(r.Stderr, "is paused") || !strings.Contains(r.Stderr, "unpause") {
		t.Fatalf("exec into a paused container: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("exec into a paused container took %s to fail", time.Since(start))
	}
	// stats answers at once (a frozen VM cannot report; it uses no CPU).
	if out := d("stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}}", "p1"); !strings.HasPrefix(strings.TrimSpace(out), "p1 0.00%") {
		t.Fatalf("stats of a paused container: %q", out)
	}
	if r := docker(t, sock, nil, "pause", "p1"); r.Code == 0 || !strings.Contains(r.Stderr, "paused") {
		t.Fatalf("second pause: exit %d %q", r.Code, r.Stderr)
	}

	d("unpause", "p1")
	if r := docker(t, sock, nil, "unpause", "p1"); r.Code == 0 || !strings.Contains(r.Stderr, "not paused") {
		t.Fatalf("unpause of a running container: exit %d %q", r.Code, r.Stderr)
	}
	// The guest's clock is right again at once (it stood still while paused).
	time.Sleep(3 * time.Second)
	d("pause", "p1")
	time.Sleep(4 * time.Second)
	d("unpause", "p1")
	out := strings.TrimSpace(d("exec", "p1", "date", "+%s"))
	var guest int64
	for _, c := range out {
		if c < '0' || c > '9' {
			t.Fatalf("date +%%s printed %q", out)
		}
		guest = guest*10 + int64(c-'0')
	}
	if skew := time.Now().Unix() - guest; skew > 2 || skew < -2 {
		t.Errorf("guest clock %d s off after unpause", skew)
	}

	// A paused container still stops (resumed first, as in Docker).
	d("pause", "p1")
	d("stop", "-t", "1", "p1")
	if out := strings.TrimSpace(d("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "p1")); out != "exited false" {
		t.Fatalf("inspect after stopping a paused container: %q", out)
	}
	d("rm", "p1")
	waitFor(t, "pause/unpause events", 10*time.Second, func() bool {
		n := map[string]int{}
		for _, l := range strings.Split(events.String(), "\n") {
			n[l]++
		}
		return n["pause"] == 3 && n["unpause"] == 3
	})
}
