package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// berth run -v/--tmpfs build the request the docker CLI would: "/dst"
// alone is an anonymous volume, "./dir" is made absolute here (the engine
// would not know the caller's working directory), the rest goes as is for
// the engine to check.
func TestRunMountFlags(t *testing.T) {
	f := &createFlags{
		volumes: []string{"/host:/data:ro", "v1:/vol", "/anon", "./rel:/rel"},
		tmpfs:   []string{"/run:size=64m,noexec", "/cache"},
	}
	opts, err := f.options([]string{"busybox", "true"})
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	wantBinds := []string{"/host:/data:ro", "v1:/vol", filepath.Join(wd, "rel") + ":/rel"}
	if !reflect.DeepEqual(opts.HostConfig.Binds, wantBinds) {
		t.Errorf("Binds = %q, want %q", opts.HostConfig.Binds, wantBinds)
	}
	if _, ok := opts.Config.Volumes["/anon"]; !ok || len(opts.Config.Volumes) != 1 {
		t.Errorf("Config.Volumes = %v, want /anon", opts.Config.Volumes)
	}
	wantTmpfs := map[string]string{"/run": "size=64m,noexec", "/cache": ""}
	if !reflect.DeepEqual(opts.HostConfig.Tmpfs, wantTmpfs) {
		t.Errorf("Tmpfs = %v, want %v", opts.HostConfig.Tmpfs, wantTmpfs)
	}
}

// berth run --network/--network-alias/--ip build docker's request.
func TestRunNetworkFlags(t *testing.T) {
	f := &createFlags{network: "appnet", aliases: []string{"db"}, ip: "172.18.0.9"}
	opts, err := f.options([]string{"busybox", "true"})
	if err != nil {
		t.Fatal(err)
	}
	ep := opts.NetworkingConfig.EndpointsConfig["appnet"]
	if opts.HostConfig.NetworkMode != "appnet" || ep == nil || ep.Aliases[0] != "db" || ep.IPAMConfig.IPv4Address.String() != "172.18.0.9" {
		t.Fatalf("request: %+v %+v", opts.HostConfig.NetworkMode, ep)
	}
	for _, bad := range []*createFlags{{aliases: []string{"x"}}, {network: "n", ip: "nope"}, {network: "n", ip: "fd00::1"}} {
		if _, err := bad.options([]string{"busybox"}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
