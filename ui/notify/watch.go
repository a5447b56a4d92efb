package notify

import (
	"context"
	"time"

	"github.com/moby/moby/api/types/events"
)

// Watch feeds msgs through p and calls post for every notification (and
// for summaries as they fall due) until ctx ends or msgs closes.
func Watch(ctx context.Context, p *Policy, msgs <-chan events.Message, post func(Notification)) {
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			for _, n := range p.Observe(m) {
				post(n)
			}
		case <-tick.C:
			for _, n := range p.Tick() {
				post(n)
			}
		}
	}
}
