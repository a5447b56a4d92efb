//go:build linux

package qemu

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/runtime/vmm"
)

// BenchmarkBootToInit: kernel start to /init (the probe init, which prints
// a line and powers off) through this backend, against the plain QEMU
// command line from docs (the reference), same kernel and initramfs, in
// the same run. Reports seconds for both and the backend/plain ratio.
func BenchmarkBootToInit(b *testing.B) {
	if os.Getenv("BERTH_BENCH") != "1" {
		b.Skip("boots VMs; run with BERTH_BENCH=1 (make bench)")
	}
	for _, arch := range []string{"amd64", "arm64"} {
		b.Run(arch, func(b *testing.B) {
			testenv.RequireQEMU(b, arch)
			kernel, _ := testenv.Kernel(b, arch)
			bin, err := Binary(arch)
			if err != nil {
				b.Fatal(err)
			}
			dir := b.TempDir()
			initrd := filepath.Join(dir, "initrd")
			data, _ := probeInitramfs(arch)
			os.WriteFile(initrd, data, 0o644)
			ai := arches[arch]
			var ours, plain time.Duration
			for i := 0; i < b.N; i++ {
				state := b.TempDir()
				cfg := vmm.Config{ID: "bench", Arch: arch, Kernel: kernel, Initrd: initrd, CPUs: 1, MemoryMiB: 256, StateDir: state}
				t0 := time.Now()
				m, err := New().start(context.Background(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				<-m.Done()
				ours += time.Since(t0)
				if m.Err() != nil {
					b.Fatal(m.Err())
				}

				t0 = time.Now()
				out, err := exec.Command(bin, "-M", ai.machine, "-accel", m.Accel(), "-cpu", ai.tcgCPU, "-m", "256",
					"-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
					"-kernel", kernel, "-initrd", initrd, "-append", "console="+ai.console+" panic=-1 quiet").CombinedOutput()
				plain += time.Since(t0)
				if err != nil {
					b.Fatalf("plain qemu: %v: %s", err, out)
				}
			}
			b.ReportMetric(ours.Seconds()/float64(b.N), "s/boot")
			b.ReportMetric(plain.Seconds()/float64(b.N), "s/boot-plain-qemu")
			b.ReportMetric(float64(ours)/float64(plain), "ratio")
		})
	}
}
