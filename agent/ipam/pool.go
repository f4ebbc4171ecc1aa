package ipam

// Pools: a subnet and its address leases without a network record, for
// a Docker IPAM plugin (RequestPool, RequestAddress, ReleaseAddress,
// ReleasePool). A pool id is used like a network id: its subnet is leased
// as subnets/<cidr> = <pool-id> through the same guarded transaction as a
// network's, and its addresses as ips/<pool-id>/<ip>. So pools and
// networks are checked against each other and never overlap.

import (
	"context"
	"errors"
	"net/netip"
)

// Pools leases pools on the allocator's store.
type Pools struct{ a *Allocator }

// Pools returns the allocator's pools.
func (a *Allocator) Pools() *Pools { return &Pools{a} }

// PoolRequest asks for the subnet of a pool.
type PoolRequest struct {
	// ID names the pool and owns its leases, like a network id: it must
	// not contain "/" and must not be the id of a network.
	ID string
	// Subnet is the requested subnet (with gateway, IP range, auxiliary
	// addresses); the zero Subnet means an automatic one from the pools.
	Subnet SubnetConfig
	// IPv6, with a zero Subnet, takes the automatic subnet from the IPv6
	// pools instead of the IPv4 ones. It is ignored with a Subnet.
	IPv6 bool
}

// RequestPool leases the subnet of a pool and returns it normalized (the
// default gateway filled in). A requested subnet that overlaps a leased
// one, of a network or a pool, fails with ErrSubnetOverlap.
func (p *Pools) RequestPool(ctx context.Context, req PoolRequest) (SubnetConfig, error) {
	if err := checkID("pool", req.ID); err != nil {
		return SubnetConfig{}, err
	}
	sr := subnetRequest{what: "pool " + req.ID, id: req.ID}
	if c := req.Subnet; c.Subnet.IsValid() || c.Gateway.IsValid() || c.IPRange.IsValid() || len(c.AuxAddresses) > 0 {
		explicit, err := normalizeRequested([]SubnetConfig{c})
		if err != nil {
			return SubnetConfig{}, err
		}
		sr.explicit = explicit
	} else {
		sr.auto4, sr.auto6 = !req.IPv6, req.IPv6
	}
	lease, err := p.a.leaseSubnets(ctx, sr, nil)
	if err != nil {
		return SubnetConfig{}, err
	}
	return lease.Subnets[0], nil
}

// ReleasePool deletes the address leases of the pool and its subnet lease
// if id owns it. It is idempotent; it tries both and joins the errors.
func (p *Pools) ReleasePool(ctx context.Context, id string, subnet netip.Prefix) error {
	if err := checkID("pool", id); err != nil {
		return err
	}
	return errors.Join(p.a.ReleaseNetworkAddresses(ctx, id), p.a.ReleaseSubnet(ctx, id, subnet))
}

// RequestAddress leases an address of the pool leased by RequestPool as
// poolID, as LeaseAddress does for a network with the one subnet pool.
// With a zero req.Addr it takes an address of the pool's family. Release
// it with the allocator's ReleaseAddress(ctx, poolID, addr, endpointID).
func (p *Pools) RequestAddress(ctx context.Context, poolID string, pool SubnetConfig, req AddressRequest) (netip.Prefix, error) {
	if !req.Addr.IsValid() && pool.Subnet.IsValid() {
		req.IPv6 = pool.Subnet.Addr().Is6()
	}
	return p.a.LeaseAddress(ctx, poolID, []SubnetConfig{pool}, req)
}
