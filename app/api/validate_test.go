package api

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
)

// The body docker 28.2 sends for `docker run -d --name web -p 8080:80
// busybox httpd -f -p 80`, captured from the real CLI.
func dockerRunBody(t testing.TB) string {
	b, err := os.ReadFile("testdata/create-docker-28.2.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Older clients (docker 20.10) send fields current types dropped; at their
// zero values they are accepted.
func TestLegacyZeroFieldsAccepted(t *testing.T) {
	body := strings.Replace(dockerRunBody(t), `"CpuShares":0`, `"CpuShares":0,"KernelMemory":0,"KernelMemoryTCP":0`, 1)
	body = strings.Replace(body, `{"Hostname":""`, `{"Hostname":"","MacAddress":""`, 1)
	body = strings.Replace(body, `"ShmSize":0`, `"ShmSize":9007199254740993`, 1) // 2^53+1: must survive re-encoding exactly
	b, err := dropLegacy([]byte(body), createLegacy)
	if err != nil {
		t.Fatal(err)
	}
	var req container.CreateRequest
	if err := decodeStrictBytes(b, &req); err != nil {
		t.Fatalf("legacy zero fields refused: %v", err)
	}
	if req.HostConfig.ShmSize != 9007199254740993 {
		t.Fatalf("large integer changed while dropping legacy fields: %d", req.HostConfig.ShmSize)
	}
}

func TestValidateCreateAcceptsRealDockerRun(t *testing.T) {
	var req container.CreateRequest
	if err := decodeStrictBytes([]byte(dockerRunBody(t)), &req); err != nil {
		t.Fatalf("real docker run body refused: %v", err)
	}
	if err := validateCreate(&req, 1<<34); err != nil {
		t.Fatalf("real docker run body refused: %v", err)
	}
	if req.Config.Image != "busybox" || len(req.HostConfig.PortBindings) != 1 {
		t.Fatalf("decoded wrongly: %+v", req.Config)
	}
}

func TestValidateCreateRefuses(t *testing.T) {
	base := dockerRunBody(t)
	cases := []struct {
		name, from, to string
		status         int
		msg            string
	}{
		{"malformed", `{"Hostname"`, `{"Hostname":,`, 400, "malformed JSON"},
		{"unknown field", `{"Hostname":""`, `{"Hostname":"","Bogus":1`, 400, "Bogus"},
		{"wrong type", `"Memory":0`, `"Memory":"lots"`, 400, "Memory"},
		{"privileged", `"Privileged":false`, `"Privileged":true`, 501, "--privileged"},
		{"volumes-from", `"VolumesFrom":null`, `"VolumesFrom":["other"]`, 501, "--volumes-from"},
		{"cap-add", `"CapAdd":null`, `"CapAdd":["NET_ADMIN"]`, 501, "--cap-add"},
		{"negative memory", `"Memory":0`, `"Memory":-5`, 400, "memory"},
		{"absurd memory", `"Memory":0`, `"Memory":9223372036854775807`, 400, "more than this machine"},
		{"million cpus", `"NanoCpus":0`, `"NanoCpus":1000000000000000`, 400, "CPUs"},
		{"negative cpus", `"NanoCpus":0`, `"NanoCpus":-1`, 400, "cpus"},
		{"log driver", `"LogConfig":{"Type":""`, `"LogConfig":{"Type":"syslog"`, 501, "syslog"},
		{"restart+rm", `"AutoRemove":false`, `"AutoRemove":true,"RestartPolicy":{"Name":"always"}`, 400, "restart"},
		{"bad restart", `"RestartPolicy":{"Name":"no"`, `"RestartPolicy":{"Name":"sometimes"`, 400, "sometimes"},
		{"udp", `"PortBindings":{"80/tcp"`, `"PortBindings":{"80/udp"`, 501, "udp"},
		{"bad host port", `"HostPort":"8080"`, `"HostPort":"99999"`, 400, "99999"},
		{"no image", `"Image":"busybox"`, `"Image":""`, 400, "no image"},
		{"trailing", `"DNSNames":null}}}}`, `"DNSNames":null}}}}{}`, 400, "trailing"},
		{"legacy kernel memory set", `"CpuShares":0`, `"CpuShares":0,"KernelMemory":1024`, 501, "--kernel-memory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.Replace(base, tc.from, tc.to, 1)
			if body == base {
				t.Fatalf("test case did not change the body (%q not found)", tc.from)
			}
			var req container.CreateRequest
			b, err := dropLegacy([]byte(body), createLegacy)
			if err == nil {
				err = decodeStrictBytes(b, &req)
			}
			if err == nil {
				err = validateCreate(&req, 1<<34)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if got := statusOf(err); got != tc.status {
				t.Errorf("status %d, want %d (%v)", got, tc.status, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q does not mention %q", err, tc.msg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message is not one line: %q", err)
			}
		})
	}
}

// FuzzCreateRequest feeds arbitrary bodies to the create decoding and
// validation: they must never panic, and every refusal is a 4xx/501 with a
// message (never a 500).
func FuzzCreateRequest(f *testing.F) {
	f.Add([]byte(dockerRunBody(f)))
	f.Add([]byte(`{"Image":"x","HostConfig":{"Memory":-1}}`))
	f.Add([]byte(`{"Image":"x","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"1-2"}]}}}`))
	f.Add([]byte(`{"Image":"x","HostConfig":{"Dns":["1.2.3.4"],"MemorySwappiness":-1}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"Image":"x","MacAddress":"","HostConfig":{"KernelMemory":0,"ShmSize":9007199254740993}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req container.CreateRequest
		b, err := dropLegacy(body, createLegacy)
		if err == nil {
			err = decodeStrictBytes(b, &req)
		}
		if err == nil {
			err = validateCreate(&req, 1<<34)
		}
		if err == nil {
			if req.Config == nil || req.Config.Image == "" || req.HostConfig == nil {
				t.Fatalf("accepted a request without image or host config: %s", body)
			}
			return
		}
		if st := statusOf(err); st != http.StatusBadRequest && st != http.StatusNotImplemented {
			t.Fatalf("status %d for %q: %v", st, body, err)
		}
		if err.Error() == "" {
			t.Fatal("empty error message")
		}
	})
}

// FuzzQueryParams: filters and timestamps from the query string.
func FuzzQueryParams(f *testing.F) {
	f.Add(`{"label":{"a=b":true}}`, "1700000000.123456789")
	f.Add(`{"status":["running"]}`, "2024-01-02T03:04:05Z")
	f.Add(`{`, "-1")
	f.Fuzz(func(t *testing.T, filters, ts string) {
		r, err := http.NewRequest("GET", "http://x/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		q := r.URL.Query()
		q.Set("filters", filters)
		q.Set("since", ts)
		r.URL.RawQuery = q.Encode()
		if _, err := parseFilters(r); err != nil && statusOf(err) != 400 {
			t.Fatalf("filters %q: status %d", filters, statusOf(err))
		}
		if _, err := timeParam(r, "since"); err != nil && statusOf(err) != 400 {
			t.Fatalf("since %q: status %d", ts, statusOf(err))
		}
	})
}
