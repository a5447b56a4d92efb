package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"runtime"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
)

// maxJSONBody bounds request bodies that are decoded as JSON (create, exec):
// real ones are a few KiB.
const maxJSONBody = 4 << 20

// decodeStrict decodes one JSON object from r.Body into v. Unknown fields
// are an error naming the field: a field we do not know is a setting we
// would otherwise silently drop.
func decodeStrict(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return badRequest("reading request body: %v", err)
	}
	if len(body) > maxJSONBody {
		return badRequest("request body larger than %d bytes", maxJSONBody)
	}
	return decodeStrictBytes(body, v)
}

// legacyField is a field older clients send that moby's current types no
// longer have. At its zero value it is dropped; set, it is refused with the
// flag named, like any other unsupported setting.
type legacyField struct {
	path []string // JSON keys from the top of the body
	flag string
}

var (
	// docker 28 and older send these with create (zero unless the flag is used).
	createLegacy = []legacyField{
		{[]string{"MacAddress"}, "--mac-address"},
		{[]string{"HostConfig", "KernelMemory"}, "--kernel-memory"},
		{[]string{"HostConfig", "KernelMemoryTCP"}, "--kernel-memory-tcp"},
		{[]string{"HostConfig", "Capabilities"}, "--capabilities"},
	}
	// "Detach" was never used at exec create and left the type in 1.52.
	execCreateLegacy = []legacyField{{[]string{"Detach"}, ""}}
)

// decodeStrictLegacy is decodeStrict for bodies in which older clients send
// fields that moby's current types dropped (see legacyField).
func decodeStrictLegacy(r *http.Request, v any, legacy []legacyField) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return badRequest("reading request body: %v", err)
	}
	if len(body) > maxJSONBody {
		return badRequest("request body larger than %d bytes", maxJSONBody)
	}
	if body, err = dropLegacy(body, legacy); err != nil {
		return err
	}
	return decodeStrictBytes(body, v)
}

func dropLegacy(body []byte, legacy []legacyField) ([]byte, error) {
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // re-encoding must not round large integers through float64
	if dec.Decode(&obj) != nil || dec.More() {
		return body, nil // not one object: decodeStrictBytes says what is wrong
	}
	dropped := false
	for _, lf := range legacy {
		parent := obj
		for _, k := range lf.path[:len(lf.path)-1] {
			next, _ := parent[k].(map[string]any)
			parent = next
		}
		key := lf.path[len(lf.path)-1]
		val, ok := parent[key]
		if !ok {
			continue
		}
		if !jsonZero(val) && lf.flag != "" {
			return nil, notImplemented("not supported by Berth: %s (%s)", strings.Join(lf.path, "."), lf.flag)
		}
		delete(parent, key)
		dropped = true
	}
	if !dropped {
		return body, nil
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, badRequest("invalid JSON in request body: %v", err)
	}
	return b, nil
}

func jsonZero(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case json.Number:
		f, err := x.Float64()
		return err == nil && f == 0
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

func decodeStrictBytes(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("empty request body: expected a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return badRequest("malformed JSON in request body at offset %d: %v", se.Offset, err)
		case errors.As(err, &te):
			return badRequest("invalid JSON in request body: field %s: cannot use a JSON %s as %s", te.Field, te.Value, te.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return badRequest("unsupported field in request body: %s (Berth does not know this setting)", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return badRequest("invalid JSON in request body: %v", err)
	}
	if dec.More() {
		return badRequest("invalid JSON in request body: trailing data after the object")
	}
	return nil
}

// What Berth supports of HostConfig (and its embedded Resources). Every
// other field must be at its zero value (an empty list counts as zero, and
// so does the -1 "unset" some clients send), or the request is refused with
// the field named: a flag must never be silently ignored.
var supportedHostConfig = map[string]bool{
	"PortBindings": true, "RestartPolicy": true, "AutoRemove": true, "NetworkMode": true,
	"ConsoleSize": true, "LogConfig": true, "Memory": true, "NanoCPUs": true,
	"Annotations": true, "Isolation": true, "ContainerIDFile": true,
	"ExtraHosts": true, "DNS": true,
	"Binds": true, "Mounts": true, "Tmpfs": true, // checked by the container manager
	"MemorySwappiness": true, // -1 = unset, checked below
	"MemorySwap":       true, // must equal 0, -1 or Memory (no swap in the VM), checked below
}

// hostConfigFlag names the docker CLI flag for a HostConfig field, for
// error messages users can act on.
var hostConfigFlag = map[string]string{
	"Binds": "-v/--volume", "Mounts": "--mount", "VolumesFrom": "--volumes-from", "Privileged": "--privileged",
	"CapAdd": "--cap-add", "CapDrop": "--cap-drop", "Devices": "--device", "PidMode": "--pid", "IpcMode": "--ipc",
	"UTSMode": "--uts", "UsernsMode": "--userns", "ReadonlyRootfs": "--read-only", "Tmpfs": "--tmpfs",
	"SecurityOpt": "--security-opt", "Sysctls": "--sysctl", "ShmSize": "--shm-size", "Links": "--link",
	"DNSOptions": "--dns-option", "DNSSearch": "--dns-search", "GroupAdd": "--group-add", "CPUShares": "--cpu-shares",
	"CpusetCpus": "--cpuset-cpus", "CpusetMems": "--cpuset-mems", "CPUQuota": "--cpu-quota", "CPUPeriod": "--cpu-period",
	"PidsLimit": "--pids-limit", "Ulimits": "--ulimit", "OomKillDisable": "--oom-kill-disable", "OomScoreAdj": "--oom-score-adj",
	"MemoryReservation": "--memory-reservation", "PublishAllPorts": "-P/--publish-all", "Init": "--init",
	"Runtime": "--runtime", "CgroupParent": "--cgroup-parent", "DeviceRequests": "--gpus", "StorageOpt": "--storage-opt",
	"BlkioWeight": "--blkio-weight", "CgroupnsMode": "--cgroupns", "VolumeDriver": "--volume-driver",
}

// zeroish reports whether v is the zero value, treating empty slices and
// maps and pointers to zero values as zero.
func zeroish(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return v.IsNil() || zeroish(v.Elem())
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if !zeroish(v.Field(i)) {
				return false
			}
		}
		return true
	}
	return v.IsZero()
}

// unsupportedFields lists the fields of the struct v (flattening embedded
// structs) that are set but not in supported.
func unsupportedFields(v reflect.Value, supported map[string]bool) []string {
	var out []string
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, unsupportedFields(v.Field(i), supported)...)
			continue
		}
		if supported[f.Name] {
			continue
		}
		if !zeroish(v.Field(i)) {
			out = append(out, f.Name)
		}
	}
	return out
}

func describeFields(names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		if flag, ok := hostConfigFlag[n]; ok {
			parts[i] = fmt.Sprintf("%s (%s)", n, flag)
		} else {
			parts[i] = n
		}
	}
	return strings.Join(parts, ", ")
}

// validateCreate checks a create request for settings Berth cannot honour
// (501, naming them) and values that make no sense (400).
func validateCreate(req *container.CreateRequest, hostMemory int64) error {
	if req.Config == nil {
		return badRequest("container config is missing from the request body")
	}
	cfg := req.Config
	if cfg.Image == "" {
		return badRequest("no image given: the request must name the image to run (Image)")
	}
	if cfg.Healthcheck != nil && len(cfg.Healthcheck.Test) > 0 && cfg.Healthcheck.Test[0] != "NONE" {
		return notImplemented("health checks are not supported by Berth yet (--health-cmd / image HEALTHCHECK)")
	}
	if cfg.Domainname != "" {
		return notImplemented("--domainname is not supported by Berth yet")
	}
	if cfg.NetworkDisabled {
		return notImplemented("--network none is not supported by Berth yet: every container has its own NIC")
	}
	if cfg.StopTimeout != nil && *cfg.StopTimeout < -1 {
		return badRequest("invalid stop timeout %d: use seconds >= 0, or -1 to wait forever", *cfg.StopTimeout)
	}
	hc := req.HostConfig
	if hc == nil {
		hc = &container.HostConfig{}
		req.HostConfig = hc
	}
	if bad := unsupportedFields(reflect.ValueOf(*hc), supportedHostConfig); len(bad) > 0 {
		return notImplemented("not supported by Berth: %s", describeFields(bad))
	}
	if hc.LogConfig.Type != "" && hc.LogConfig.Type != "json-file" {
		return notImplemented("log driver %q is not supported by Berth: logs are always recorded as json-file", hc.LogConfig.Type)
	}
	if len(hc.LogConfig.Config) > 0 {
		return notImplemented("log options (--log-opt) are not supported by Berth: log rotation is set by the engine")
	}
	switch hc.Isolation {
	case "", "default":
	default:
		return notImplemented("isolation %q is not supported: every Berth container is isolated in its own VM", hc.Isolation)
	}
	if hc.Memory < 0 {
		return badRequest("invalid memory limit %d: must be a positive number of bytes", hc.Memory)
	}
	if hostMemory > 0 && hc.Memory > hostMemory {
		return badRequest("memory limit %d bytes is more than this machine has (%d bytes)", hc.Memory, hostMemory)
	}
	if hc.MemorySwap != 0 && hc.MemorySwap != -1 && hc.MemorySwap != hc.Memory {
		return notImplemented("--memory-swap is not supported by Berth: containers run in VMs without swap")
	}
	if hc.MemorySwappiness != nil && *hc.MemorySwappiness != -1 {
		return notImplemented("--memory-swappiness is not supported by Berth: containers run in VMs without swap")
	}
	if hc.NanoCPUs < 0 {
		return badRequest("invalid --cpus value %d nano-CPUs: must be positive", hc.NanoCPUs)
	}
	if max := int64(runtime.NumCPU()) * 1e9; hc.NanoCPUs > max {
		return badRequest("range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", runtime.NumCPU(), runtime.NumCPU())
	}
	for port, bindings := range hc.PortBindings {
		if port.Proto() != "tcp" {
			return notImplemented("publishing %s ports is not supported by Berth (port %s): only tcp", port.Proto(), port)
		}
		if port.Num() == 0 {
			return badRequest("invalid container port %q in port bindings", port.String())
		}
		for _, b := range bindings {
			if b.HostPort == "" {
				continue
			}
			lo, hi, ok := strings.Cut(b.HostPort, "-")
			for _, p := range []string{lo, hi} {
				if !ok && p == hi {
					continue
				}
				n, err := strconv.Atoi(p)
				if err != nil || n < 0 || n > 65535 {
					return badRequest("invalid host port %q for container port %s: expected 1-65535", b.HostPort, port)
				}
			}
		}
	}
	switch hc.RestartPolicy.Name {
	case "", "no", "always", "unless-stopped", "on-failure":
	default:
		return badRequest("invalid restart policy %q: use no, always, unless-stopped or on-failure[:N]", hc.RestartPolicy.Name)
	}
	if hc.RestartPolicy.MaximumRetryCount < 0 {
		return badRequest("invalid restart policy: maximum retry count cannot be negative")
	}
	if hc.RestartPolicy.MaximumRetryCount > 0 && hc.RestartPolicy.Name != "on-failure" {
		return badRequest("maximum retry count can only be used with the on-failure restart policy")
	}
	if hc.AutoRemove && hc.RestartPolicy.Name != "" && hc.RestartPolicy.Name != "no" {
		return badRequest("can't create a container with both --rm and a restart policy")
	}
	// --network and NetworkingConfig (aliases, --ip) are checked by the
	// container manager, which knows the networks.
	return nil
}
