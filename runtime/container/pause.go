package container

import (
	"context"
	"time"

	"github.com/moby/moby/api/types/events"
)

// docker pause freezes the whole VM (its vCPUs stop, memory stays), which
// is exactly what Docker's cgroup freezer does to a container's processes,
// and costs no CPU while paused. A paused VM answers nothing, so calls that
// need the agent fail at once with a clear conflict (see running), and stop
// and kill resume it first, as Docker does.

func (m *Manager) pause(ctx context.Context, ref string) error {
	c, rn, err := m.running(ref) // also refuses an already paused container
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	current := c.run
	m.mu.Unlock()
	if current != rn {
		return errf(ErrConflict, "container %s is not running", ref)
	}
	if err := rn.machine.Pause(); err != nil {
		return errf(ErrConflict, "pause %s: %v", ref, err)
	}
	m.mu.Lock()
	rn.paused = true
	m.mu.Unlock()
	m.emit(events.ActionPause, c, nil)
	return nil
}

func (m *Manager) unpause(ctx context.Context, ref string) error {
	c, err := m.get(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	rn := c.run
	paused := rn != nil && rn.paused
	m.mu.Unlock()
	if !paused {
		return errf(ErrConflict, "container %s is not paused", ref)
	}
	return m.resume(ctx, c, rn)
}

// resumeToStop resumes a paused container so that a stop or kill can reach
// its processes; c.op is held by the caller or not needed (kill).
func (m *Manager) resumeToStop(ctx context.Context, c *ctr, rn *run) error {
	m.mu.Lock()
	paused := rn.paused
	m.mu.Unlock()
	if !paused {
		return nil
	}
	return m.resume(ctx, c, rn)
}

func (m *Manager) resume(ctx context.Context, c *ctr, rn *run) error {
	if err := rn.machine.Resume(); err != nil {
		return errf(ErrConflict, "unpause %s: %v", c.rec.Name, err)
	}
	m.mu.Lock()
	rn.paused = false
	m.mu.Unlock()
	// The guest clock stood still while paused: set it again, so the
	// container's time is right at once rather than after the next sync.
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rn.guest.SetTime(tctx, time.Now()); err != nil {
		m.log.Warn("set guest time after unpause", "id", c.rec.ID, "err", err)
	}
	m.refreshHosts(ctx, c)
	m.emit(events.ActionUnPause, c, nil)
	return nil
}

// refreshHosts rewrites c's hosts file: while it was paused, its network
// peers came and went without it hearing (pushes skip paused members).
func (m *Manager) refreshHosts(ctx context.Context, c *ctr) {
	m.hostsMu.Lock()
	defer m.hostsMu.Unlock()
	m.mu.Lock()
	g := c.netGuest
	var hosts []string
	if g != nil {
		hosts = m.hostsLocked(c)
	}
	m.mu.Unlock()
	if g == nil {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := g.SetHosts(hctx, hosts); err != nil {
		m.log.Warn("refresh /etc/hosts after unpause", "id", c.rec.ID, "err", err)
	}
}
