//go:build linux

package qemu

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"sync"
)

// qmp is the slice of the QEMU Machine Protocol the backend uses: the
// handshake, a few commands, and the events that say when the guest opened
// the agent port (VSERPORT_CHANGE) and why the VM shut down (SHUTDOWN).
type qmp struct {
	conn  net.Conn
	dec   *json.Decoder
	cmdMu sync.Mutex // one command at a time

	mu       sync.Mutex
	replies  chan qmpMessage // command replies, in order
	portOpen map[string]bool
	changed  chan struct{} // closed and replaced on every VSERPORT_CHANGE
	reason   string        // SHUTDOWN reason ("guest-shutdown", "guest-reset", "guest-panic", ...)
	readErr  error
	done     chan struct{} // closed when the event loop ends (QEMU gone)
}

type qmpMessage struct {
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	QMP json.RawMessage `json:"QMP"`
}

// newQMP reads the greeting, negotiates capabilities and starts the event
// loop. QEMU is still paused (-S) here, so no event can be missed.
func newQMP(conn net.Conn) (*qmp, error) {
	q := &qmp{
		conn:     conn,
		dec:      json.NewDecoder(bufio.NewReader(conn)),
		replies:  make(chan qmpMessage, 1),
		portOpen: map[string]bool{},
		changed:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	var greeting qmpMessage
	if err := q.dec.Decode(&greeting); err != nil || greeting.QMP == nil {
		return nil, fmt.Errorf("qmp greeting: %v", err)
	}
	go q.loop()
	if _, err := q.execute("qmp_capabilities"); err != nil {
		return nil, err
	}
	return q, nil
}

func (q *qmp) loop() {
	defer close(q.done)
	for {
		var m qmpMessage
		if err := q.dec.Decode(&m); err != nil {
			q.mu.Lock()
			q.readErr = err
			q.mu.Unlock()
			close(q.replies)
			return
		}
		switch {
		case m.Event == "VSERPORT_CHANGE":
			var d struct {
				ID   string `json:"id"`
				Open bool   `json:"open"`
			}
			_ = json.Unmarshal(m.Data, &d)
			q.mu.Lock()
			q.portOpen[d.ID] = d.Open
			close(q.changed)
			q.changed = make(chan struct{})
			q.mu.Unlock()
		case m.Event == "SHUTDOWN":
			var d struct {
				Reason string `json:"reason"`
			}
			_ = json.Unmarshal(m.Data, &d)
			q.mu.Lock()
			q.reason = d.Reason
			q.mu.Unlock()
		case m.Event != "":
			// other events are of no interest
		default:
			q.replies <- m
		}
	}
}

// execute runs one command and waits for its reply. One command is in
// flight at a time (cmdMu), so replies pair up in order.
func (q *qmp) execute(cmd string) (json.RawMessage, error) {
	q.cmdMu.Lock()
	defer q.cmdMu.Unlock()
	b, _ := json.Marshal(map[string]string{"execute": cmd})
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	m, ok := <-q.replies
	if !ok {
		return nil, fmt.Errorf("qmp %s: QEMU closed the monitor", cmd)
	}
	if m.Error != nil {
		return nil, fmt.Errorf("qmp %s: %s", cmd, m.Error.Desc)
	}
	return m.Return, nil
}

// port reports whether the guest has the named virtio-serial port open, and
// a channel closed at the next change.
func (q *qmp) port(id string) (bool, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.portOpen[id], q.changed
}

func (q *qmp) shutdownReason() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.reason
}
