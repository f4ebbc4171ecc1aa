package storeconn

// Lease checks: an endpoint another host announces through gossip is
// programmed (FDB and neighbour entries) and answered by DNS only if the
// store's lease of its address names it and its node. A member that
// announces someone else's address as an endpoint of its own — to draw
// its traffic — is then believed by no one, since it cannot hold the
// lease too. The leases of a network are listed into a cache when an
// announced endpoint is not in it (one listing in flight per network, one
// more queued), and LeasesChanged says when a listing may have changed
// an answer.

import (
	"context"
	"net/netip"

	"github.com/meshnet/meshnet/agent/ipam"
)

// netLeases is one network's address leases as last listed.
type netLeases struct {
	owners  map[netip.Addr]ipam.Owner
	loaded  bool // listed at least once
	running bool // a listing is in flight
	again   bool // list once more when it ends
}

// Holds reports whether the store's lease of ip on the network names the
// endpoint and node. Before the network's leases have ever been listed it
// answers true while the store is down (the datapath keeps working during
// an outage, from gossip's word) and false otherwise, until the listing
// it starts has come in.
func (c *Conn) Holds(networkID string, ip netip.Addr, endpointID, node string) bool {
	_, up := c.Ready() // mu before leaseMu, never inside it: both are leaves
	c.leaseMu.Lock()
	defer c.leaseMu.Unlock()
	if c.leases == nil {
		c.leases = map[string]*netLeases{}
	}
	nl := c.leases[networkID]
	if nl == nil {
		nl = &netLeases{}
		c.leases[networkID] = nl
	}
	if o, ok := nl.owners[ip]; ok && o.EndpointID == endpointID && o.Node == node {
		return true
	}
	if up {
		c.listLeasesLocked(networkID, nl)
	}
	return !nl.loaded && !up
}

// LeaseGeneration changes whenever a listing of leases came in.
func (c *Conn) LeaseGeneration() uint64 { return c.leaseGen.Load() }

// listLeasesLocked lists the network's leases in the background (or
// queues one more listing). The caller holds leaseMu.
func (c *Conn) listLeasesLocked(networkID string, nl *netLeases) {
	if nl.running {
		nl.again = true
		return
	}
	nl.running = true
	c.leaseWG.Add(1)
	go func() {
		defer c.leaseWG.Done()
		for {
			owners, ok := c.listLeases(networkID)
			c.leaseMu.Lock()
			if ok {
				nl.owners, nl.loaded = owners, true
				c.leaseGen.Add(1)
			}
			again := nl.again && ok
			nl.again, nl.running = false, again
			c.leaseMu.Unlock()
			if ok && c.cfg.LeasesChanged != nil {
				c.cfg.LeasesChanged(networkID)
			}
			if !again {
				return
			}
		}
	}()
}

// listLeases reads a network's leases from the store.
func (c *Conn) listLeases(networkID string) (map[netip.Addr]ipam.Owner, bool) {
	ns, err := c.NetStoreNow()
	if err != nil {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Store.Timeout)
	defer cancel()
	leases, err := ns.Alloc().Addresses(ctx, networkID)
	if err != nil {
		c.log.Debug("listing address leases", "network", networkID, "err", err)
		return nil, false
	}
	owners := make(map[netip.Addr]ipam.Owner, len(leases))
	for _, l := range leases {
		owners[l.Addr] = l.Owner
	}
	return owners, true
}
