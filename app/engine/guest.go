package engine

import (
	"context"
	"errors"
	"net"

	"github.com/berth-dev/berth/runtime/container"
)

// dialGuest adapts runtime/agent's client to the container manager's seam.
func dialGuest(ctx context.Context, conn net.Conn) (container.Guest, error) {
	return nil, errors.New("guest agent client not wired yet")
}
