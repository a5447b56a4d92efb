// Package shell is the menu-bar app's logic between the AppKit views and the
// engine: it starts the in-process engine, talks to it through the Docker
// Engine API client on its socket (the same path `docker` takes), keeps a
// model.Snapshot current from engine events (no polling), and carries out
// the actions the menu and windows offer. It is portable; ui/menubar maps it
// onto AppKit.
package shell

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/ui/model"
)

// Engine is the in-process engine as the app needs it: app/ composes it from
// app/engine and app/api and hands it in.
type Engine interface {
	// Start opens the engine and serves the Docker API on Socket().
	Start(ctx context.Context) error
	// Socket is the unix socket path of the engine's Docker API.
	Socket() string
	// Shutdown stops serving, stops what still runs and closes the engine.
	Shutdown(ctx context.Context) error
}

// View is what the controller tells the UI. Calls come from goroutines; the
// AppKit implementation hops to the main thread.
type View interface {
	// Changed says the snapshot or the engine state changed: rebuild the
	// menu, the icon and open tables.
	Changed()
	// Alert shows an error (or a notice) to the user.
	Alert(model.Alert)
}

// Controller is the app's state and actions.
type Controller struct {
	eng  Engine
	view View
	Snap *model.Snapshot

	mu     sync.Mutex
	state  model.EngineState
	engErr error
	cli    *client.Client
	cancel context.CancelFunc
	subs   map[chan struct{}]bool // internal change listeners (WatchStats)
	evSubs map[chan events.Message]bool
}

// SubscribeEvents returns a channel that receives every engine event the
// controller sees (for exit notifications), and a function to stop. Events
// are dropped for a subscriber that is 256 behind rather than stalling the
// menu.
func (c *Controller) SubscribeEvents() (<-chan events.Message, func()) {
	ch := make(chan events.Message, 256)
	c.mu.Lock()
	if c.evSubs == nil {
		c.evSubs = map[chan events.Message]bool{}
	}
	c.evSubs[ch] = true
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		if c.evSubs[ch] {
			delete(c.evSubs, ch)
			close(ch)
		}
		c.mu.Unlock()
	}
}

// New returns a controller; call Start to boot the engine.
func New(eng Engine, view View) *Controller {
	return &Controller{eng: eng, view: view, Snap: model.NewSnapshot(), state: model.EngineStarting}
}

// State is the engine's state and, when it failed, why.
func (c *Controller) State() (model.EngineState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, c.engErr
}

func (c *Controller) setState(s model.EngineState, err error) {
	c.mu.Lock()
	c.state, c.engErr = s, err
	c.mu.Unlock()
	c.changed()
}

// changed tells the view and internal listeners that the snapshot or the
// engine state changed.
func (c *Controller) changed() {
	c.view.Changed()
	c.mu.Lock()
	for ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
	c.mu.Unlock()
}

func (c *Controller) subscribe() (chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	if c.subs == nil {
		c.subs = map[chan struct{}]bool{}
	}
	c.subs[ch] = true
	c.mu.Unlock()
	return ch, func() { c.mu.Lock(); delete(c.subs, ch); c.mu.Unlock() }
}

// Client is the Docker API client on the engine's socket (nil until ready).
func (c *Controller) Client() *client.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cli
}

// Start boots the engine, connects the client, loads the lists and follows
// events until Quit. It returns once the engine is ready (or failed).
func (c *Controller) Start(ctx context.Context) error {
	c.setState(model.EngineStarting, nil)
	if err := c.eng.Start(ctx); err != nil {
		c.setState(model.EngineFailed, err)
		return err
	}
	cli, err := client.New(client.WithHost("unix://"+c.eng.Socket()), client.WithAPIVersionNegotiation())
	if err != nil {
		c.setState(model.EngineFailed, err)
		return err
	}
	lctx, cancel := context.WithCancel(context.Background())
	c.mu.Lock()
	c.cli, c.cancel = cli, cancel
	c.mu.Unlock()
	// Subscribe before listing so nothing between the two is missed.
	evs := cli.Events(lctx, client.EventsListOptions{})
	if err := c.refresh(ctx, model.Refresh{Containers: true, Images: true}); err != nil {
		c.setState(model.EngineFailed, err)
		return err
	}
	c.setState(model.EngineReady, nil)
	go c.follow(lctx, evs)
	return nil
}

// follow applies engine events to the snapshot; when the stream breaks
// (engine restart), it resubscribes and re-lists.
func (c *Controller) follow(ctx context.Context, evs client.EventsResult) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-evs.Messages:
			c.onEvent(ctx, ev)
		case <-evs.Err:
			// The stream broke (engine busy or restarting): resubscribe
			// after a pause and re-list, so nothing missed stays missed.
			if ctx.Err() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			evs = c.Client().Events(ctx, client.EventsListOptions{})
			_ = c.refresh(ctx, model.Refresh{Containers: true, Images: true})
			c.changed()
		}
	}
}

func (c *Controller) onEvent(ctx context.Context, ev events.Message) {
	c.mu.Lock()
	for ch := range c.evSubs {
		select {
		case ch <- ev:
		default:
		}
	}
	c.mu.Unlock()
	r := c.Snap.Apply(ev)
	c.changed() // show what the event says at once …
	if r.Containers || r.Images {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := c.refresh(rctx, r); err == nil { // … then the engine's full view
			c.changed()
		}
	}
}

func (c *Controller) refresh(ctx context.Context, r model.Refresh) error {
	cli := c.Client()
	if cli == nil {
		return errors.New("the engine is not running")
	}
	if r.Containers {
		res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true})
		if err != nil {
			return err
		}
		c.Snap.SetContainers(res.Items)
	}
	if r.Images {
		res, err := cli.ImageList(ctx, client.ImageListOptions{})
		if err != nil {
			return err
		}
		c.Snap.SetImages(res.Items)
	}
	return nil
}

// Menu computes the status menu from the current snapshot.
func (c *Controller) Menu(now time.Time, cliInstalled bool) model.Menu {
	st, err := c.State()
	in := model.MenuInput{Engine: st, Containers: c.Snap.Containers(), Now: now, CLIInstalled: cliInstalled}
	if err != nil {
		in.EngineError = err.Error()
	}
	return model.BuildMenu(in)
}

// StopTimeout is the grace period before SIGKILL for Stop/Restart/Quit.
const StopTimeout = 10

// Do carries out a container action from the menu or a window. UI-only
// actions (open URL, copy IP, windows) are the view's business and are
// refused here.
func (c *Controller) Do(ctx context.Context, it model.Item) error {
	cli := c.Client()
	if cli == nil {
		return errors.New("the engine is not running")
	}
	timeout := StopTimeout
	var err error
	switch it.Action {
	case model.ActStart:
		_, err = cli.ContainerStart(ctx, it.Target, client.ContainerStartOptions{})
	case model.ActStop:
		_, err = cli.ContainerStop(ctx, it.Target, client.ContainerStopOptions{Timeout: &timeout})
	case model.ActRestart:
		_, err = cli.ContainerRestart(ctx, it.Target, client.ContainerRestartOptions{Timeout: &timeout})
	case model.ActPause:
		_, err = cli.ContainerPause(ctx, it.Target, client.ContainerPauseOptions{})
	case model.ActUnpause:
		_, err = cli.ContainerUnpause(ctx, it.Target, client.ContainerUnpauseOptions{})
	case model.ActRemove:
		_, err = cli.ContainerRemove(ctx, it.Target, client.ContainerRemoveOptions{Force: true})
	default:
		return fmt.Errorf("action %q is not an engine action", it.Action)
	}
	if err == nil {
		_ = c.refresh(ctx, model.Refresh{Containers: true})
		c.changed()
	}
	return err
}

// Run creates and starts a container from the Run dialog's validated form.
func (c *Controller) Run(ctx context.Context, req model.RunRequest, pull func(model.PullProgress)) (string, error) {
	cli := c.Client()
	if cli == nil {
		return "", errors.New("the engine is not running")
	}
	opts := client.ContainerCreateOptions{Config: req.Create.Config, HostConfig: req.Create.HostConfig, Name: req.Name}
	res, err := cli.ContainerCreate(ctx, opts)
	if err != nil && isNotFound(err) {
		// Like `docker run`: pull a missing image, then create again.
		if perr := c.Pull(ctx, req.Create.Config.Image, pull); perr != nil {
			return "", perr
		}
		res, err = cli.ContainerCreate(ctx, opts)
	}
	if err != nil {
		return "", err
	}
	if _, err := cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return res.ID, err
	}
	_ = c.refresh(ctx, model.Refresh{Containers: true})
	c.changed()
	return res.ID, nil
}

// Pull pulls an image, reporting per-layer progress.
func (c *Controller) Pull(ctx context.Context, ref string, progress func(model.PullProgress)) error {
	cli := c.Client()
	if cli == nil {
		return errors.New("the engine is not running")
	}
	resp, err := cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	var agg model.PullProgress
	agg.Ref = ref
	for msg, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return err
		}
		if msg.Error != nil {
			return errors.New(msg.Error.Message)
		}
		agg.Update(msg.ID, msg.Status, progressOf(msg.Progress))
		if progress != nil {
			progress(agg)
		}
	}
	_ = c.refresh(ctx, model.Refresh{Images: true})
	c.changed()
	return nil
}

// Inspect returns docker inspect data for the details pane.
func (c *Controller) Inspect(ctx context.Context, id string) (container.InspectResponse, error) {
	cli := c.Client()
	if cli == nil {
		return container.InspectResponse{}, errors.New("the engine is not running")
	}
	res, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	return res.Container, err
}

// FollowLogs streams a container's logs (with timestamps) into buf until
// ctx ends or the container's log ends.
func (c *Controller) FollowLogs(ctx context.Context, id string, tty bool, buf *model.LogBuffer) error {
	cli := c.Client()
	if cli == nil {
		return errors.New("the engine is not running")
	}
	rc, err := cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true, Timestamps: true, Tail: "5000"})
	if err != nil {
		return err
	}
	defer rc.Close()
	if tty { // a tty container's log is one raw stream
		_, err = io.Copy(buf.StreamWriter("stdout"), rc)
	} else {
		_, err = stdcopy.StdCopy(buf.StreamWriter("stdout"), buf.StreamWriter("stderr"), rc)
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Quit stops every running container gracefully (in parallel, each with
// the stop timeout), reporting progress, then shuts the engine down.
func (c *Controller) Quit(ctx context.Context, progress func(done, total int)) error {
	c.setState(model.EngineStopping, nil)
	var firstErr error
	if cli := c.Client(); cli != nil {
		var running []string
		for _, ct := range c.Snap.Containers() {
			if ct.State == container.StateRunning || ct.State == container.StateRestarting || ct.State == container.StatePaused {
				running = append(running, ct.ID)
			}
		}
		total := len(running)
		if progress != nil {
			progress(0, total)
		}
		var mu sync.Mutex
		done := 0
		var wg sync.WaitGroup
		for _, id := range running {
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				timeout := StopTimeout
				_, err := cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &timeout})
				mu.Lock()
				done++
				if err != nil && firstErr == nil && !isNotFound(err) {
					firstErr = err
				}
				d := done
				mu.Unlock()
				if progress != nil {
					progress(d, total)
				}
			}(id)
		}
		wg.Wait()
	}
	c.mu.Lock()
	cancel, cli := c.cancel, c.cli
	c.cli = nil
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if cli != nil {
		cli.Close()
	}
	if err := c.eng.Shutdown(ctx); err != nil && firstErr == nil {
		firstErr = err
	}
	return firstErr
}

// WatchStats keeps a stats stream open for every running container while
// ctx lives (the Containers window is open) and records the samples in the
// snapshot. Streams start and stop as containers do; nothing is polled.
func (c *Controller) WatchStats(ctx context.Context) {
	wake, unsubscribe := c.subscribe()
	defer unsubscribe()
	streams := map[string]context.CancelFunc{}
	defer func() {
		for _, cancel := range streams {
			cancel()
		}
	}()
	for {
		running := map[string]bool{}
		for _, ct := range c.Snap.Containers() {
			if ct.State == container.StateRunning {
				running[ct.ID] = true
			}
		}
		for id, cancel := range streams {
			if !running[id] {
				cancel()
				delete(streams, id)
			}
		}
		for id := range running {
			if _, ok := streams[id]; !ok {
				sctx, cancel := context.WithCancel(ctx)
				streams[id] = cancel
				go c.streamStats(sctx, id)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
	}
}

func (c *Controller) streamStats(ctx context.Context, id string) {
	cli := c.Client()
	if cli == nil {
		return
	}
	res, err := cli.ContainerStats(ctx, id, client.ContainerStatsOptions{Stream: true})
	if err != nil {
		return
	}
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var s container.StatsResponse
		if err := dec.Decode(&s); err != nil {
			return
		}
		c.Snap.SetStats(id, s)
		c.view.Changed() // not c.changed(): samples do not change the set of streams
	}
}
