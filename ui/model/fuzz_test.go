package model

import (
	"strings"
	"testing"
	"time"
)

// The Run dialog's fields are free text; whatever is typed, Validate must
// answer (request or field errors) without panicking, and a request it
// accepts must be within the limits.
func FuzzRunForm(f *testing.F) {
	f.Add("nginx:1.27", "web", `sh -c "echo hi"`, "A=1", "8080:80,[::1]:53:53/udp", "1.5", "512m", "on-failure:3")
	f.Add("", "", `'`, "=", ":::", "NaN", "1e400g", "on-failure:-1")
	f.Add("busybox", "a", `\`, "#x\nB", "1.2.3.4:1:1/TCP", "+Inf", "0x10m", "always")
	lim := RunLimits{MaxCPUs: 8, MaxMemoryMiB: 16384}
	f.Fuzz(func(t *testing.T, image, name, cmd, env, ports, cpus, mem, restart string) {
		req, err := RunForm{Image: image, Name: name, Command: cmd, Env: env, Ports: ports, CPUs: cpus, Memory: mem, Restart: restart}.Validate(lim)
		if err != nil {
			if fe, ok := err.(FormErrors); !ok || len(fe) == 0 {
				t.Fatalf("error is not a non-empty FormErrors: %v", err)
			}
			return
		}
		h := req.Create.HostConfig
		if h.NanoCPUs < 0 || h.NanoCPUs > 8e9 || (h.Memory != 0 && (h.Memory < MinMemoryMiB<<20 || h.Memory > 16384<<20)) {
			t.Fatalf("accepted out-of-limit resources: %d CPUs(nano) %d bytes", h.NanoCPUs, h.Memory)
		}
		for p, bs := range h.PortBindings {
			if !p.IsValid() || len(bs) == 0 {
				t.Fatalf("bad binding %v %v", p, bs)
			}
		}
	})
}

// Container output is untrusted: any bytes, any chunking. The buffer must
// stay within its bounds and never lose the newest complete line.
func FuzzLogBufferWrite(f *testing.F) {
	f.Add([]byte("hello\nworld\n"), 3)
	f.Add([]byte("2026-01-02T03:04:05.123456789Z x\r\n\n\n"), 1)
	f.Add([]byte(strings.Repeat("z", 3000)), 7)
	t0 := time.Unix(0, 0)
	f.Fuzz(func(t *testing.T, data []byte, chunk int) {
		if chunk <= 0 {
			chunk = 1
		}
		b := NewLogBuffer(20, 2048)
		for i := 0; i < len(data); i += chunk {
			end := min(i+chunk, len(data))
			b.Write("stdout", data[i:end], t0)
			if b.Len() > 20 || b.Bytes() > 2048 {
				t.Fatalf("bounds exceeded: %d lines %d bytes", b.Len(), b.Bytes())
			}
		}
		if i := strings.LastIndexByte(string(data), '\n'); i >= 0 && b.Len() == 0 {
			t.Fatalf("a complete line was lost")
		}
		_ = b.Text(true)
		_ = b.Search("a", 5)
	})
}
