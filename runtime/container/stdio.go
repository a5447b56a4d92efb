package container

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/events"

	"github.com/berth-dev/berth/runtime/logs"
)

// stdinHub forwards attached clients' input to the current run's stdin
// pipe; writes wait while the container is not running.
type stdinHub struct {
	mu   sync.Mutex
	cond *sync.Cond
	w    *io.PipeWriter
	gen  int
}

func newStdinHub() *stdinHub {
	h := &stdinHub{}
	h.cond = sync.NewCond(&h.mu)
	return h
}

func (h *stdinHub) set(w *io.PipeWriter) {
	h.mu.Lock()
	h.w = w
	h.gen++
	h.mu.Unlock()
	h.cond.Broadcast()
}

func (h *stdinHub) clear() {
	h.mu.Lock()
	h.w = nil
	h.gen++
	h.mu.Unlock()
	h.cond.Broadcast()
}

// current waits for a run with stdin, or until stop is closed.
func (h *stdinHub) current(stop <-chan struct{}) *io.PipeWriter {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.w == nil {
		select {
		case <-stop:
			return nil
		default:
		}
		h.cond.Wait()
	}
	return h.w
}

// wake lets waiters in current re-check their stop channel.
func (h *stdinHub) wake() { h.cond.Broadcast() }

// fanout copies the main process's output to attached clients.
type fanout struct {
	mu   sync.Mutex
	atts map[*attachment]struct{}
}

type attachment struct {
	stdout, stderr io.Writer
	a              *Attachment
	finish         func(error)
}

func newFanout() *fanout { return &fanout{atts: map[*attachment]struct{}{}} }

func (f *fanout) add(a *attachment)    { f.mu.Lock(); f.atts[a] = struct{}{}; f.mu.Unlock() }
func (f *fanout) remove(a *attachment) { f.mu.Lock(); delete(f.atts, a); f.mu.Unlock() }

type streamWriter struct {
	f      *fanout
	stream string
}

func (f *fanout) writer(stream string) io.Writer { return streamWriter{f, stream} }

func (s streamWriter) Write(p []byte) (int, error) {
	s.f.mu.Lock()
	var dead []*attachment
	for a := range s.f.atts {
		w := a.stdout
		if s.stream == "stderr" {
			w = a.stderr
		}
		if w == nil {
			continue
		}
		if _, err := w.Write(p); err != nil {
			dead = append(dead, a) // the client went away; the container carries on
		}
	}
	for _, a := range dead {
		delete(s.f.atts, a)
	}
	s.f.mu.Unlock()
	for _, a := range dead {
		a.finish(nil)
	}
	return len(p), nil
}

// endRun ends every attachment: the main process has exited.
func (f *fanout) endRun() {
	f.mu.Lock()
	all := f.atts
	f.atts = map[*attachment]struct{}{}
	f.mu.Unlock()
	for a := range all {
		a.finish(nil)
	}
}

// ParseDetachKeys reads Docker's detach-key syntax: "ctrl-p,ctrl-q", "a,ctrl-@".
func ParseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		s = "ctrl-p,ctrl-q"
	}
	var out []byte
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		switch {
		case len(k) == 1:
			out = append(out, k[0])
		case strings.HasPrefix(strings.ToLower(k), "ctrl-") && len(k) == 6:
			c := k[5]
			switch {
			case c >= 'a' && c <= 'z':
				out = append(out, c-'a'+1)
			case c >= 'A' && c <= 'Z':
				out = append(out, c-'A'+1)
			case c == '@':
				out = append(out, 0)
			case c >= '[' && c <= '_':
				out = append(out, c-'['+27)
			default:
				return nil, errf(ErrInvalid, "invalid detach key %q", k)
			}
		default:
			return nil, errf(ErrInvalid, "invalid detach key %q (use e.g. ctrl-p,ctrl-q)", k)
		}
	}
	return out, nil
}

// detachReader passes bytes through until the key sequence is typed.
type detachReader struct {
	r        io.Reader
	keys     []byte
	matched  int
	pending  []byte
	detached bool
	err      error
}

var errDetachSeq = ErrDetached

func (d *detachReader) Read(p []byte) (int, error) {
	for len(d.pending) == 0 {
		if d.detached {
			return 0, errDetachSeq
		}
		if d.err != nil {
			return 0, d.err
		}
		buf := make([]byte, len(p))
		n, err := d.r.Read(buf)
		d.err = err
		for _, b := range buf[:n] {
			if d.detached {
				break
			}
			if len(d.keys) == 0 {
				d.pending = append(d.pending, b)
				continue
			}
			// Keep the longest tail of held bytes + b that could still
			// become the key sequence; everything before it is data.
			cand := append(append([]byte(nil), d.keys[:d.matched]...), b)
			d.matched = 0
			for s := 0; s < len(cand); s++ {
				if bytes.HasPrefix(d.keys, cand[s:]) {
					d.pending = append(d.pending, cand[:s]...)
					d.matched = len(cand) - s
					break
				}
			}
			if d.matched == 0 {
				d.pending = append(d.pending, cand...)
			}
			if d.matched == len(d.keys) {
				d.detached = true
			}
		}
		if d.err != nil && !d.detached && d.matched > 0 {
			// The input ended inside a partial sequence: it was data.
			d.pending = append(d.pending, d.keys[:d.matched]...)
			d.matched = 0
		}
	}
	n := copy(p, d.pending)
	d.pending = d.pending[n:]
	return n, nil
}

func (m *Manager) attach(ctx context.Context, ref string, o AttachOptions) (*Attachment, error) {
	c, err := m.get(ref)
	if err != nil {
		return nil, err
	}
	keys, err := ParseDetachKeys(o.DetachKeys)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	tty := c.rec.Config.Tty
	openStdin := c.rec.Config.OpenStdin
	stdinOnce := c.rec.Config.StdinOnce
	m.mu.Unlock()
	stderr := o.Stderr
	if tty {
		stderr = nil // a tty has one output stream
	}
	if o.Logs {
		err := c.log.Read(ctx, logs.ReadOptions{Tail: -1}, func(e logs.Entry) error {
			w := o.Stdout
			if e.Stream == "stderr" && !tty {
				w = o.Stderr
			}
			if w != nil {
				w.Write(e.Line)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	a := &Attachment{done: make(chan struct{})}
	var once sync.Once
	at := &attachment{stdout: o.Stdout, stderr: stderr, a: a}
	at.finish = func(err error) {
		once.Do(func() {
			c.attached.remove(at)
			a.err = err
			close(a.done)
			c.stdin.wake()
		})
	}
	a.stop = func() { at.finish(nil) }
	if !o.Stream {
		close(a.done)
		return a, nil
	}
	c.attached.add(at)
	go func() {
		select {
		case <-ctx.Done():
			at.finish(ctx.Err())
		case <-a.done:
		case <-c.removed:
			at.finish(nil)
		}
	}()
	if o.Stdin != nil && openStdin {
		go func() {
			dr := &detachReader{r: o.Stdin, keys: keys}
			buf := make([]byte, 32<<10)
			for {
				n, err := dr.Read(buf)
				if n > 0 {
					w := c.stdin.current(a.done)
					if w == nil {
						return
					}
					if _, werr := w.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err == errDetachSeq {
					m.emit(events.ActionDetach, c, nil)
					at.finish(ErrDetached)
					return
				}
				if err != nil {
					// Like dockerd, StdinOnce closes stdin at the client's
					// EOF only without a tty: with one, the docker CLI
					// detaches (ctrl-p ctrl-q) by ending its input, and the
					// shell must live on.
					if stdinOnce && !tty {
						if w := c.stdin.current(a.done); w != nil {
							w.Close()
						}
					}
					return
				}
			}
		}()
	}
	return a, nil
}

func (m *Manager) logs(ctx context.Context, ref string, o LogsOptions, fn func(logs.Entry) error) error {
	c, err := m.get(ref)
	if err != nil {
		return err
	}
	m.mu.Lock()
	running := c.run != nil
	m.mu.Unlock()
	both := !o.Stdout && !o.Stderr
	return c.log.Read(ctx, logs.ReadOptions{Tail: o.Tail, Since: o.Since, Until: o.Until, Follow: o.Follow && running},
		func(e logs.Entry) error {
			if both || (e.Stream == "stdout" && o.Stdout) || (e.Stream == "stderr" && o.Stderr) {
				return fn(e)
			}
			return nil
		})
}

func (m *Manager) running(ref string) (*ctr, *run, error) {
	c, err := m.get(ref)
	if err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	rn, booting := c.run, c.booting
	m.mu.Unlock()
	if rn == nil && booting != nil {
		// Starting (e.g. restarted by its policy): wait for the VM rather
		// than fail an exec that came a moment early.
		<-booting
		m.mu.Lock()
		rn = c.run
		m.mu.Unlock()
	}
	if rn == nil {
		return c, nil, errf(ErrConflict, "container %s is not running", ref)
	}
	m.mu.Lock()
	paused := rn.paused
	m.mu.Unlock()
	if paused {
		// Its VM answers nothing until resumed: fail now, not hang.
		return c, nil, errf(ErrConflict, "container %s is paused: unpause it first (docker unpause %s)", ref, ref)
	}
	return c, rn, nil
}

func (m *Manager) resize(ctx context.Context, ref string, h, w uint) error {
	c, rn, err := m.running(ref)
	if err != nil {
		return err
	}
	if !c.rec.Config.Tty {
		return nil // Docker ignores resizes of non-tty containers
	}
	return rn.proc.Resize(ctx, h, w)
}
