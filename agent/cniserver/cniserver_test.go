package cniserver

// The CNI server's translation, over a service that records what it is
// asked (the real one is tested end to end, with cnitool and Podman).

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/service"
)

// recorder is a service with one network ("multi", id "m1") whose
// sandboxes are kept in a map; everything else is not implemented.
type recorder struct {
	service.Service
	sandboxes map[string]*api.Sandbox // by id
	calls     []string
}

func (r *recorder) NetworkInspect(_ context.Context, ref string) (api.Network, error) {
	if ref != "multi" && ref != "m1" {
		return api.Network{}, service.NotFoundf("network %s not found", ref)
	}
	return api.Network{Name: "multi", ID: "m1"}, nil
}

func (r *recorder) SandboxList(_ context.Context, f map[string][]string) ([]api.Sandbox, error) {
	var out []api.Sandbox
	for _, s := range r.sandboxes {
		if ids := f["container-id"]; len(ids) > 0 && s.ContainerID != ids[0] {
			continue
		}
		out = append(out, *s)
	}
	return out, nil
}

func (r *recorder) SandboxCreate(_ context.Context, req api.SandboxCreate) (api.CreateResponse, error) {
	r.calls = append(r.calls, "create "+req.Name+" "+strings.Join(req.Publish, ","))
	for _, s := range r.sandboxes {
		if s.Name == req.Name {
			return api.CreateResponse{}, service.Conflictf("sandbox %s already exists", req.Name)
		}
	}
	id := "s" + req.Name
	na := req.Networks[0]
	r.sandboxes[id] = &api.Sandbox{ID: id, Name: req.Name, NetNS: req.NetNS, ContainerID: req.ContainerID,
		Networks: map[string]api.EndpointSettings{"multi": {NetworkID: "m1", EndpointID: "e" + na.Interface, Interface: na.Interface,
			IPAddress: "10.0.0.2", IPPrefixLen: 24, MacAddress: "02:6d:0a:00:00:02", MTU: 1450, DefaultRoute: true}},
		Resolver: api.DNSConfig{Nameservers: []string{"127.0.0.11"}}}
	return api.CreateResponse{ID: id}, nil
}

func (r *recorder) SandboxRemove(_ context.Context, ref string, force bool) error {
	r.calls = append(r.calls, "rm "+ref)
	delete(r.sandboxes, ref)
	return nil
}

func (r *recorder) NetworkDisconnect(_ context.Context, ref string, req api.NetworkDisconnect) error {
	r.calls = append(r.calls, "disconnect "+req.Container)
	return nil
}

func TestAddDelGC(t *testing.T) {
	r := &recorder{sandboxes: map[string]*api.Sandbox{}}
	s := New(r)
	ctx := context.Background()
	// A sandbox of that name exists already: the short id is taken instead.
	r.sandboxes["sweb"] = &api.Sandbox{ID: "sweb", Name: "web", Networks: map[string]api.EndpointSettings{}}
	add := api.CNIAdd{CNIAttachment: api.CNIAttachment{ContainerID: "0123456789abcdef", IfName: "eth0"}, NetNS: "/var/run/netns/c1",
		Network: "multi", Name: "web", Ports: []api.CNIPortMapping{{HostPort: 8080, ContainerPort: 80}}}
	res, err := s.Add(ctx, add)
	if err != nil {
		t.Fatal(err)
	}
	if res.IPv4Address != "10.0.0.2/24" || res.MTU != 1450 || !res.DefaultRoute || res.DNS.Nameservers[0] != "127.0.0.11" || res.NetNS != add.NetNS {
		t.Errorf("result %+v", res)
	}
	if want := "create web 8080:80/tcp"; r.calls[0] != want || r.calls[1] != "create 0123456789ab 8080:80/tcp" {
		t.Errorf("calls %q, want %q then the short id", r.calls, want)
	}
	if _, err := s.Add(ctx, add); !errors.Is(err, service.ErrConflict) || !strings.Contains(err.Error(), "already has an interface eth0") {
		t.Errorf("ADD twice: %v", err)
	}
	other := add
	other.IfName, other.NetNS = "eth1", "/var/run/netns/other"
	if _, err := s.Add(ctx, other); !errors.Is(err, service.ErrConflict) || !strings.Contains(err.Error(), "another network namespace") {
		t.Errorf("ADD in another namespace: %v", err)
	}
	for _, bad := range []api.CNIAdd{
		{CNIAttachment: api.CNIAttachment{IfName: "eth0"}, NetNS: "/x"},
		{CNIAttachment: api.CNIAttachment{ContainerID: "-x", IfName: "eth0"}, NetNS: "/x"},
		{CNIAttachment: api.CNIAttachment{ContainerID: "c", IfName: "a/b"}, NetNS: "/x"},
		{CNIAttachment: api.CNIAttachment{ContainerID: "c", IfName: "eth0"}, NetNS: "relative"},
		{CNIAttachment: api.CNIAttachment{ContainerID: "c", IfName: "eth0"}, NetNS: "/x", Ports: []api.CNIPortMapping{{HostPort: 0, ContainerPort: 80}}},
		{CNIAttachment: api.CNIAttachment{ContainerID: "c", IfName: "eth0"}, NetNS: "/x", Ports: []api.CNIPortMapping{{HostPort: 1, ContainerPort: 80, Protocol: "sctp"}}},
	} {
		if _, err := s.Add(ctx, bad); !errors.Is(err, service.ErrInvalid) {
			t.Errorf("ADD %+v: %v, want invalid", bad, err)
		}
	}
	// DEL of another network's interface, or of nothing, does nothing.
	if err := s.Del(ctx, api.CNIDel{CNIAttachment: add.CNIAttachment, Network: "other"}); err != nil || len(r.sandboxes) != 2 {
		t.Errorf("DEL on another network: %v, %d sandboxes", err, len(r.sandboxes))
	}
	if err := s.Del(ctx, api.CNIDel{CNIAttachment: api.CNIAttachment{ContainerID: "nobody", IfName: "eth0"}}); err != nil {
		t.Errorf("DEL of nothing: %v", err)
	}
	// GC keeps the valid attachment, then releases it once it is not.
	keep := api.CNIGC{Network: "multi", Valid: []api.CNIAttachment{add.CNIAttachment}}
	if res, err := s.GC(ctx, keep); err != nil || len(res.Released) != 0 {
		t.Errorf("GC with the attachment valid: %+v, %v", res, err)
	}
	if res, err := s.GC(ctx, api.CNIGC{Network: "multi"}); err != nil || len(res.Released) != 1 || res.Released[0] != add.CNIAttachment {
		t.Errorf("GC: %+v, %v", res, err)
	}
	if last := r.calls[len(r.calls)-1]; last != "rm s0123456789ab" {
		t.Errorf("GC did %q, want the container's sandbox removed", last)
	}
	if res, err := s.GC(ctx, api.CNIGC{Network: "nosuch"}); err != nil || len(res.Released) != 0 {
		t.Errorf("GC of an unknown network: %+v, %v", res, err)
	}
}
