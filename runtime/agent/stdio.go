package agent

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/berth-dev/berth/guest/api"
)

// Attachment is a live Stdio stream of one process.
type Attachment struct {
	done chan struct{}
	err  error
}

// Wait returns once the process's output has reached EOF (nil), or the
// attach failed or was cancelled.
func (a *Attachment) Wait() error {
	<-a.done
	return a.err
}

// Done is closed when Wait would return.
func (a *Attachment) Done() <-chan struct{} { return a.done }

// Attach connects to a process's stdio. stdin (may be nil) is copied to the
// process and its EOF closes the process's stdin; stdout and stderr (may be
// nil: output is then discarded, but still drained) receive the output
// (with a tty everything arrives on stdout). Attach before Start to see all
// output. Cancel ctx to detach.
func (c *Client) Attach(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.Writer) (*Attachment, error) {
	stream, err := c.api.Stdio(ctx)
	if err != nil {
		return nil, err
	}
	first := &api.StdioFrame{ProcessId: id, AttachOutput: true, AttachStdin: stdin != nil}
	if err := stream.Send(first); err != nil {
		return nil, recvErr(stream, err)
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	if stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := stdin.Read(buf)
				if n > 0 {
					if serr := stream.Send(&api.StdioFrame{Data: append([]byte(nil), buf[:n]...)}); serr != nil {
						return
					}
				}
				if err == io.EOF {
					stream.CloseSend()
					return
				}
				if err != nil {
					return // stdin broke: leave the process's stdin open
				}
			}
		}()
	} else {
		stream.CloseSend()
	}
	a := &Attachment{done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for {
			f, err := stream.Recv()
			if err == io.EOF {
				return
			}
			if err != nil {
				a.err = err
				return
			}
			w := stdout
			if f.Stream == api.StdioFrame_STDERR {
				w = stderr
			}
			if _, err := w.Write(f.Data); err != nil {
				a.err = err
				return
			}
		}
	}()
	return a, nil
}

// recvErr prefers the server's status over a bare io.EOF from Send.
func recvErr(stream api.Agent_StdioClient, err error) error {
	if errors.Is(err, io.EOF) {
		if _, rerr := stream.Recv(); rerr != nil {
			return rerr
		}
	}
	return err
}

// Stdio bundles the streams for Run.
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Run creates, attaches, starts and waits for a process, then deletes it;
// it returns once the process exited and its output was delivered.
func (c *Client) Run(ctx context.Context, id string, spec *ProcessSpec, exec bool, stdio Stdio) (ExitStatus, error) {
	if stdio.Stdin != nil && !spec.Stdin {
		spec = proto.Clone(spec).(*ProcessSpec) // not the caller's copy
		spec.Stdin = true
	}
	if err := c.CreateProcess(ctx, id, spec, exec); err != nil {
		return ExitStatus{}, err
	}
	defer c.Delete(context.WithoutCancel(ctx), id)
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	att, err := c.Attach(actx, id, stdio.Stdin, stdio.Stdout, stdio.Stderr)
	if err != nil {
		return ExitStatus{}, err
	}
	if _, err := c.Start(ctx, id); err != nil {
		cancel()
		att.Wait()
		return ExitStatus{}, err
	}
	st, err := c.Wait(ctx, id)
	if err != nil {
		return st, err
	}
	if err := att.Wait(); err != nil && status.Code(err) != codes.Canceled {
		return st, err
	}
	return st, nil
}

// Exec runs a process in the running container (docker exec).
func (c *Client) Exec(ctx context.Context, id string, spec *ProcessSpec, stdio Stdio) (ExitStatus, error) {
	return c.Run(ctx, id, spec, true, stdio)
}
