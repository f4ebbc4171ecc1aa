package dockerplugin

// The network driver: networks, endpoints, joins.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/service"
)

// Option keys dockerd sends in CreateNetwork.
const (
	optGeneric  = "com.docker.network.generic"
	optInternal = "com.docker.network.internal"
	optIPv6     = "com.docker.network.enable_ipv6"
	optPortMap  = "com.docker.network.portmap"
)

// dockerID is the shape of Docker's network and endpoint ids.
var dockerID = regexp.MustCompile(`^[0-9a-f]{1,64}$`)

// sandboxBase is the shape of the last element of a sandbox key.
var sandboxBase = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z_.-]{0,63}$`)

func checkID(what, id string) error {
	if !dockerID.MatchString(id) {
		return fmt.Errorf("invalid %s id %q", what, id)
	}
	return nil
}

// createOptions reads what CreateNetwork's options ask: the -o options,
// --internal; IPv6 is refused.
func createOptions(opts map[string]any) (generic map[string]string, internal bool, err error) {
	if v, ok := opts[optIPv6]; ok && v == true {
		return nil, false, errors.New("meshnet's Docker networks are IPv4 only for now: create the network without --ipv6")
	}
	if v, ok := opts[optInternal]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return nil, false, fmt.Errorf("invalid %s option %v", optInternal, v)
		}
		internal = b
	}
	generic = map[string]string{}
	if v, ok := opts[optGeneric]; ok && v != nil {
		m, isMap := v.(map[string]any)
		if !isMap {
			return nil, false, errors.New("invalid driver options: a map of strings is needed")
		}
		for k, val := range m {
			s, isString := val.(string)
			if !isString {
				return nil, false, fmt.Errorf("invalid value of option %s: a string is needed", k)
			}
			generic[k] = s
		}
	}
	return generic, internal, nil
}

func (p *Plugin) createNetwork(ctx context.Context, req *network.CreateNetworkRequest) (*struct{}, error) {
	if err := checkID("network", req.NetworkID); err != nil {
		return nil, err
	}
	opts, internal, err := createOptions(req.Options)
	if err != nil {
		return nil, err
	}
	if len(req.IPv6Data) > 0 {
		return nil, errors.New("meshnet's Docker networks are IPv4 only for now: create the network without --ipv6")
	}
	if len(req.IPv4Data) != 1 || req.IPv4Data[0] == nil {
		return nil, errors.New("a meshnet network has one IPv4 subnet: give at most one --subnet")
	}
	d := req.IPv4Data[0]
	if d.AddressSpace != addressSpace {
		return nil, errors.New("meshnet networks take their addresses from meshnet's cluster-wide leases: create the network with --ipam-driver meshnet")
	}
	subnet, err := netip.ParsePrefix(d.Pool)
	if err != nil || !subnet.Addr().Is4() {
		return nil, fmt.Errorf("invalid subnet %q", d.Pool)
	}
	subnet = subnet.Masked()
	gw, err := netip.ParsePrefix(d.Gateway)
	if err != nil || !subnet.Contains(gw.Addr()) {
		return nil, fmt.Errorf("invalid gateway %q of subnet %s", d.Gateway, subnet)
	}
	cfg := api.IPAMConfig{Subnet: subnet.String(), Gateway: gw.Addr().String()}
	for k, v := range d.AuxAddresses {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("invalid auxiliary address %s", k)
		}
		if cfg.AuxAddress == nil {
			cfg.AuxAddress = map[string]string{}
		}
		cfg.AuxAddress[k] = strings.Split(s, "/")[0]
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.state.Networks[req.NetworkID]; ok {
		return &struct{}{}, nil // told twice
	}
	if n, ok, err := p.networkBySubnet(ctx, subnet); err != nil {
		return nil, err
	} else if ok {
		// Another host's network (the mirror makes it here), or one made
		// with agentctl: the same network.
		if g := gatewayOf(n); g != gw.Addr() {
			return nil, fmt.Errorf("network %s has subnet %s with gateway %s, not %s", n.Name, subnet, g, gw.Addr())
		}
		p.state.Networks[req.NetworkID] = networkBinding{Network: n.ID, Subnet: subnet.String()}
		if err := p.state.save(); err != nil {
			delete(p.state.Networks, req.NetworkID)
			return nil, err
		}
		p.spawn(func() { p.confirmName(req.NetworkID, n) })
		return &struct{}{}, nil
	}
	if _, busy := p.pending[subnet.String()]; busy {
		return nil, fmt.Errorf("subnet %s is being given to another network right now", subnet)
	}
	if rng, ok := p.ranges[subnet]; ok {
		cfg.IPRange = rng.String()
	}
	create := api.NetworkCreate{Driver: api.DriverOverlay, Internal: internal, Options: opts, IPAM: &api.IPAM{Config: []api.IPAMConfig{cfg}}}
	check := create
	check.Name = planName
	if _, err := p.svc.NetworkPlan(ctx, check); err != nil {
		return nil, err
	}
	pn := &pendingNetwork{dockerID: req.NetworkID, done: make(chan struct{})}
	p.pending[subnet.String()] = pn
	p.state.Networks[req.NetworkID] = networkBinding{Subnet: subnet.String()}
	if err := p.state.save(); err != nil {
		delete(p.pending, subnet.String())
		delete(p.state.Networks, req.NetworkID)
		return nil, err
	}
	p.spawn(func() { p.nameNetwork(req.NetworkID, subnet, create, pn) })
	return &struct{}{}, nil
}

func (p *Plugin) deleteNetwork(ctx context.Context, req *network.DeleteNetworkRequest) (*struct{}, error) {
	if err := checkID("network", req.NetworkID); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.state.Networks[req.NetworkID]
	if !ok {
		return &struct{}{}, nil
	}
	if b.Network != "" {
		err := p.svc.NetworkRemove(ctx, b.Network)
		if err != nil && !errors.Is(err, service.ErrNotFound) {
			return nil, err
		}
	}
	// A network still waiting for its name is removed by nameNetwork
	// when it finds its binding gone.
	delete(p.state.Networks, req.NetworkID)
	return &struct{}{}, p.state.save()
}

func (p *Plugin) createEndpoint(ctx context.Context, req *network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	if err := cmp.Or(checkID("network", req.NetworkID), checkID("endpoint", req.EndpointID)); err != nil {
		return nil, err
	}
	if req.Interface == nil || req.Interface.Address == "" {
		return nil, errors.New("a container on a meshnet network needs an address from meshnet's IPAM (--ipam-driver meshnet)")
	}
	if req.Interface.AddressIPv6 != "" {
		return nil, errors.New("meshnet's Docker networks are IPv4 only for now")
	}
	addr, err := netip.ParsePrefix(req.Interface.Address)
	if err != nil || !addr.Addr().Is4() {
		return nil, fmt.Errorf("invalid address %q", req.Interface.Address)
	}
	meshNet, err := p.boundNetwork(ctx, req.NetworkID)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if b, ok := p.state.Endpoints[req.EndpointID]; ok && b.Network == meshNet {
		return &network.CreateEndpointResponse{}, nil // told twice
	}
	key := addressKey(meshNet, addr.Addr().String())
	lease, ok := p.state.Addresses[key]
	id := lease.Endpoint
	if !ok {
		return nil, fmt.Errorf("address %s was not leased by meshnet's IPAM", addr.Addr())
	}
	ep, err := p.svc.EndpointInspect(ctx, id)
	if err != nil {
		return nil, err
	}
	var resp network.CreateEndpointResponse
	switch mac := req.Interface.MacAddress; {
	case mac == "":
		resp.Interface = &network.EndpointInterface{MacAddress: ep.MacAddress}
	case !strings.EqualFold(mac, ep.MacAddress):
		// --mac-address: the lease is taken again with it.
		if err := p.svc.EndpointDelete(ctx, id); err != nil {
			return nil, err
		}
		delete(p.state.Addresses, key)
		ep, err = p.svc.EndpointCreate(ctx, api.EndpointCreate{Network: meshNet, IP: addr.Addr().String(), MacAddress: mac})
		if err != nil {
			return nil, errors.Join(err, p.state.save())
		}
		id = ep.ID
		p.state.Addresses[key] = addressLease{Endpoint: id, Since: time.Now()}
	}
	p.state.Endpoints[req.EndpointID] = endpointBinding{Network: meshNet, Endpoint: id, Since: time.Now()}
	return &resp, p.state.save()
}

// boundNetwork is the meshnet network of a Docker network, waiting for
// one whose name is being read.
func (p *Plugin) boundNetwork(ctx context.Context, dockerNet string) (string, error) {
	p.mu.Lock()
	b, ok := p.state.Networks[dockerNet]
	p.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("network %.12s is not a meshnet network of this host", dockerNet)
	}
	if b.Network != "" {
		return b.Network, nil
	}
	subnet, err := netip.ParsePrefix(b.Subnet)
	if err != nil {
		return "", fmt.Errorf("network %.12s: damaged binding", dockerNet)
	}
	n, err := p.networkOfPool(ctx, pool{subnet: subnet})
	if err != nil {
		return "", err
	}
	return n.ID, nil
}

func (p *Plugin) deleteEndpoint(ctx context.Context, req *network.DeleteEndpointRequest) (*struct{}, error) {
	if err := checkID("endpoint", req.EndpointID); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.state.Endpoints[req.EndpointID]
	if !ok {
		return &struct{}{}, nil
	}
	// The lease stays until ReleaseAddress.
	if err := p.svc.EndpointLeave(ctx, b.Endpoint); err != nil && !isGone(err) {
		return nil, err
	}
	delete(p.state.Endpoints, req.EndpointID)
	return &struct{}{}, p.state.save()
}

func (p *Plugin) endpointInfo(_ context.Context, req *network.InfoRequest) (*network.InfoResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.state.Endpoints[req.EndpointID]
	if !ok {
		return nil, fmt.Errorf("endpoint %.12s is not a meshnet endpoint of this host", req.EndpointID)
	}
	return &network.InfoResponse{Value: map[string]string{"meshnet.endpoint": b.Endpoint}}, nil
}

func (p *Plugin) join(ctx context.Context, req *network.JoinRequest) (*network.JoinResponse, error) {
	if err := cmp.Or(checkID("network", req.NetworkID), checkID("endpoint", req.EndpointID)); err != nil {
		return nil, err
	}
	key := req.SandboxKey
	base := filepath.Base(key)
	if !filepath.IsAbs(key) || filepath.Clean(key) != key || !sandboxBase.MatchString(base) {
		return nil, fmt.Errorf("invalid sandbox key %q", key)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.state.Endpoints[req.EndpointID]
	if !ok {
		return nil, fmt.Errorf("endpoint %.12s is not a meshnet endpoint of this host", req.EndpointID)
	}
	n, err := p.svc.NetworkInspect(ctx, b.Network)
	if err != nil {
		return nil, err
	}
	// One sandbox per Docker sandbox, made on its first join; its
	// container id is the key's last element.
	containerID := "docker-" + base
	sbs, err := p.svc.SandboxList(ctx, map[string][]string{"container-id": {containerID}})
	if err != nil {
		return nil, err
	}
	var sb string
	made := false
	if len(sbs) > 0 {
		sb = sbs[0].ID
	} else {
		resp, err := p.svc.SandboxCreate(ctx, api.SandboxCreate{Name: containerID, NetNS: key, ContainerID: containerID,
			Handoff: true, Networks: []api.NetworkAttachment{{Network: "none"}}})
		if err != nil {
			return nil, err
		}
		sb, made = resp.ID, true
	}
	ifname := hostIfName(b.Endpoint)
	ep, err := p.svc.EndpointJoin(ctx, b.Endpoint, api.EndpointJoin{Sandbox: sb, Interface: ifname, Handoff: true})
	if err != nil {
		if made {
			err = errors.Join(err, p.svc.SandboxRemove(ctx, sb, true))
		}
		return nil, err
	}
	p.spawn(func() { p.nameEndpoint(req.NetworkID, req.EndpointID, b.Endpoint) })
	resp := &network.JoinResponse{InterfaceName: network.InterfaceName{SrcName: ifname, DstPrefix: "eth"}}
	if !n.Internal {
		resp.Gateway = ep.Gateway
	}
	return resp, nil
}

// hostIfName is the name, in the host's namespace, of the interface Docker
// moves into the sandbox: unique on the host, as endpoint ids are.
func hostIfName(endpointID string) string {
	id := endpointID
	if len(id) > 11 {
		id = id[:11]
	}
	return "mnd" + id
}

func (p *Plugin) leave(ctx context.Context, req *network.LeaveRequest) (*struct{}, error) {
	if err := checkID("endpoint", req.EndpointID); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.state.Endpoints[req.EndpointID]
	if !ok {
		return &struct{}{}, nil
	}
	ep, err := p.svc.EndpointInspect(ctx, b.Endpoint)
	if errors.Is(err, service.ErrNotFound) || (err == nil && ep.Sandbox == "") {
		return &struct{}{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := p.svc.EndpointLeave(ctx, b.Endpoint); err != nil && !errors.Is(err, service.ErrConflict) {
		return nil, err
	}
	// The sandbox goes with its last endpoint; Docker deletes the
	// namespace.
	if sb, err := p.svc.SandboxInspect(ctx, ep.Sandbox); err == nil && len(sb.Networks) == 0 {
		if err := p.svc.SandboxRemove(ctx, sb.ID, false); err != nil && !errors.Is(err, service.ErrNotFound) {
			p.log.Warn("removing a Docker sandbox", "sandbox", sb.Name, "err", err)
		}
	}
	return &struct{}{}, nil
}
