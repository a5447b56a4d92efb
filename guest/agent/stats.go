//go:build linux

package agent

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-dev/berth/guest/api"
)

func (a *Agent) Stats(context.Context, *api.Empty) (*api.StatsResponse, error) {
	if a.cgroupFD < 0 {
		return nil, status.Error(codes.Unavailable, "stats: no cgroup2 for the container in this VM")
	}
	dir := a.cfg.CgroupDir
	r := &api.StatsResponse{UnixNanos: time.Now().UnixNano()}
	kv := readKV(filepath.Join(dir, "cpu.stat"))
	r.CpuUsageUsec, r.CpuUserUsec, r.CpuSystemUsec = kv["usage_usec"], kv["user_usec"], kv["system_usec"]
	r.MemoryBytes = readUint(filepath.Join(dir, "memory.current"))
	r.MemoryLimitBytes = readUint(filepath.Join(dir, "memory.max")) // "max" parses as 0
	r.Pids = readUint(filepath.Join(dir, "pids.current"))
	if b, err := os.ReadFile(filepath.Join(dir, "io.stat")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "rbytes="); ok {
					n, _ := strconv.ParseUint(v, 10, 64)
					r.IoReadBytes += n
				} else if v, ok := strings.CutPrefix(f, "wbytes="); ok {
					n, _ := strconv.ParseUint(v, 10, 64)
					r.IoWriteBytes += n
				}
			}
		}
	}
	mi := readKV("/proc/meminfo")
	r.VmMemoryTotalBytes, r.VmMemoryAvailableBytes = mi["MemTotal:"]*1024, mi["MemAvailable:"]*1024
	return r, nil
}

// readKV reads "key value" lines.
func readKV(p string) map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open(p)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 {
			n, _ := strconv.ParseUint(fs[1], 10, 64)
			out[fs[0]] = n
		}
	}
	return out
}

func readUint(p string) uint64 {
	b, _ := os.ReadFile(p)
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}
