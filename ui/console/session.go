package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/berth-dev/berth/ui/term"
)

// Session is one interactive terminal: a Conn feeding a terminal model.
// It lives until its process ends or End is called, whether or not a window
// shows it; a window attaches, draws from the model, and detaches on close.
type Session struct {
	ID        string
	Container string
	Started   time.Time

	conn Conn

	mu       sync.Mutex
	term     *term.Terminal
	title    string
	onChange func() // the attached view's redraw request, or nil

	in *inputQueue

	done     chan struct{}
	exitCode int
	exitErr  error
	endOnce  sync.Once
}

// SessionOptions configures a new session.
type SessionOptions struct {
	Cols, Rows      int // initial size; default 80×24
	ScrollbackLines int // default term.DefaultScrollback
}

// NewSession starts pumping conn's output into a new terminal model.
func NewSession(id, container string, conn Conn, opts SessionOptions) *Session {
	if opts.Cols <= 0 || opts.Rows <= 0 {
		opts.Cols, opts.Rows = 80, 24
	}
	s := &Session{
		ID: id, Container: container, Started: time.Now(), conn: conn,
		term: term.New(opts.Cols, opts.Rows, opts.ScrollbackLines),
		in:   newInputQueue(conn),
		done: make(chan struct{}),
	}
	// Answers to the program's queries go back through the same ordered
	// input queue as keystrokes, never written while the model is locked.
	s.term.SetReply(func(b []byte) { s.in.push(append([]byte(nil), b...)) })
	s.term.SetTitleHandler(func(t string) { s.title = t })
	go s.pump()
	return s
}

func (s *Session) pump() {
	buf := make([]byte, 64<<10)
	var err error
	for {
		var n int
		n, err = s.conn.Read(buf)
		if n > 0 {
			s.mu.Lock()
			s.term.Write(buf[:n])
			notify := s.onChange
			s.mu.Unlock()
			if notify != nil {
				notify()
			}
		}
		if err != nil {
			break
		}
	}
	s.finish(err)
}

func (s *Session) finish(readErr error) {
	s.endOnce.Do(func() {
		s.in.close()
		s.conn.Close()
		s.exitCode = -1
		if ec, ok := s.conn.(ExitCoder); ok {
			s.exitCode, s.exitErr = ec.ExitCode()
		} else if readErr != nil && !errors.Is(readErr, io.EOF) {
			s.exitErr = readErr
		}
		s.mu.Lock()
		notify := s.onChange
		s.mu.Unlock()
		close(s.done)
		if notify != nil {
			notify()
		}
	})
}

// Send queues input for the process (keystrokes, paste). It never blocks.
func (s *Session) Send(p []byte) {
	if len(p) > 0 {
		s.in.push(append([]byte(nil), p...))
	}
}

// Resize changes the model and the process's terminal size.
func (s *Session) Resize(cols, rows int) error {
	s.mu.Lock()
	w, h := s.term.Size()
	if w == cols && h == rows {
		s.mu.Unlock()
		return nil
	}
	s.term.Resize(cols, rows)
	s.mu.Unlock()
	if s.Ended() {
		return nil
	}
	return s.conn.Resize(cols, rows)
}

// Attach registers the view's change callback (called from the session's
// goroutine, so it must only schedule a redraw) and marks every row dirty
// so the view redraws the whole screen from the model. The returned func
// detaches; the session keeps running.
func (s *Session) Attach(onChange func()) (detach func()) {
	s.mu.Lock()
	s.onChange = onChange
	s.term.MarkAllDirty()
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.onChange = nil
		s.mu.Unlock()
	}
}

// With runs f with the model locked; views read the grid inside it.
func (s *Session) With(f func(t *term.Terminal)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.term)
}

// Title is what the program last set as the window title, or a default.
func (s *Session) Title() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.title != "" {
		return s.title
	}
	return s.Container
}

// End ends the session: the process is hung up and the connection closed.
func (s *Session) End() {
	s.conn.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.finish(errors.New("session did not end within 5s"))
	}
}

// Done is closed when the process has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Ended reports whether the process has ended.
func (s *Session) Ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// ExitCode returns the process's exit status once Done is closed (-1 when
// unknown).
func (s *Session) ExitCode() (int, error) {
	<-s.done
	return s.exitCode, s.exitErr
}

// inputQueue writes to the process in order from its own goroutine, so a
// caller (the UI thread, or the model's replies) never blocks on a full pipe.
type inputQueue struct {
	w      io.Writer
	mu     sync.Mutex
	q      [][]byte
	wake   chan struct{}
	closed bool
}

func newInputQueue(w io.Writer) *inputQueue {
	iq := &inputQueue{w: w, wake: make(chan struct{}, 1)}
	go iq.run()
	return iq
}

func (iq *inputQueue) push(b []byte) {
	iq.mu.Lock()
	if iq.closed {
		iq.mu.Unlock()
		return
	}
	iq.q = append(iq.q, b)
	iq.mu.Unlock()
	select {
	case iq.wake <- struct{}{}:
	default:
	}
}

func (iq *inputQueue) close() {
	iq.mu.Lock()
	iq.closed = true
	iq.q = nil
	iq.mu.Unlock()
	select {
	case iq.wake <- struct{}{}:
	default:
	}
}

func (iq *inputQueue) run() {
	for range iq.wake {
		for {
			iq.mu.Lock()
			if iq.closed {
				iq.mu.Unlock()
				return
			}
			if len(iq.q) == 0 {
				iq.mu.Unlock()
				break
			}
			b := iq.q[0]
			iq.q = iq.q[1:]
			iq.mu.Unlock()
			if _, err := iq.w.Write(b); err != nil {
				iq.close()
				return
			}
		}
	}
}

// Dialer opens a Conn for container at the given size.
type Dialer func(ctx context.Context, container string, cols, rows int) (Conn, error)

// Registry holds the live sessions, per container. Ended sessions remove
// themselves.
type Registry struct {
	dial Dialer
	opts SessionOptions

	mu       sync.Mutex
	next     int
	sessions map[string]*Session
}

// NewRegistry returns a registry that opens sessions with dial.
func NewRegistry(dial Dialer, opts SessionOptions) *Registry {
	return &Registry{dial: dial, opts: opts, sessions: map[string]*Session{}}
}

// Open starts a new session in container.
func (r *Registry) Open(ctx context.Context, container string) (*Session, error) {
	cols, rows := r.opts.Cols, r.opts.Rows
	if cols <= 0 || rows <= 0 {
		cols, rows = 80, 24
	}
	conn, err := r.dial(ctx, container, cols, rows)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.next++
	id := container + "#" + strconv.Itoa(r.next)
	s := NewSession(id, container, conn, SessionOptions{Cols: cols, Rows: rows, ScrollbackLines: r.opts.ScrollbackLines})
	r.sessions[id] = s
	r.mu.Unlock()
	go func() {
		<-s.Done()
		r.mu.Lock()
		delete(r.sessions, id)
		r.mu.Unlock()
	}()
	return s, nil
}

// Get returns a session by ID.
func (r *Registry) Get(id string) (*Session, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sessions[id]
	return s, ok
}

// Sessions returns container's live sessions, oldest first ("" = all).
func (r *Registry) Sessions(container string) []*Session {
	r.mu.Lock()
	var out []*Session
	for _, s := range r.sessions {
		if container == "" || s.Container == container {
			out = append(out, s)
		}
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Started.Equal(out[j].Started) {
			return out[i].Started.Before(out[j].Started)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Reattach returns the newest live session for container, if any: "Open
// Terminal" on a container that already has one shows it again rather than
// starting a second shell.
func (r *Registry) Reattach(container string) (*Session, bool) {
	ss := r.Sessions(container)
	if len(ss) == 0 {
		return nil, false
	}
	return ss[len(ss)-1], true
}

// EndAll ends every session of container ("" = all), e.g. when it stops.
func (r *Registry) EndAll(container string) {
	var wg sync.WaitGroup
	for _, s := range r.Sessions(container) {
		wg.Add(1)
		go func() { defer wg.Done(); s.End() }()
	}
	wg.Wait()
}

func (s *Session) String() string { return fmt.Sprintf("session %s (%s)", s.ID, s.Container) }
