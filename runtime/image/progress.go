package image

import (
	"sync"
	"time"
)

// Event is one progress report, shaped like a line of the Docker Engine
// API's JSON progress stream (id, status, progressDetail{current,total}) so
// the CLI bar and the API can both render it.
type Event struct {
	ID      string // short layer digest (12 hex digits); empty for whole-image messages
	Status  string // Waiting, Already exists, Downloading, Download complete, Pull complete, Loading layer, ...
	Current int64  // bytes done (Downloading, Loading layer)
	Total   int64  // bytes expected; 0 if unknown
}

// ProgressFunc receives events. Calls are serialised by the store; a
// callback must not block for long.
type ProgressFunc func(Event)

// Status strings, the ones docker prints.
const (
	StatusWaiting          = "Waiting"
	StatusExists           = "Already exists"
	StatusDownloading      = "Downloading"
	StatusDownloadComplete = "Download complete"
	StatusPullComplete     = "Pull complete"
	StatusLoading          = "Loading layer"
)

// reporter serialises events and throttles byte counts to ~10 per second
// per layer, always passing state changes and completions through.
type reporter struct {
	mu   sync.Mutex
	fn   ProgressFunc
	last map[string]time.Time
}

func newReporter(fn ProgressFunc) *reporter {
	return &reporter{fn: fn, last: map[string]time.Time{}}
}

func (r *reporter) emit(e Event) {
	if r == nil || r.fn == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Status == StatusDownloading || e.Status == StatusLoading || e.Status == StatusPushing {
		if e.Current < e.Total || e.Total == 0 {
			now := time.Now()
			if now.Sub(r.last[e.ID]) < 100*time.Millisecond {
				return
			}
			r.last[e.ID] = now
		}
	}
	r.fn(e)
}

// bytes returns a callback for blobStore.put reporting status for layer id.
func (r *reporter) bytes(id, status string, total int64) func(int64) {
	if r == nil || r.fn == nil {
		return nil
	}
	return func(n int64) { r.emit(Event{ID: id, Status: status, Current: n, Total: total}) }
}

func shortID(hex string) string {
	if len(hex) > 12 {
		return hex[:12]
	}
	return hex
}
