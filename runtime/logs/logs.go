// Package logs records a container's stdout and stderr on the host as
// Docker json-file lines ({"log","stream","time"}) with size-based rotation,
// and reads them back with tail, since/until and follow.
package logs

import "time"

// Entry is one recorded chunk of output (usually one line, newline included).
type Entry struct {
	Stream string    // "stdout" or "stderr"
	Time   time.Time // when the host received it
	Line   []byte
}

// ReadOptions select entries.
type ReadOptions struct {
	Tail   int // the last Tail entries only; negative means all (Docker's --tail all), 0 none
	Since  time.Time
	Until  time.Time
	Follow bool // keep reading new entries until ctx ends or the writer is closed for good
}
