package engine

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	ctrs "github.com/berth-dev/berth/runtime/container"
	"github.com/berth-dev/berth/runtime/dataroot"
	netstore "github.com/berth-dev/berth/runtime/network"
)

// Networks and container addresses survive an engine restart; an address
// a crash left without a container is freed at the next start; a create
// that fails on its second network leaves no address behind. No VM boots.
func TestNetworksAcrossEngineRestart(t *testing.T) {
	var root dataroot.Root
	eng := openEngine(t, func(o *Options) { root = o.Root })
	ctx := context.Background()
	n, err := eng.Networks.Create("app", netstore.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	create := func(name string, nc *network.NetworkingConfig, mode string) (string, error) {
		r, err := eng.Containers.Create(ctx, ctrs.CreateOptions{Name: name, Config: &container.Config{Image: testImage, Cmd: []string{"true"}},
			HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(mode)}, Networking: nc})
		return r.ID, err
	}
	a, err := create("a", &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"app": {Aliases: []string{"alpha"}}}}, "app")
	if err != nil {
		t.Fatal(err)
	}
	_, err = create("b", &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"app": nil, "missing": nil}}, "app")
	if err == nil || !errors.Is(err, netstore.ErrNotFound) {
		t.Fatalf("create on a missing network: %v", err)
	}
	if _, err := eng.Containers.Inspect(ctx, "b"); !errors.Is(err, ctrs.ErrNotFound) {
		t.Fatalf("failed create left a container: %v", err)
	}
	// A crash between an address and its container record.
	if _, err := eng.Networks.Allocate(n.ID, "ghost", netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	ins, _ := eng.Containers.Inspect(ctx, "a")
	ip := ins.NetworkSettings.Networks["app"].IPAddress
	if ip.String() != "172.18.0.2" {
		t.Fatalf("a's address %v", ip)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	eng.Close(cctx)
	cancel()

	eng2 := openEngine(t, func(o *Options) { o.Root = root })
	got, err := eng2.Networks.Get("app")
	if err != nil || got.ID != n.ID || len(got.Addrs) != 1 || got.Addrs[a] != ip {
		t.Fatalf("after restart: %+v %v (want only a at %v)", got, err, ip)
	}
	ins, _ = eng2.Containers.Inspect(ctx, "a")
	if ep := ins.NetworkSettings.Networks["app"]; ep == nil || ep.IPAddress != ip || ep.Aliases[0] != "alpha" {
		t.Fatalf("a after restart: %+v", ep)
	}
	if err := eng2.Containers.Remove(ctx, "a", ctrs.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng2.Networks.Remove("app"); err != nil {
		t.Fatalf("network rm after its last container went: %v", err)
	}
}
