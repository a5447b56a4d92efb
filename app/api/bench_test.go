package api

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	ctrs "github.com/berth-dev/berth/runtime/container"
)

func requireBench(b *testing.B) {
	if os.Getenv("BERTH_BENCH") != "1" {
		b.Skip("set BERTH_BENCH=1 (make bench): boots VMs / runs the docker CLI")
	}
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// trivialEngine answers _ping and /containers/json with a constant on a
// unix socket: the floor any Docker API server could reach.
func trivialEngine(b *testing.B) string {
	dir, err := os.MkdirTemp("", "berth-trivial-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "t.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", MaxVersion)
		w.Header().Set("Ostype", "linux")
		if r.URL.Path == "/_ping" {
			io.WriteString(w, "OK")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "[]\n")
	})}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	return sock
}

// BenchmarkDockerPS: `docker ps` against Berth (real engine, 5 containers)
// vs the same command answered by a trivial handler, and the bare API
// round trip (moby Go client, no CLI process) for both.
func BenchmarkDockerPS(b *testing.B) {
	requireBench(b)
	e := startEngine(b)
	mustDocker(b, e.Sock, "pull", "-q", e.Image)
	for i := 0; i < 5; i++ {
		mustDocker(b, e.Sock, "create", e.Image, "true")
	}
	triv := trivialEngine(b)
	const n = 15
	var berthCLI, trivCLI, berthAPI, trivAPI []time.Duration
	cli := func(sock string) time.Duration {
		start := time.Now()
		mustDocker(b, sock, "ps", "-a")
		return time.Since(start)
	}
	api := func(sock string) time.Duration {
		c, err := client.New(client.WithHost("unix://"+sock), client.WithAPIVersion("1.50"))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		for i := 0; i < 10; i++ {
			if _, err := c.ContainerList(context.Background(), client.ContainerListOptions{All: true}); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start) / 10
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < n; j++ {
			berthCLI = append(berthCLI, cli(e.Sock))
			trivCLI = append(trivCLI, cli(triv))
			berthAPI = append(berthAPI, api(e.Sock))
			trivAPI = append(trivAPI, api(triv))
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(median(berthCLI)), "berth-ps-ms")
	b.ReportMetric(ms(median(trivCLI)), "trivial-ps-ms")
	b.ReportMetric(float64(median(berthCLI))/float64(median(trivCLI)), "ps-ratio")
	b.ReportMetric(ms(median(berthAPI)), "berth-list-api-ms")
	b.ReportMetric(ms(median(trivAPI)), "trivial-list-api-ms")
	b.ReportMetric(float64(median(berthAPI))/float64(median(trivAPI)), "list-api-ratio")
}

// engineSpan records, for one `run`, when the engine was first asked to do
// something (create) and when the container was gone (the wait for
// "removed" fired): the engine's share of the run's wall time.
type engineSpan struct {
	Containers
	mu          sync.Mutex
	first, last time.Time
}

func (e *engineSpan) reset() {
	e.mu.Lock()
	e.first, e.last = time.Time{}, time.Time{}
	e.mu.Unlock()
}

func (e *engineSpan) span() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last.Sub(e.first)
}

func (e *engineSpan) Create(ctx context.Context, o ctrs.CreateOptions) (container.CreateResponse, error) {
	e.mu.Lock()
	if e.first.IsZero() {
		e.first = time.Now()
	}
	e.mu.Unlock()
	return e.Containers.Create(ctx, o)
}

func (e *engineSpan) Wait(ctx context.Context, ref string, cond container.WaitCondition) (<-chan container.WaitResponse, error) {
	ch, err := e.Containers.Wait(ctx, ref, cond)
	if err != nil || cond != container.WaitConditionRemoved {
		return ch, err
	}
	out := make(chan container.WaitResponse, 1)
	go func() {
		r, ok := <-ch
		e.mu.Lock()
		e.last = time.Now()
		e.mu.Unlock()
		if ok {
			out <- r
		}
		close(out)
	}()
	return out, nil
}

// BenchmarkRunOverhead: what the API (plus the CLI process) adds to
// `docker run --rm IMAGE true` and `berth run --rm IMAGE true`. A VM boot
// under TCG varies by seconds between runs, far more than the 10 ms budget,
// so the overhead is measured within each run: the wall time of the CLI
// minus the engine's span (first backend call → container removed). The
// CLI process's own floor (docker ps against a trivial handler) is
// reported alongside; in-process runs (no API) give the scale.
func BenchmarkRunOverhead(b *testing.B) {
	requireBench(b)
	spans := &engineSpan{}
	e := startEngineWith(b, func(c Containers) Containers { spans.Containers = c; return spans })
	mustDocker(b, e.Sock, "pull", "-q", e.Image)
	berth := filepath.Join(b.TempDir(), "berth")
	build := exec.Command("go", "build", "-o", berth, "github.com/berth-dev/berth/app")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build berth: %v\n%s", err, out)
	}
	triv := trivialEngine(b)
	m := e.Eng.Containers
	inproc := func() time.Duration {
		ctx := context.Background()
		start := time.Now()
		res, err := m.Create(ctx, ctrs.CreateOptions{Config: &container.Config{Image: e.Image, Cmd: []string{"true"}},
			HostConfig: &container.HostConfig{AutoRemove: true}})
		if err != nil {
			b.Fatal(err)
		}
		ch, err := m.Wait(ctx, res.ID, container.WaitConditionRemoved)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Start(ctx, res.ID); err != nil {
			b.Fatal(err)
		}
		if r := <-ch; r.StatusCode != 0 {
			b.Fatalf("in-process run exit %d", r.StatusCode)
		}
		return time.Since(start)
	}
	timed := func(run func()) (wall, outside time.Duration) {
		spans.reset()
		start := time.Now()
		run()
		wall = time.Since(start)
		return wall, wall - spans.span()
	}
	dockerRun := func() { mustDocker(b, e.Sock, "run", "--rm", e.Image, "true") }
	berthRun := func() {
		cmd := exec.Command(berth, "--data-root", e.Root.Dir, "run", "--rm", e.Image, "true")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("berth run: %v\n%s", err, out)
		}
	}
	cliFloor := func() time.Duration {
		start := time.Now()
		mustDocker(b, triv, "ps")
		return time.Since(start)
	}
	inproc() // warm: the image's ext4 snapshot is built once
	var in, dkWall, dkOut, btWall, btOut, floor []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < 3; j++ {
			in = append(in, inproc())
			w, o := timed(dockerRun)
			dkWall, dkOut = append(dkWall, w), append(dkOut, o)
			w, o = timed(berthRun)
			btWall, btOut = append(btWall, w), append(btOut, o)
			floor = append(floor, cliFloor())
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(median(in)), "inprocess-run-ms")
	b.ReportMetric(ms(median(dkWall)), "docker-run-ms")
	b.ReportMetric(ms(median(btWall)), "berth-run-ms")
	b.ReportMetric(ms(median(dkOut)), "docker-outside-engine-ms")
	b.ReportMetric(ms(median(btOut)), "berth-outside-engine-ms")
	b.ReportMetric(ms(median(floor)), "docker-cli-floor-ms")
	b.ReportMetric(ms(median(dkOut)-median(floor)), "docker-api-overhead-ms")
}
