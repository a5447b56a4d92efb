// Package notify decides which container events deserve a user
// notification: a container that dies on its own (non-zero exit, or killed
// by something other than the user) is reported once, naming it and its
// exit code, with Show Logs / Restart actions; restart-policy crash loops
// are summarised instead of repeated; user stops are never reported.
//
// It is portable and clock-injected; the darwin shell posts what it returns
// through UNUserNotificationCenter.
package notify

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
)

// Action identifiers, shared with the darwin notification category.
const (
	ActionShowLogs = "show-logs"
	ActionRestart  = "restart"
	// Category is the notification category carrying both actions.
	Category = "berth.container-exit"
)

// Notification is one thing to show.
type Notification struct {
	// ID is stable per container, so a newer notification replaces the
	// older one in Notification Center instead of piling up.
	ID          string
	ContainerID string // "" for a summary of several containers
	Name        string
	Title       string
	Body        string
	ExitCode    int
	Count       int      // crashes this notification stands for
	Actions     []string // ActionShowLogs, ActionRestart
}

// Options tune the policy; zero values take the defaults.
type Options struct {
	// Window: after a container's notification, its further crashes within
	// this window are summarised once the window ends (default 10 min).
	Window time.Duration
	// Burst: at most this many notifications per minute over all
	// containers; the rest become one summary (default 4).
	Burst int
	// UserStopGrace: a die this soon after a user's kill/stop request is
	// the user's doing (default 2 min; covers long stop timeouts).
	UserStopGrace time.Duration
	Now           func() time.Time
}

// Policy turns engine events into notifications. Safe for concurrent use.
type Policy struct {
	opts Options

	mu        sync.Mutex
	enabled   bool
	ctrs      map[string]*ctrState
	recent    []time.Time // posts in the last minute (burst limit)
	overflow  map[string]overflowEntry
	overflowT time.Time
}

type ctrState struct {
	name         string
	userStopAt   time.Time // last kill with a terminating signal
	oom          bool
	lastNotified time.Time
	pending      int // crashes since lastNotified, not yet reported
	pendingFirst time.Time
	lastExit     int
	restarting   bool
}

type overflowEntry struct {
	name string
	code int
}

// New returns an enabled policy.
func New(opts Options) *Policy {
	if opts.Window <= 0 {
		opts.Window = 10 * time.Minute
	}
	if opts.Burst <= 0 {
		opts.Burst = 4
	}
	if opts.UserStopGrace <= 0 {
		opts.UserStopGrace = 2 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Policy{opts: opts, enabled: true, ctrs: map[string]*ctrState{}, overflow: map[string]overflowEntry{}}
}

// SetEnabled is the "Notify when a container stops unexpectedly" setting.
// Turning it off drops anything pending.
func (p *Policy) SetEnabled(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.enabled = on
	if !on {
		for _, c := range p.ctrs {
			c.pending = 0
		}
		p.overflow = map[string]overflowEntry{}
	}
}

// Enabled reports the setting.
func (p *Policy) Enabled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.enabled
}

// terminating are the signals whose kill request means "stop it". A kill
// with another signal (HUP to reload, USR1…) does not excuse a later death.
var terminating = map[string]bool{
	"9": true, "15": true, "2": true, "3": true, "6": true,
	"SIGKILL": true, "SIGTERM": true, "SIGINT": true, "SIGQUIT": true, "SIGABRT": true,
	"KILL": true, "TERM": true, "INT": true, "QUIT": true, "ABRT": true,
}

// Observe takes one engine event and returns notifications to post now.
func (p *Policy) Observe(m events.Message) []Notification {
	if m.Type != events.ContainerEventType {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.opts.Now()
	id := m.Actor.ID
	c := p.ctrs[id]
	if c == nil {
		c = &ctrState{}
		p.ctrs[id] = c
	}
	if n := m.Actor.Attributes["name"]; n != "" {
		c.name = strings.TrimPrefix(n, "/")
	}
	switch m.Action {
	case events.ActionKill:
		if terminating[strings.ToUpper(m.Actor.Attributes["signal"])] {
			c.userStopAt = now
		}
	case events.ActionStop:
		// Docker sends stop after the die it caused; nothing left to decide.
		c.userStopAt = time.Time{}
		c.restarting = false
	case events.ActionOOM:
		c.oom = true
	case events.ActionRestart:
		c.restarting = true
	case events.ActionStart:
		// A start requested by the user ends a crash loop's "restarting".
	case events.ActionDestroy:
		delete(p.ctrs, id)
	case events.ActionDie:
		code, err := strconv.Atoi(m.Actor.Attributes["exitCode"])
		if err != nil {
			code = -1
		}
		user := !c.userStopAt.IsZero() && now.Sub(c.userStopAt) <= p.opts.UserStopGrace
		oom := c.oom
		c.userStopAt, c.oom = time.Time{}, false
		if user || (code == 0 && !oom) || !p.enabled {
			return nil
		}
		return p.crash(id, c, code, oom, now)
	}
	return nil
}

func (p *Policy) crash(id string, c *ctrState, code int, oom bool, now time.Time) []Notification {
	c.lastExit = code
	if !c.lastNotified.IsZero() && now.Sub(c.lastNotified) < p.opts.Window {
		// Already told the user about this container recently: count it
		// into the summary that Tick posts when the window ends.
		if c.pending == 0 {
			c.pendingFirst = now
		}
		c.pending++
		return nil
	}
	if !p.allow(now) {
		p.overflow[id] = overflowEntry{name: c.name, code: code}
		if p.overflowT.IsZero() {
			p.overflowT = now
		}
		return nil
	}
	c.lastNotified = now
	return []Notification{p.exitNotification(id, c, code, oom)}
}

// allow applies the global burst limit.
func (p *Policy) allow(now time.Time) bool {
	keep := p.recent[:0]
	for _, t := range p.recent {
		if now.Sub(t) < time.Minute {
			keep = append(keep, t)
		}
	}
	p.recent = keep
	if len(p.recent) >= p.opts.Burst {
		return false
	}
	p.recent = append(p.recent, now)
	return true
}

func displayName(c *ctrState, id string) string {
	if c.name != "" {
		return c.name
	}
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ExitReason explains an exit code the way a user needs it.
func ExitReason(code int, oom bool) string {
	switch {
	case oom:
		return fmt.Sprintf("ran out of memory (exit code %d)", code)
	case code == 137:
		return "was killed (exit code 137, SIGKILL)"
	case code == 139:
		return "crashed with a segmentation fault (exit code 139)"
	case code == 134:
		return "aborted (exit code 134, SIGABRT)"
	case code == 143:
		return "was terminated (exit code 143, SIGTERM)"
	case code > 128 && code < 160:
		return fmt.Sprintf("was killed by signal %d (exit code %d)", code-128, code)
	case code < 0:
		return "exited (exit code unknown)"
	}
	return fmt.Sprintf("exited with code %d", code)
}

func (p *Policy) exitNotification(id string, c *ctrState, code int, oom bool) Notification {
	name := displayName(c, id)
	body := fmt.Sprintf("%s %s.", name, ExitReason(code, oom))
	return Notification{
		ID: "berth.exit." + id, ContainerID: id, Name: name,
		Title: name + " stopped unexpectedly", Body: body, ExitCode: code, Count: 1,
		Actions: []string{ActionShowLogs, ActionRestart},
	}
}

// Tick returns summaries that are due: crash loops whose window has ended,
// and the overflow of the burst limit. The app calls it on a timer (a
// minute is fine) — or whenever convenient; nothing is lost in between.
func (p *Policy) Tick() []Notification {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.enabled {
		return nil
	}
	now := p.opts.Now()
	var out []Notification
	ids := make([]string, 0, len(p.ctrs))
	for id := range p.ctrs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		c := p.ctrs[id]
		if c.pending == 0 || now.Sub(c.lastNotified) < p.opts.Window {
			continue
		}
		name := displayName(c, id)
		span := now.Sub(c.pendingFirst).Round(time.Minute)
		if span < time.Minute {
			span = time.Minute
		}
		body := fmt.Sprintf("%s crashed %d more %s in the last %s (last exit code %d).", name, c.pending, plural(c.pending, "time", "times"), humanDuration(span), c.lastExit)
		if c.restarting {
			body += " Its restart policy keeps restarting it."
		}
		out = append(out, Notification{
			ID: "berth.exit." + id, ContainerID: id, Name: name,
			Title: name + " keeps crashing", Body: body, ExitCode: c.lastExit, Count: c.pending,
			Actions: []string{ActionShowLogs, ActionRestart},
		})
		c.pending = 0
		c.lastNotified = now
	}
	if len(p.overflow) > 0 && now.Sub(p.overflowT) >= time.Minute {
		var names []string
		for _, e := range p.overflow {
			names = append(names, e.name)
		}
		sort.Strings(names)
		n := len(names)
		shown := names
		if len(shown) > 5 {
			shown = append(shown[:5:5], fmt.Sprintf("and %d more", n-5))
		}
		out = append(out, Notification{
			ID:    "berth.exit.summary",
			Title: fmt.Sprintf("%d more %s stopped unexpectedly", n, plural(n, "container", "containers")),
			Body:  strings.Join(shown, ", "), Count: n,
			Actions: []string{ActionShowLogs},
		})
		p.overflow = map[string]overflowEntry{}
		p.overflowT = time.Time{}
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func humanDuration(d time.Duration) string {
	if d < time.Hour {
		m := int(d / time.Minute)
		return fmt.Sprintf("%d %s", m, plural(m, "minute", "minutes"))
	}
	h := int(d / time.Hour)
	return fmt.Sprintf("%d %s", h, plural(h, "hour", "hours"))
}
