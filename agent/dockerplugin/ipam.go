package dockerplugin

// The IPAM driver. A pool is a meshnet network's subnet (its id is the
// subnet, with the --ip-range after a comma); a gateway is the network's,
// leased with it; a container's address is a meshnet endpoint's lease,
// taken in the cluster store, so two hosts never hand out one address.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/service"
)

// ipamDriver is the plugin's IPAM face: its calls, over the state it
// shares with the network driver.
type ipamDriver struct{ *Plugin }

// addressSpace is the one address space of the IPAM driver.
const addressSpace = Name

// gatewayRequest marks RequestAddress for a network's gateway.
const gatewayRequest = "com.docker.network.gateway"

// planName names the network of a NetworkPlan made before Docker has told
// the name; never created under it.
const planName = "docker-network-plan"

// pool is a pool id, parsed.
type pool struct {
	subnet  netip.Prefix
	ipRange netip.Prefix // may be zero
}

func (pl pool) id() string {
	if pl.ipRange.IsValid() {
		return pl.subnet.String() + "," + pl.ipRange.String()
	}
	return pl.subnet.String()
}

func parsePoolID(id string) (pool, error) {
	s, r, hasRange := strings.Cut(id, ",")
	var pl pool
	var err error
	if pl.subnet, err = netip.ParsePrefix(s); err != nil || pl.subnet != pl.subnet.Masked() || !pl.subnet.Addr().Is4() {
		return pool{}, fmt.Errorf("invalid pool id %q: not a meshnet pool", id)
	}
	if hasRange {
		if pl.ipRange, err = netip.ParsePrefix(r); err != nil || !pl.subnet.Contains(pl.ipRange.Addr()) || pl.ipRange.Bits() < pl.subnet.Bits() {
			return pool{}, fmt.Errorf("invalid pool id %q: not a meshnet pool", id)
		}
	}
	return pl, nil
}

func (p ipamDriver) requestPool(ctx context.Context, req *ipam.RequestPoolRequest) (*ipam.RequestPoolResponse, error) {
	if req.V6 {
		return nil, errors.New("meshnet's Docker networks are IPv4 only for now: create the network without --ipv6")
	}
	if req.AddressSpace != "" && req.AddressSpace != addressSpace {
		return nil, fmt.Errorf("unknown address space %q: meshnet's IPAM has one, %s", req.AddressSpace, addressSpace)
	}
	for k := range req.Options {
		return nil, fmt.Errorf("meshnet's IPAM takes no --ipam-opt (%s was given)", k)
	}
	cfg := api.IPAMConfig{Subnet: req.Pool, IPRange: req.SubPool}
	if req.Pool != "" {
		subnet, err := netip.ParsePrefix(req.Pool)
		if err != nil || !subnet.Addr().Is4() {
			return nil, fmt.Errorf("invalid subnet %q: an IPv4 prefix such as 10.20.0.0/24 is needed", req.Pool)
		}
		if err := p.checkPending(subnet.Masked()); err != nil {
			return nil, err
		}
		if n, ok, err := p.networkBySubnet(ctx, subnet.Masked()); err != nil {
			return nil, err
		} else if ok { // another host's network, made here too
			return poolAnswer(pool{subnet: subnet.Masked(), ipRange: rangeOf(n)}), nil
		}
	} else if req.SubPool != "" {
		return nil, errors.New("--ip-range needs --subnet")
	}
	req2 := api.NetworkCreate{Name: planName, Driver: api.DriverOverlay}
	if cfg.Subnet != "" {
		req2.IPAM = &api.IPAM{Config: []api.IPAMConfig{cfg}}
	}
	plan, err := p.svc.NetworkPlan(ctx, req2)
	if err != nil {
		return nil, err
	}
	pl, err := poolOf(plan)
	if err != nil {
		return nil, err
	}
	if pl.ipRange.IsValid() {
		p.mu.Lock()
		p.ranges[pl.subnet] = pl.ipRange
		p.mu.Unlock()
	}
	return poolAnswer(pl), nil
}

// checkPending refuses a subnet that overlaps one of a network that Docker
// has made through this plugin and that is not in meshnet yet.
func (p ipamDriver) checkPending(s netip.Prefix) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for sub := range p.pending {
		if o, err := netip.ParsePrefix(sub); err == nil && o.Overlaps(s) {
			return fmt.Errorf("subnet %s overlaps subnet %s of a network being created", s, o)
		}
	}
	return nil
}

func poolAnswer(pl pool) *ipam.RequestPoolResponse {
	return &ipam.RequestPoolResponse{PoolID: pl.id(), Pool: pl.subnet.String(), Data: map[string]string{}}
}

// poolOf is the pool of a meshnet network: its IPv4 subnet and range.
func poolOf(n api.Network) (pool, error) {
	for _, c := range n.IPAM.Config {
		s, err := netip.ParsePrefix(c.Subnet)
		if err != nil || !s.Addr().Is4() {
			continue
		}
		pl := pool{subnet: s.Masked()}
		pl.ipRange, _ = netip.ParsePrefix(c.IPRange)
		return pl, nil
	}
	return pool{}, fmt.Errorf("network %s has no IPv4 subnet", n.Name)
}

func rangeOf(n api.Network) netip.Prefix {
	pl, _ := poolOf(n)
	return pl.ipRange
}

// gatewayOf is the IPv4 gateway of a meshnet network.
func gatewayOf(n api.Network) netip.Addr {
	for _, c := range n.IPAM.Config {
		if g, err := netip.ParseAddr(c.Gateway); err == nil && g.Is4() {
			return g
		}
	}
	return netip.Addr{}
}

// networkBySubnet finds the global meshnet network whose IPv4 subnet is s.
func (p *Plugin) networkBySubnet(ctx context.Context, s netip.Prefix) (api.Network, bool, error) {
	nets, err := p.svc.NetworkList(ctx, map[string][]string{"scope": {api.ScopeGlobal}})
	if err != nil {
		return api.Network{}, false, err
	}
	for _, n := range nets {
		if pl, err := poolOf(n); err == nil && pl.subnet == s && n.Scope == api.ScopeGlobal {
			return n, true, nil
		}
	}
	return api.Network{}, false, nil
}

// networkOfPool is the meshnet network of a pool, once created: a network
// Docker is creating right now is waited for.
func (p *Plugin) networkOfPool(ctx context.Context, pl pool) (api.Network, error) {
	p.mu.Lock()
	pn := p.pending[pl.subnet.String()]
	p.mu.Unlock()
	if pn != nil {
		select {
		case <-pn.done:
			if pn.err != nil {
				return api.Network{}, pn.err
			}
		case <-ctx.Done():
			return api.Network{}, fmt.Errorf("the network of subnet %s is still being created in meshnet: try again", pl.subnet)
		}
	}
	n, ok, err := p.networkBySubnet(ctx, pl.subnet)
	if err != nil {
		return api.Network{}, err
	}
	if !ok {
		return api.Network{}, fmt.Errorf("no meshnet network has the subnet %s: meshnet's IPAM serves networks of the meshnet driver only", pl.subnet)
	}
	return n, nil
}

func (p ipamDriver) releasePool(context.Context, *ipam.ReleasePoolRequest) (*struct{}, error) {
	// The subnet is the network's: it is given back when the network is
	// removed (DeleteNetwork).
	return &struct{}{}, nil
}

func (p ipamDriver) requestAddress(ctx context.Context, req *ipam.RequestAddressRequest) (*ipam.RequestAddressResponse, error) {
	pl, err := parsePoolID(req.PoolID)
	if err != nil {
		return nil, err
	}
	var want netip.Addr
	if req.Address != "" {
		if want, err = netip.ParseAddr(req.Address); err != nil || !want.Is4() {
			return nil, fmt.Errorf("invalid IPv4 address %q", req.Address)
		}
		if !pl.subnet.Contains(want) {
			return nil, fmt.Errorf("address %s is outside the network's subnet %s", want, pl.subnet)
		}
	}
	if req.Options["RequestAddressType"] == gatewayRequest {
		return p.gateway(ctx, pl, want)
	}
	n, err := p.networkOfPool(ctx, pl)
	if err != nil {
		return nil, err
	}
	creq := api.EndpointCreate{Network: n.ID}
	if want.IsValid() {
		creq.IP = want.String()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ep, err := p.svc.EndpointCreate(ctx, creq)
	if err != nil {
		return nil, err
	}
	addr, err := netip.ParsePrefix(ep.IPv4Address)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("endpoint %s has no IPv4 address", ep.ID), p.svc.EndpointDelete(ctx, ep.ID))
	}
	p.state.Addresses[addressKey(n.ID, addr.Addr().String())] = addressLease{Endpoint: ep.ID, Since: time.Now()}
	if err := p.state.save(); err != nil {
		delete(p.state.Addresses, addressKey(n.ID, addr.Addr().String()))
		return nil, errors.Join(err, p.svc.EndpointDelete(ctx, ep.ID))
	}
	return &ipam.RequestAddressResponse{Address: addr.String(), Data: map[string]string{}}, nil
}

// gateway answers for the gateway of the pool's network: the existing
// network's, or the one the new network will get.
func (p ipamDriver) gateway(ctx context.Context, pl pool, want netip.Addr) (*ipam.RequestAddressResponse, error) {
	n, ok, err := p.networkBySubnet(ctx, pl.subnet)
	if err != nil {
		return nil, err
	}
	if !ok {
		cfg := api.IPAMConfig{Subnet: pl.subnet.String()}
		if pl.ipRange.IsValid() {
			cfg.IPRange = pl.ipRange.String()
		}
		if want.IsValid() {
			cfg.Gateway = want.String()
		}
		if n, err = p.svc.NetworkPlan(ctx, api.NetworkCreate{Name: planName, Driver: api.DriverOverlay, IPAM: &api.IPAM{Config: []api.IPAMConfig{cfg}}}); err != nil {
			return nil, err
		}
	}
	gw := gatewayOf(n)
	switch {
	case !gw.IsValid():
		return nil, fmt.Errorf("the network of subnet %s has no IPv4 gateway", pl.subnet)
	case want.IsValid() && want != gw:
		return nil, fmt.Errorf("the gateway of network %s is %s, not %s", n.Name, gw, want)
	}
	return &ipam.RequestAddressResponse{Address: netip.PrefixFrom(gw, pl.subnet.Bits()).String(), Data: map[string]string{}}, nil
}

func (p ipamDriver) releaseAddress(ctx context.Context, req *ipam.ReleaseAddressRequest) (*struct{}, error) {
	pl, err := parsePoolID(req.PoolID)
	if err != nil {
		return nil, err
	}
	addr, err := netip.ParseAddr(req.Address)
	if err != nil {
		if pfx, perr := netip.ParsePrefix(req.Address); perr == nil {
			addr, err = pfx.Addr(), nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("invalid address %q", req.Address)
	}
	n, ok, err := p.networkBySubnet(ctx, pl.subnet)
	if err != nil || !ok || addr == gatewayOf(n) {
		return &struct{}{}, err // a network that is gone took its leases along
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	key := addressKey(n.ID, addr.String())
	lease, ok := p.state.Addresses[key]
	if !ok {
		return &struct{}{}, nil
	}
	if err := p.dropEndpoint(ctx, lease.Endpoint); err != nil {
		return nil, err
	}
	delete(p.state.Addresses, key)
	return &struct{}{}, p.state.save()
}

// isGone reports an error of EndpointLeave that leaves nothing to do: the
// endpoint is gone, or in no sandbox.
func isGone(err error) bool {
	return errors.Is(err, service.ErrNotFound) || errors.Is(err, service.ErrConflict)
}

// dropEndpoint takes a meshnet endpoint out of its sandbox if it is in one
// and gives its leases back; one already gone is fine.
func (p *Plugin) dropEndpoint(ctx context.Context, id string) error {
	if err := p.svc.EndpointLeave(ctx, id); err != nil && !isGone(err) {
		return err
	}
	if err := p.svc.EndpointDelete(ctx, id); err != nil && !errors.Is(err, service.ErrNotFound) {
		return err
	}
	return nil
}
