package container

import (
	"context"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
)

// historySize bounds the events kept for `since` replays.
const historySize = 1024

// Events fans out moby-shaped event messages to subscribers. Slow
// subscribers lose events rather than block the engine.
type Events struct {
	mu      sync.Mutex
	history []events.Message
	subs    map[chan events.Message]struct{}
}

// NewEvents returns an empty bus.
func NewEvents() *Events { return &Events{subs: map[chan events.Message]struct{}{}} }

// Publish stamps msg with the current time (if unset) and sends it to every
// subscriber. Image and daemon events may go through the same bus.
func (e *Events) Publish(msg events.Message) {
	if msg.TimeNano == 0 {
		now := time.Now()
		msg.Time, msg.TimeNano = now.Unix(), now.UnixNano()
	}
	if msg.Scope == "" {
		msg.Scope = "local"
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.history = append(e.history, msg)
	if len(e.history) > historySize {
		e.history = append(e.history[:0:0], e.history[len(e.history)-historySize:]...)
	}
	for ch := range e.subs {
		select {
		case ch <- msg:
		default:
		}
	}
}

// Subscribe returns past events at or after since (zero: none) followed by
// live ones; the channel closes when ctx ends.
func (e *Events) Subscribe(ctx context.Context, since time.Time) <-chan events.Message {
	ch := make(chan events.Message, 256)
	e.mu.Lock()
	var past []events.Message
	if !since.IsZero() {
		for _, m := range e.history {
			if m.TimeNano >= since.UnixNano() {
				past = append(past, m)
			}
		}
	}
	live := make(chan events.Message, 256)
	e.subs[live] = struct{}{}
	e.mu.Unlock()
	go func() {
		defer close(ch)
		defer func() { e.mu.Lock(); delete(e.subs, live); e.mu.Unlock() }()
		for _, m := range past {
			select {
			case ch <- m:
			case <-ctx.Done():
				return
			}
		}
		for {
			select {
			case m := <-live:
				select {
				case ch <- m:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

func (m *Manager) emit(action events.Action, c *ctr, extra map[string]string) {
	attrs := map[string]string{"name": c.rec.Name, "image": c.rec.Config.Image}
	for k, v := range c.rec.Config.Labels {
		attrs[k] = v
	}
	for k, v := range extra {
		attrs[k] = v
	}
	m.events.Publish(events.Message{
		Type:   events.ContainerEventType,
		Action: action,
		Actor:  events.Actor{ID: c.rec.ID, Attributes: attrs},
	})
}
