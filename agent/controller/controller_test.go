package controller

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/service"
	"github.com/meshnet/meshnet/sandbox"
)

// TestSandboxCreateRefusesBadInput: every malformed request is one
// sentence of the right kind, and nothing is left of it.
func TestSandboxCreateRefusesBadInput(t *testing.T) {
	tb := newTestbed(t)
	tb.network(t, "web")
	if _, err := tb.SandboxCreate(context.Background(), api.SandboxCreate{Name: "taken", Networks: []api.NetworkAttachment{{Network: "web"}}}); err != nil {
		t.Fatal(err)
	}
	on := func(na ...api.NetworkAttachment) []api.NetworkAttachment { return na }
	web := api.NetworkAttachment{Network: "web"}
	for _, tc := range []struct {
		name string
		req  api.SandboxCreate
		kind error
		msg  string
	}{
		{"empty name", api.SandboxCreate{Networks: on(web)}, service.ErrInvalid, "must not be empty"},
		{"path as name", api.SandboxCreate{Name: "../etc", Networks: on(web)}, service.ErrInvalid, "must start with a letter or digit"},
		{"long hostname", api.SandboxCreate{Name: "a", Hostname: strings.Repeat("h", 64), Networks: on(web)}, service.ErrInvalid, "invalid hostname"},
		{"bad dns", api.SandboxCreate{Name: "a", DNS: []string{"ns1"}, Networks: on(web)}, service.ErrInvalid, `invalid --dns "ns1"`},
		{"dns search with a newline", api.SandboxCreate{Name: "a", DNSSearch: []string{"x\nnameserver 203.0.113.9"}, Networks: on(web)}, service.ErrInvalid, "invalid resolver setting"},
		{"bad alias", api.SandboxCreate{Name: "a", Networks: on(api.NetworkAttachment{Network: "web", Aliases: []string{"a b"}})}, service.ErrInvalid, "invalid alias"},
		{"bad ip", api.SandboxCreate{Name: "a", Networks: on(api.NetworkAttachment{Network: "web", IP: "10.0.0.300"})}, service.ErrInvalid, "invalid IPv4 address"},
		{"bad mac", api.SandboxCreate{Name: "a", Networks: on(api.NetworkAttachment{Network: "web", MacAddress: "01:00:00:00:00:01"})}, service.ErrInvalid, "unicast"},
		{"bad interface", api.SandboxCreate{Name: "a", Networks: on(api.NetworkAttachment{Network: "web", Interface: "eth/0"})}, service.ErrInvalid, "invalid interface name"},
		{"network twice", api.SandboxCreate{Name: "a", Networks: on(web, web)}, service.ErrInvalid, "given twice"},
		{"unknown network", api.SandboxCreate{Name: "a", Networks: on(api.NetworkAttachment{Network: "nosuch"})}, service.ErrNotFound, "network nosuch not found"},
		{"no default network", api.SandboxCreate{Name: "a"}, service.ErrInvalid, "no default network"},
		{"bad port", api.SandboxCreate{Name: "a", Publish: []string{"80:x"}, Networks: on(web)}, service.ErrInvalid, `"x" is not a port`},
		{"ipv6 host address", api.SandboxCreate{Name: "a", Publish: []string{"[::1]:80:80"}, Networks: on(web)}, service.ErrInvalid, "IPv6 host address"},
		{"name taken", api.SandboxCreate{Name: "taken", Networks: on(web)}, service.ErrConflict, "sandbox taken already exists"},
		{"container id without netns", api.SandboxCreate{Name: "a", ContainerID: "c1", Networks: on(web)}, service.ErrInvalid, "give --netns"},
		{"netns not one", api.SandboxCreate{Name: "a", NetNS: "/nonesuch", Networks: on(web)}, service.ErrInvalid, "--netns /nonesuch"},
		{"netns of the host", api.SandboxCreate{Name: "a", NetNS: hostNetNS, Networks: on(web)}, service.ErrInvalid, "the host's own"},
	} {
		_, err := tb.SandboxCreate(context.Background(), tc.req)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.kind, tc.msg)
		}
		// By name: an id may begin with "a" too.
		if name, _ := sandbox.ParseName("a"); tb.Records.Named(name) != nil {
			t.Errorf("%s: sandbox recorded", tc.name)
		}
	}
	if nsb, nep := tb.Records.Counts(); nsb != 1 || nep != 1 {
		t.Errorf("%d sandboxes and %d endpoints after refusals, want the one taken", nsb, nep)
	}
}

// TestSandboxCreateRollsBack: a step that fails takes back every step
// before it — the endpoint's lease and its interface, the record, the
// namespace.
func TestSandboxCreateRollsBack(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(tb *testbed)
		msg     string
	}{
		{"files", func(tb *testbed) { tb.ns.failFiles = errors.New("disk full") }, "disk full"},
		{"datapath", func(tb *testbed) { tb.kernel.fail = errors.New("veth exists") }, "veth exists"},
		{"host port bound", func(tb *testbed) { tb.bound[8080] = true }, "in use on this host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestbed(t)
			id := tb.network(t, "web")
			tc.breakIt(tb)
			_, err := tb.SandboxCreate(context.Background(), api.SandboxCreate{Name: "a", Publish: []string{"8080:80"},
				Networks: []api.NetworkAttachment{{Network: "web"}}})
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("create: %v, want it to fail with %q", err, tc.msg)
			}
			tb.nothingLeft(t, "after the failed create")
			if eps := tb.kernel.endpoints(id); len(eps) != 0 {
				t.Errorf("the datapath still has endpoints %v", eps)
			}
			// What failed works again once the fault is gone.
			tb.ns.failFiles, tb.kernel.fail, tb.bound = nil, nil, map[uint16]bool{}
			if _, err := tb.SandboxCreate(context.Background(), api.SandboxCreate{Name: "a", Publish: []string{"8080:80"},
				Networks: []api.NetworkAttachment{{Network: "web"}}}); err != nil {
				t.Fatalf("create again: %v", err)
			}
			if eps := tb.kernel.endpoints(id); len(eps) != 1 {
				t.Errorf("the datapath has endpoints %v, want one", eps)
			}
		})
	}
}

// TestConnectDisconnect: a second network's endpoint comes and goes,
// the sandbox's files and the datapath follow.
func TestConnectDisconnect(t *testing.T) {
	tb := newTestbed(t)
	web, db := tb.network(t, "web"), tb.network(t, "db")
	ctx := context.Background()
	if _, err := tb.SandboxCreate(ctx, api.SandboxCreate{Name: "a", Networks: []api.NetworkAttachment{{Network: "web"}}}); err != nil {
		t.Fatal(err)
	}
	err := tb.NetworkConnect(ctx, "db", api.NetworkConnect{Container: "a", EndpointConfig: &api.EndpointRequest{
		Aliases: []string{"store"}, Interface: "data0", MacAddress: "02:00:00:00:00:0a"}})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := tb.SandboxInspect(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if es := sb.Networks["db"]; es.Interface != "data0" || es.MacAddress != "02:00:00:00:00:0a" || !slices.Equal(es.Aliases, []string{"store"}) {
		t.Errorf("db endpoint %+v", es)
	}
	if f := tb.ns.files["a"]; len(f.Hosts) != 2 || !slices.Contains(f.Hosts[1].Names, "store") {
		t.Errorf("hosts file %+v, want both addresses and the alias", f.Hosts)
	}
	if err := tb.NetworkConnect(ctx, "db", api.NetworkConnect{Container: "a"}); !errors.Is(err, service.ErrConflict) {
		t.Errorf("connect twice: %v", err)
	}
	if len(tb.kernel.endpoints(web)) != 1 || len(tb.kernel.endpoints(db)) != 1 {
		t.Errorf("datapath: web %v, db %v", tb.kernel.endpoints(web), tb.kernel.endpoints(db))
	}
	if err := tb.NetworkDisconnect(ctx, "db", api.NetworkDisconnect{Container: "a"}); err != nil {
		t.Fatal(err)
	}
	if len(tb.kernel.endpoints(db)) != 0 {
		t.Errorf("datapath of db after disconnect: %v", tb.kernel.endpoints(db))
	}
	if err := tb.NetworkDisconnect(ctx, "db", api.NetworkDisconnect{Container: "a"}); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("disconnect twice: %v", err)
	}
	if err := tb.NetworkRemove(ctx, "web"); !errors.Is(err, service.ErrConflict) || !strings.Contains(err.Error(), "a") {
		t.Errorf("remove a network in use: %v", err)
	}
	if err := tb.SandboxRemove(ctx, "a", false); err != nil {
		t.Fatal(err)
	}
	tb.nothingLeft(t, "after sandbox rm")
	if err := tb.NetworkRemove(ctx, "web"); err != nil {
		t.Errorf("remove a network no longer in use: %v", err)
	}
}

// TestEndpointLifeCycle: created, joined, left, deleted, with each step
// refused out of order.
func TestEndpointLifeCycle(t *testing.T) {
	tb := newTestbed(t)
	tb.network(t, "web")
	ctx := context.Background()
	if _, err := tb.SandboxCreate(ctx, api.SandboxCreate{Name: "b", Networks: []api.NetworkAttachment{{Network: "web"}}}); err != nil {
		t.Fatal(err)
	}
	ep, err := tb.EndpointCreate(ctx, api.EndpointCreate{Network: "web", Name: "extra", IP: "198.51.100.40"})
	if err != nil {
		t.Fatal(err)
	}
	if ep.IPv4Address != "198.51.100.40/26" {
		t.Errorf("endpoint address %s", ep.IPv4Address)
	}
	if _, err := tb.EndpointCreate(ctx, api.EndpointCreate{Network: "web", IP: "198.51.100.40"}); err == nil {
		t.Error("the same address twice was leased")
	}
	if err := tb.EndpointLeave(ctx, ep.ID); !errors.Is(err, service.ErrConflict) {
		t.Errorf("leave before join: %v", err)
	}
	if _, err := tb.EndpointJoin(ctx, ep.ID, api.EndpointJoin{Sandbox: "b"}); !errors.Is(err, service.ErrConflict) {
		t.Errorf("join a second endpoint of one network: %v", err)
	}
	if err := tb.EndpointDelete(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.EndpointInspect(ctx, ep.ID); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("inspect after delete: %v", err)
	}
}
