package agent

import (
	"context"
	"io"

	"github.com/berth-dev/berth/guest/api"
)

// CopyIn extracts the tar stream r into the directory dir of the container.
func (c *Client) CopyIn(ctx context.Context, dir string, r io.Reader) error {
	stream, err := c.api.CopyIn(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&api.CopyInFrame{Path: dir}); err != nil {
		_, rerr := stream.CloseAndRecv()
		if rerr != nil {
			return rerr
		}
		return err
	}
	buf := make([]byte, 64<<10)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := stream.Send(&api.CopyInFrame{Data: append([]byte(nil), buf[:n]...)}); err != nil {
				// The agent refused (its status says why).
				_, serr := stream.CloseAndRecv()
				if serr != nil {
					return serr
				}
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	_, err = stream.CloseAndRecv()
	return err
}

// CopyOut returns a tar stream of path in the container; close it when done.
func (c *Client) CopyOut(ctx context.Context, path string) (io.ReadCloser, error) {
	sctx, cancel := context.WithCancel(ctx)
	stream, err := c.api.CopyOut(sctx, &api.CopyOutRequest{Path: path})
	if err != nil {
		cancel()
		return nil, err
	}
	// Surface "not found" now rather than on the first Read.
	f, err := stream.Recv()
	if err != nil && err != io.EOF {
		cancel()
		return nil, err
	}
	r := &chunkReader{stream: stream, cancel: cancel}
	if f != nil {
		r.buf = f.Data
	}
	r.eof = err == io.EOF
	return r, nil
}

type chunkReader struct {
	stream api.Agent_CopyOutClient
	cancel context.CancelFunc
	buf    []byte
	eof    bool
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		f, err := r.stream.Recv()
		if err == io.EOF {
			r.eof = true
			continue
		}
		if err != nil {
			return 0, err
		}
		r.buf = f.Data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *chunkReader) Close() error {
	r.cancel()
	return nil
}
