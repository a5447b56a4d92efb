package console

import (
	"context"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/ui/term"
)

func shDialer(t *testing.T) Dialer {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal("sh not found: install the Debian package dash")
	}
	return func(ctx context.Context, container string, cols, rows int) (Conn, error) {
		return StartLocal([]string{sh}, []string{"PS1=$ ", "TERM=xterm-256color", "PATH=/usr/bin:/bin", "ENV="}, cols, rows)
	}
}

// waitScreen waits until the session's screen (plus history) contains want.
func waitScreen(t *testing.T, s *Session, want string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // generous: a shell in a TCG VM on a loaded CI machine
	var text string
	for time.Now().Before(deadline) {
		s.With(func(m *term.Terminal) {
			w, h := m.Size()
			text = m.SelectionText(term.Pos{}, term.Pos{Row: m.HistoryRows() + h - 1, Col: w - 1})
		})
		if strings.Contains(text, want) {
			return text
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("screen never showed %q; it shows:\n%s", want, text)
	return ""
}

func TestSessionRunsShell(t *testing.T) {
	t.Parallel()
	reg := NewRegistry(shDialer(t), SessionOptions{Cols: 80, Rows: 24})
	s, err := reg.Open(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	defer s.End()
	s.Send([]byte("echo hel''lo $((6*7))\r"))
	waitScreen(t, s, "hello 42")

	// Resize reaches the process's terminal.
	if err := s.Resize(100, 30); err != nil {
		t.Fatal(err)
	}
	s.Send([]byte("stty size\r"))
	waitScreen(t, s, "30 100")

	// Queries the program sends are answered through the session's input.
	s.Send([]byte("stty -echo -icanon; printf '\\033[5n'; head -c 4 | od -An -c; stty sane\r"))
	waitScreen(t, s, "033   [   0   n")
}

func TestSessionSurvivesDetachAndRedrawsOnAttach(t *testing.T) {
	t.Parallel()
	reg := NewRegistry(shDialer(t), SessionOptions{Cols: 60, Rows: 10})
	s, err := reg.Open(context.Background(), "db")
	if err != nil {
		t.Fatal(err)
	}
	defer s.End()
	var changes atomic.Int32
	detach := s.Attach(func() { changes.Add(1) })
	s.Send([]byte("echo first\r"))
	waitScreen(t, s, "first")
	if changes.Load() == 0 {
		t.Fatal("attached view was not told about output")
	}
	detach() // the window closes; the shell keeps running
	s.Send([]byte("for i in 1 2 3; do echo while-closed-$i; done\r"))
	waitScreen(t, s, "while-closed-3")
	if got, ok := reg.Reattach("db"); !ok || got != s {
		t.Fatal("reopening the terminal must find the running session")
	}
	n := changes.Load()
	time.Sleep(100 * time.Millisecond)
	if changes.Load() != n {
		t.Fatal("detached view still called")
	}
	// Reattaching redraws every row from the model.
	s.Attach(func() {})
	var dirty []int
	s.With(func(m *term.Terminal) { dirty = m.TakeDirty() })
	if len(dirty) != 10 {
		t.Fatalf("after attach %d dirty rows, want all 10", len(dirty))
	}
}

func TestSessionEndAndExit(t *testing.T) {
	t.Parallel()
	reg := NewRegistry(shDialer(t), SessionOptions{})
	a, err := reg.Open(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := reg.Open(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(reg.Sessions("c1")); got != 2 {
		t.Fatalf("%d sessions", got)
	}
	// The shell exits on its own: the status is reported.
	a.Send([]byte("exit 3\r"))
	select {
	case <-a.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("session did not notice the shell exit")
	}
	if code, err := a.ExitCode(); code != 3 || err != nil {
		t.Fatalf("exit %d %v, want 3", code, err)
	}
	// End hangs up the other one.
	b.End()
	if !b.Ended() {
		t.Fatal("End returned before the session ended")
	}
	if code, _ := b.ExitCode(); code != 129 {
		t.Fatalf("ended shell exit %d, want 129 (SIGHUP)", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(reg.Sessions("c1")) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(reg.Sessions("")); n != 0 {
		t.Fatalf("%d sessions left in the registry", n)
	}
	b.Send([]byte("ignored after end"))
	b.End() // idempotent
}

func TestEndAll(t *testing.T) {
	t.Parallel()
	reg := NewRegistry(shDialer(t), SessionOptions{})
	for i := 0; i < 3; i++ {
		if _, err := reg.Open(context.Background(), "x"); err != nil {
			t.Fatal(err)
		}
	}
	keep, _ := reg.Open(context.Background(), "y")
	defer keep.End()
	reg.EndAll("x")
	time.Sleep(50 * time.Millisecond)
	if len(reg.Sessions("x")) != 0 || len(reg.Sessions("y")) != 1 {
		t.Fatalf("x:%d y:%d", len(reg.Sessions("x")), len(reg.Sessions("y")))
	}
}
