package controller

// The endpoint life cycle: created (addresses leased, recorded), joined to
// a sandbox (recorded, announced to the cluster, plumbed by the
// dataplane), left, deleted (leases given back). Each step adds what
// undoes it to a rollback, so a composed operation (sandbox create,
// network connect) completes or leaves nothing behind. The steps run
// under the operation lock.

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/meshnet/meshnet/agent/dataplane"
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/internal/ids"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/agent/membership"
	"github.com/meshnet/meshnet/agent/networks"
	"github.com/meshnet/meshnet/agent/sandboxes"
	"github.com/meshnet/meshnet/agent/service"
	"github.com/meshnet/meshnet/agent/storeconn"
	"github.com/meshnet/meshnet/gossip"
)

// endpoints are the steps of the endpoint life cycle.
type endpoints struct {
	node    string
	vtep    netip.Addr
	nets    *networks.Manager
	recs    *sandboxes.Table
	store   *storeconn.Conn
	members *membership.Membership
	dp      *dataplane.Dataplane
	log     *slog.Logger
}

// checkJoinable refuses networks a sandbox cannot have an endpoint on.
func (s *endpoints) checkJoinable(n *driver.Network) error {
	d, ok := s.nets.Driver(n)
	switch {
	case !ok:
		return service.Invalidf("network %s has driver %q, which this meshagent does not have", n.Name, n.Driver)
	case n.ConfigOnly:
		return service.Invalidf("network %s is a config-only network: sandboxes cannot join it", n.Name)
	case !d.Capabilities().Interfaces:
		return service.Invalidf("network %s gives a sandbox no interface, so it cannot be combined with other networks or get an endpoint", n.Name)
	}
	return d.CheckJoin(n)
}

// create leases the endpoint's addresses and records it.
func (s *endpoints) create(ctx context.Context, n *driver.Network, spec endpointSpec, rollback *undo) (*sandboxes.Endpoint, error) {
	if err := s.checkJoinable(n); err != nil {
		return nil, err
	}
	e := &sandboxes.Endpoint{ID: ids.New(), NetworkID: n.ID, Name: spec.name, Aliases: spec.aliases, Links: spec.links}
	if spec.mac != nil {
		e.MAC = spec.mac.String()
	}
	if n.Global() {
		ns, err := s.store.NetStore(ctx)
		if err != nil {
			return nil, err
		}
		// The record and its version as the mirror holds them now, read
		// together: the fence must be the version of this very record.
		rec, ok := s.nets.Table.Record(n.ID)
		if !ok {
			rec.Network = n
		}
		owner := ipam.Owner{EndpointID: e.ID, Node: s.node}
		if e.Addr, err = ns.LeaseAddress(ctx, rec, ipam.AddressRequest{Addr: spec.ip, Owner: owner}); err != nil {
			s.store.NoteErr(err)
			return nil, err
		}
		rollback.add(func() { s.release(n.ID, e.Addr.Addr(), e.ID) })
		if n.IPv6 {
			if e.Addr6, err = ns.LeaseAddress(ctx, rec, ipam.AddressRequest{Addr: spec.ip6, IPv6: true, Owner: owner}); err != nil {
				s.store.NoteErr(err)
				return nil, err
			}
			rollback.add(func() { s.release(n.ID, e.Addr6.Addr(), e.ID) })
		}
	} else {
		taken := map[netip.Addr]bool{}
		for _, o := range s.recs.OnNetwork(n.ID, -1) {
			taken[o.Addr.Addr()] = true
			if o.Addr6.IsValid() {
				taken[o.Addr6.Addr()] = true
			}
		}
		var err error
		e.Addr, err = ipam.PickAddress(n.Subnets, taken, spec.ip, true)
		if err == nil && n.IPv6 {
			e.Addr6, err = ipam.PickAddress(n.Subnets, taken, spec.ip6, false)
		}
		if err != nil {
			return nil, err
		}
	}
	s.recs.AddEndpoint(e)
	rollback.add(func() { s.recs.DeleteEndpoint(e.ID) })
	return e, nil
}

// join plumbs the endpoint into the sandbox as ifname ("" for the first
// free ethN; with handoff, the name in the host namespace of an interface
// the runtime moves), announces it, and programs its network at once (the
// caller waits for the interface).
func (s *endpoints) join(sb *sandboxes.Sandbox, e *sandboxes.Endpoint, ifname string, handoff bool, rollback *undo) error {
	n := s.nets.Table.Get(e.NetworkID)
	switch {
	case sb.SharesNamespace():
		return service.Invalidf("sandbox %s uses the namespace of %s: it takes no endpoints of its own", sb.Name, s.namespaceOwner(sb))
	case n == nil:
		return service.NotFoundf("network %s of the endpoint is gone", e.NetworkID)
	case e.Joined():
		return service.Conflictf("endpoint %s is already joined to a sandbox", e.ID[:12])
	case s.recs.EndpointIn(sb.ID, n.ID) != nil:
		return service.Conflictf("sandbox %s is already connected to network %s", sb.Name, n.Name)
	case sb.Handoff != handoff:
		return service.Invalidf("sandbox %s: an interface is handed off to the runtime exactly when the runtime moves its sandbox's interfaces itself", sb.Name)
	case handoff && ifname == "":
		return service.Invalidf("an interface handed off to the runtime needs its name in the host namespace")
	}
	if err := s.checkJoinable(n); err != nil {
		return err
	}
	if err := s.checkLinks(n, e.Links); err != nil {
		return err
	}
	e, err := s.recs.Join(e.ID, sb.ID, ifname, handoff)
	if err != nil {
		return err
	}
	rollback.add(func() {
		s.recs.Leave(e.ID)
		s.dp.ApplyNow(n.ID)
	})
	if n.Global() {
		if err := s.members.Announce(s.announcement(s.recs.Sandbox(sb.ID), e)); err != nil {
			return fmt.Errorf("announcing the endpoint: %w", err)
		}
		rollback.add(func() { s.members.Withdraw(n.ID, e.ID) })
	}
	if err := dataplane.EndpointError(s.dp.ApplyNow(n.ID), e.ID); err != nil {
		return fmt.Errorf("attaching %s to network %s: %w", sb.Name, n.Name, err)
	}
	return nil
}

// namespaceOwner names whose namespace a sandbox that shares one uses.
func (s *endpoints) namespaceOwner(sb *sandboxes.Sandbox) string {
	if sb.HostNet {
		return "the host"
	}
	return s.recs.Owner(sb).Name.String()
}

// checkLinks refuses a --link to a sandbox that is not on the network on
// this host (Docker's links are between containers of one host).
func (s *endpoints) checkLinks(n *driver.Network, links []string) error {
	for _, l := range links {
		name, _, _ := strings.Cut(l, ":")
		if _, err := s.recs.LinkTarget(name, n.ID); err != nil {
			return err
		}
	}
	return nil
}

// leave takes a joined endpoint out of its sandbox: unannounced,
// unplumbed.
func (s *endpoints) leave(e *sandboxes.Endpoint) {
	s.unjoin(e)
	if err := dataplane.EndpointError(s.dp.ApplyNow(e.NetworkID), e.ID); err != nil {
		s.log.Warn("removing an endpoint from the datapath", "endpoint", e.ID, "err", err)
	}
}

// unjoin takes an endpoint out of its sandbox's records and gossip; its
// network is to be reprogrammed.
func (s *endpoints) unjoin(e *sandboxes.Endpoint) {
	s.recs.Leave(e.ID)
	if n := s.nets.Table.Get(e.NetworkID); n == nil || n.Global() {
		s.members.Withdraw(e.NetworkID, e.ID)
	}
}

// remove forgets an endpoint that is not joined and gives its leases
// back.
func (s *endpoints) remove(e *sandboxes.Endpoint) {
	s.recs.DeleteEndpoint(e.ID)
	if n := s.nets.Table.Get(e.NetworkID); n == nil || n.Global() {
		s.release(e.NetworkID, e.Addr.Addr(), e.ID)
		if e.Addr6.IsValid() {
			s.release(e.NetworkID, e.Addr6.Addr(), e.ID)
		}
	}
}

// release gives an address lease back, best effort (a lease left behind
// by a failure here is found by the orphan sweep).
func (s *endpoints) release(networkID string, addr netip.Addr, endpointID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns, err := s.store.NetStoreNow()
	if err == nil {
		err = ns.Alloc().ReleaseAddress(ctx, networkID, addr, endpointID)
	}
	if err != nil {
		s.log.Warn("releasing address lease; the orphan sweep will retry", "network", networkID, "addr", addr, "err", err)
	}
}

// announcement is what peers learn about a local endpoint.
func (s *endpoints) announcement(sb *sandboxes.Sandbox, e *sandboxes.Endpoint) gossip.Endpoint {
	name := e.Name
	if name == "" && !sb.Handoff { // a runtime's sandbox name is no name of its containers
		name = sb.Name.String()
	}
	// The hostname goes with the aliases: every host answers for it.
	aliases := slices.Clone(e.Aliases)
	if !sb.Handoff && sb.Hostname != "" && sb.Hostname != name && !slices.Contains(aliases, sb.Hostname) {
		aliases = append(aliases, sb.Hostname)
	}
	ep := gossip.Endpoint{Network: e.NetworkID, ID: e.ID, Name: name,
		IP: e.Addr.Addr(), IPv6: e.Addr6.Addr(), VTEP: s.vtep, Node: s.node,
		Sandbox: sb.Name.String(), Aliases: aliases}
	if e.MAC != "" { // else peers derive it from the address
		ep.MAC = e.HardwareAddr()
	}
	return ep
}

// announceAll publishes every joined local endpoint of a global network
// (after a restart: the peers may have aged our records out).
func (s *endpoints) announceAll() {
	for _, e := range s.recs.Endpoints() {
		sb := s.recs.Sandbox(e.SandboxID)
		if n := s.nets.Table.Get(e.NetworkID); sb != nil && n != nil && n.Global() {
			if err := s.members.Announce(s.announcement(sb, e)); err != nil {
				s.log.Warn("announcing endpoint", "endpoint", e.ID, "err", err)
			}
		}
	}
}
