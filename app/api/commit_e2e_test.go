package api

import (
	"strings"
	"testing"
	"time"
)

// TestDockerCLIDiffCommit: docker diff of a running and of a stopped
// container, docker commit with --change, and the committed image run.
// Three VM boots.
func TestDockerCLIDiffCommit(t *testing.T) {
	e, d := vmTest(t)
	sock, img := e.Sock, e.Image
	events := startBackground(t, t.Context(), sock, "events", "--format", "{{.Action}} {{.Actor.Attributes.name}}", "--filter", "type=container")
	d("run", "-d", "--name", "d1", img, "sh", "-c",
		"echo new > /new.txt && echo 'extra:x:1001:1001::/:/bin/sh' >> /etc/passwd && rm /hello.txt && mkdir -p /root/x && sleep 100000")
	waitFor(t, "the container's changes", 60*time.Second, func() bool {
		return docker(t, sock, nil, "exec", "d1", "test", "-d", "/root/x").Code == 0
	})
	want := "C /etc\nC /etc/passwd\nD /hello.txt\nA /new.txt\nC /root\nA /root/x\n"
	// Running: synced and frozen for the read, running again afterwards.
	if got := d("diff", "d1"); got != want {
		t.Fatalf("docker diff of the running container:\n%s\nwant:\n%s", got, want)
	}
	if out := d("exec", "d1", "cat", "/new.txt"); out != "new\n" {
		t.Fatalf("after diff the container answers %q", out)
	}
	// Committed while running (--pause=false still freezes it for the read).
	d("commit", "--pause=false", "d1", "myimg:2")
	// Paused by the user: resumed for the sync, paused again.
	d("pause", "d1")
	if got := d("diff", "d1"); got != want {
		t.Fatalf("docker diff of the paused container:\n%s\nwant:\n%s", got, want)
	}
	if got := strings.TrimSpace(d("inspect", "-f", "{{.State.Paused}}", "d1")); got != "true" {
		t.Fatalf("after diff the paused container is paused=%s", got)
	}
	d("stop", "-t", "1", "d1")
	if got := d("diff", "d1"); got != want {
		t.Fatalf("docker diff of the stopped container:\n%s\nwant:\n%s", got, want)
	}

	out := d("commit", "--change", `CMD ["cat","/new.txt"]`, "-c", "ENV X=1", "-m", "my change", "-a", "tester", "d1", "myimg:1")
	if id := strings.TrimSpace(out); !strings.HasPrefix(id, "sha256:") || len(id) != 71 {
		t.Fatalf("docker commit printed %q", out)
	}
	if got := d("run", "--rm", "myimg:1"); got != "new\n" {
		t.Fatalf("run of the committed image printed %q", got)
	}
	r := docker(t, sock, nil, "run", "--rm", "myimg:1", "sh", "-c", "echo X=$X; cat /etc/passwd | grep -c extra; ls /hello.txt")
	if r.Code == 0 || !strings.Contains(r.Stdout, "X=1\n1\n") || !strings.Contains(r.Stderr+r.Stdout, "No such file") {
		t.Fatalf("committed image: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if got := strings.TrimSpace(d("image", "inspect", "-f", "{{len .RootFS.Layers}} {{.Author}} {{.Comment}} {{.Config.Cmd}}", "myimg:1")); got != "3 tester my change [cat /new.txt]" {
		t.Fatalf("image inspect: %q", got)
	}
	if got := strings.TrimSpace(d("image", "inspect", "-f", "{{len .RootFS.Layers}} {{.Config.Cmd}}", "myimg:2")); !strings.HasPrefix(got, "3 [sh -c ") {
		t.Fatalf("image inspect of the image committed while running: %q", got)
	}
	if hist := d("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", "myimg:1"); !strings.HasPrefix(hist, "berth commit|my change\n") {
		t.Fatalf("history:\n%s", hist)
	}

	// Bad input: one line naming the problem; nothing is added.
	before := d("images", "-q")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"commit", "-c", "RUN rm -rf /", "d1", "bad:1"}, "RUN is not a valid change"},
		{[]string{"commit", "-c", "EXPOSE 99999", "d1", "bad:1"}, "EXPOSE"},
		{[]string{"commit", "nosuch", "bad:1"}, "No such container: nosuch"},
		{[]string{"diff", "nosuch"}, "No such container: nosuch"},
	} {
		r := docker(t, sock, nil, c.args...)
		if r.Code == 0 || !strings.Contains(r.Stderr, c.want) || strings.Count(strings.TrimSpace(r.Stderr), "\n") > 0 {
			t.Errorf("docker %v: exit %d, stderr %q (want one line with %q)", c.args, r.Code, r.Stderr, c.want)
		}
	}
	if after := d("images", "-q"); after != before {
		t.Errorf("failed commits changed the image list:\n%s\nwas:\n%s", after, before)
	}
	waitFor(t, "the commit event", 10*time.Second, func() bool { return strings.Contains(events.String(), "commit d1") })
}
