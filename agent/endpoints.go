package agent

// Endpoints: created (addresses leased, recorded), joined to a sandbox
// (plumbed into its namespace, announced to the cluster), left, deleted
// (leases given back). Each step adds what undoes it to a rollback, so a
// composed operation (sandbox create, network connect) completes or leaves
// nothing behind.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/agent/netstore"
	"github.com/meshnet/meshnet/gossip"
)

// undo collects the steps that take back a half-done operation.
type undo []func()

func (u *undo) add(f func()) { *u = append(*u, f) }

func (u undo) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// endpointSpec is what a new endpoint asks for, checked.
type endpointSpec struct {
	name    string
	ip, ip6 netip.Addr
	aliases []string
	links   []string
}

// checkEndpointSpec validates the addresses, aliases and links asked for
// an endpoint on n.
func checkEndpointSpec(n *driver.Network, name, ip, ip6 string, aliases, links []string) (endpointSpec, error) {
	spec := endpointSpec{name: name, aliases: aliases, links: links}
	var err error
	if ip != "" {
		if spec.ip, err = netip.ParseAddr(ip); err != nil || !spec.ip.Is4() {
			return spec, badRequest("invalid IPv4 address %q", ip)
		}
	}
	if ip6 != "" {
		if spec.ip6, err = netip.ParseAddr(ip6); err != nil || !spec.ip6.Is6() || spec.ip6.Is4In6() {
			return spec, badRequest("invalid IPv6 address %q", ip6)
		}
		if !n.IPv6 {
			return spec, badRequest("network %s has no IPv6: --ip6 needs a network created with --ipv6", n.Name)
		}
	}
	for _, al := range aliases {
		if al == "" || len(al) > 253 || strings.ContainsAny(al, " \t/") {
			return spec, badRequest("invalid alias %q", al)
		}
	}
	spec.links = nil
	for _, l := range links {
		name, alias, ok := strings.Cut(l, ":")
		if name == "" || (ok && alias == "") || strings.ContainsAny(l, " \t/") {
			return spec, badRequest("invalid link %q: use SANDBOX or SANDBOX:ALIAS", l)
		}
		if !ok {
			alias = name
		}
		spec.links = append(spec.links, name+":"+alias)
	}
	return spec, nil
}

// checkJoinable refuses networks a sandbox cannot have an endpoint on.
func (a *Agent) checkJoinable(n *driver.Network) (driver.Driver, error) {
	d, ok := a.driverOf(n)
	switch {
	case !ok:
		return nil, badRequest("network %s has driver %q, which this meshagent does not have", n.Name, n.Driver)
	case n.ConfigOnly:
		return nil, badRequest("network %s is a config-only network: sandboxes cannot join it", n.Name)
	case !d.Capabilities().Interfaces:
		return nil, badRequest("network %s gives a sandbox no interface, so it cannot be combined with other networks or get an endpoint", n.Name)
	}
	if err := d.CheckJoin(n); err != nil {
		return nil, err
	}
	return d, nil
}

// createEndpoint leases the endpoint's addresses and records it. The
// caller holds opMu.
func (a *Agent) createEndpoint(ctx context.Context, n *driver.Network, spec endpointSpec, rollback *undo) (*endpointRecord, error) {
	if _, err := a.checkJoinable(n); err != nil {
		return nil, err
	}
	e := &endpointRecord{ID: newID(), NetworkID: n.ID, Name: spec.name, Aliases: spec.aliases, Links: spec.links}
	if n.Global() {
		ns, err := a.netStore(ctx)
		if err != nil {
			return nil, err
		}
		// The record and its version as the mirror holds them now, read
		// together: the fence must be the version of this very record.
		a.mu.Lock()
		rec := netstore.Record{Network: n}
		if cur := a.networks[n.ID]; cur != nil {
			rec = netstore.Record{Network: cur, Version: a.versions[n.ID]}
		}
		a.mu.Unlock()
		owner := ipam.Owner{EndpointID: e.ID, Node: a.cfg.NodeName}
		if e.Addr, err = ns.LeaseAddress(ctx, rec, ipam.AddressRequest{Addr: spec.ip, Owner: owner}); err != nil {
			a.noteStoreErr(err)
			return nil, err
		}
		rollback.add(func() { a.releaseAddr(n.ID, e.Addr.Addr(), e.ID) })
		if n.IPv6 {
			if e.Addr6, err = ns.LeaseAddress(ctx, rec, ipam.AddressRequest{Addr: spec.ip6, IPv6: true, Owner: owner}); err != nil {
				a.noteStoreErr(err)
				return nil, err
			}
			rollback.add(func() { a.releaseAddr(n.ID, e.Addr6.Addr(), e.ID) })
		}
	} else {
		a.mu.Lock()
		taken := map[netip.Addr]bool{}
		for _, o := range a.endpoints {
			if o.NetworkID == n.ID {
				taken[o.Addr.Addr()] = true
				if o.Addr6.IsValid() {
					taken[o.Addr6.Addr()] = true
				}
			}
		}
		var err error
		e.Addr, err = ipam.PickAddress(n.Subnets, taken, spec.ip, true)
		if err == nil && n.IPv6 {
			e.Addr6, err = ipam.PickAddress(n.Subnets, taken, spec.ip6, false)
		}
		a.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	a.mu.Lock()
	a.putEndpointLocked(e)
	a.mu.Unlock()
	rollback.add(func() {
		a.mu.Lock()
		a.dropEndpointLocked(e)
		a.mu.Unlock()
	})
	return e, nil
}

// joinEndpoint plumbs the endpoint into the sandbox as ifname ("" for the
// first free ethN), announces it, and programs its network at once (the
// caller waits for the interface). The caller holds opMu.
func (a *Agent) joinEndpoint(s *sandboxRecord, e *endpointRecord, ifname string, rollback *undo) error {
	a.mu.Lock()
	n := a.networks[e.NetworkID]
	switch {
	case s.HostNet || s.SharedFrom != "":
		a.mu.Unlock()
		return badRequest("sandbox %s uses the namespace of %s: it takes no endpoints of its own", s.Name, a.namespaceOwnerName(s))
	case n == nil:
		a.mu.Unlock()
		return notFound("network %s of the endpoint is gone", e.NetworkID)
	case e.joined():
		a.mu.Unlock()
		return conflict("endpoint %s is already joined to a sandbox", e.ID[:12])
	case a.endpointIn(s, n.ID) != nil:
		a.mu.Unlock()
		return conflict("sandbox %s is already connected to network %s", s.Name, n.Name)
	}
	if ifname == "" {
		ifname = a.nextIfName(s)
	} else if slices.ContainsFunc(a.sandboxEndpoints(s), func(o *endpointRecord) bool { return o.IfName == ifname }) {
		a.mu.Unlock()
		return conflict("sandbox %s already has an interface %s", s.Name, ifname)
	}
	a.mu.Unlock()
	if _, err := a.checkJoinable(n); err != nil {
		return err
	}
	if err := a.checkLinks(n, e.Links); err != nil {
		return err
	}
	a.mu.Lock()
	e.SandboxID, e.IfName = s.ID, ifname
	s.Endpoints = append(s.Endpoints, e.ID)
	a.mu.Unlock()
	rollback.add(func() {
		a.mu.Lock()
		e.SandboxID, e.IfName = "", ""
		s.Endpoints = slices.DeleteFunc(s.Endpoints, func(id string) bool { return id == e.ID })
		a.mu.Unlock()
		a.recon.ApplyNow(n.ID)
	})
	if n.Global() {
		a.mu.Lock()
		gep := a.gossipEndpoint(s, e)
		a.mu.Unlock()
		if err := a.gossip.Put(gep); err != nil {
			return fmt.Errorf("announcing the endpoint: %w", err)
		}
		rollback.add(func() { a.gossip.Delete(n.ID, e.ID) })
	}
	if err := endpointError(a.recon.ApplyNow(n.ID), e.ID); err != nil {
		return fmt.Errorf("attaching %s to network %s: %w", s.Name, n.Name, err)
	}
	return nil
}

// checkLinks refuses a --link to a sandbox that is not on the network on
// this host (Docker's links are between containers of one host).
func (a *Agent) checkLinks(n *driver.Network, links []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range links {
		name, _, _ := strings.Cut(l, ":")
		if _, err := a.linkTarget(name, n.ID); err != nil {
			return err
		}
	}
	return nil
}

// linkTarget is the endpoint on a network of the sandbox a link names.
// The caller holds mu.
func (a *Agent) linkTarget(name, networkID string) (*endpointRecord, error) {
	for _, s := range a.sandboxes {
		if s.Name != name {
			continue
		}
		if e := a.endpointIn(s, networkID); e != nil {
			return e, nil
		}
		return nil, badRequest("cannot link to %s: it is not on the same network on this host", name)
	}
	return nil, notFound("cannot link to %s: no such sandbox on this host", name)
}

// leaveEndpoint takes a joined endpoint out of its sandbox: unannounced,
// unplumbed. The caller holds opMu.
func (a *Agent) leaveEndpoint(e *endpointRecord) {
	id := a.unjoin(e)
	if err := endpointError(a.recon.ApplyNow(id), e.ID); err != nil {
		a.log.Warn("removing an endpoint from the datapath", "endpoint", e.ID, "err", err)
	}
}

// unjoin takes an endpoint out of its sandbox's records and gossip, and
// returns the network to reprogram. The caller holds opMu.
func (a *Agent) unjoin(e *endpointRecord) (networkID string) {
	a.mu.Lock()
	s := a.sandboxes[e.SandboxID]
	if s != nil {
		s.Endpoints = slices.DeleteFunc(s.Endpoints, func(id string) bool { return id == e.ID })
	}
	e.SandboxID, e.IfName = "", ""
	n := a.networks[e.NetworkID]
	a.mu.Unlock()
	if n == nil || n.Global() {
		a.gossip.Delete(e.NetworkID, e.ID)
	}
	return e.NetworkID
}

// deleteEndpoint forgets an endpoint that is not joined and gives its
// leases back. The caller holds opMu.
func (a *Agent) deleteEndpoint(e *endpointRecord) {
	a.mu.Lock()
	a.dropEndpointLocked(e)
	n := a.networks[e.NetworkID]
	a.mu.Unlock()
	if n == nil || n.Global() {
		a.releaseAddr(e.NetworkID, e.Addr.Addr(), e.ID)
		if e.Addr6.IsValid() {
			a.releaseAddr(e.NetworkID, e.Addr6.Addr(), e.ID)
		}
	}
}

// releaseAddr gives an address lease back, best effort (a lease left
// behind by a failure here is found by the orphan sweep).
func (a *Agent) releaseAddr(networkID string, addr netip.Addr, endpointID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns, err := a.netStoreNow()
	if err == nil {
		err = ns.Alloc().ReleaseAddress(ctx, networkID, addr, endpointID)
	}
	if err != nil {
		a.log.Warn("releasing address lease; the orphan sweep will retry", "network", networkID, "addr", addr, "err", err)
	}
}

// gossipEndpoint is what peers learn about a local endpoint. The caller
// holds mu.
func (a *Agent) gossipEndpoint(s *sandboxRecord, e *endpointRecord) gossip.Endpoint {
	name := e.Name
	if name == "" {
		name = s.Name
	}
	// The hostname goes with the aliases: every host answers for it.
	aliases := slices.Clone(e.Aliases)
	if s.Hostname != "" && s.Hostname != name && !slices.Contains(aliases, s.Hostname) {
		aliases = append(aliases, s.Hostname)
	}
	ep := gossip.Endpoint{Network: e.NetworkID, ID: e.ID, Name: name,
		IP: e.Addr.Addr(), IPv6: e.Addr6.Addr(), VTEP: a.vtep, Node: a.cfg.NodeName,
		Sandbox: s.Name, Aliases: aliases}
	if e.MAC != "" { // else peers derive it from the address
		ep.MAC = e.mac()
	}
	return ep
}

// findEndpoint looks an endpoint of this host up by id or unique prefix.
// The caller holds mu.
func (a *Agent) findEndpoint(ref string) (*endpointRecord, error) {
	if ref == "" {
		return nil, badRequest("no endpoint given")
	}
	if e, ok := a.endpoints[ref]; ok {
		return e, nil
	}
	var match []*endpointRecord
	for id, e := range a.endpoints {
		if strings.HasPrefix(id, ref) {
			match = append(match, e)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return nil, notFound("endpoint %s not found", ref)
	}
	return nil, badRequest("endpoint id prefix %s is ambiguous", ref)
}

// EndpointCreate leases an endpoint's addresses on a network and records
// it, joined to no sandbox yet.
func (a *Agent) EndpointCreate(ctx context.Context, req api.EndpointCreate) (_ api.Endpoint, err error) {
	defer func() { err = a.serviceError(err) }()
	a.opMu.Lock()
	defer a.opMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	a.knowNetworks(ctx, req.Network)
	n, err := a.lookupNetwork(req.Network)
	if err != nil {
		return api.Endpoint{}, err
	}
	if req.Name != "" && (len(req.Name) > 253 || strings.ContainsAny(req.Name, " \t/")) {
		return api.Endpoint{}, badRequest("invalid endpoint name %q", req.Name)
	}
	spec, err := checkEndpointSpec(n, req.Name, req.IP, req.IP6, req.Aliases, nil)
	if err != nil {
		return api.Endpoint{}, err
	}
	var rollback undo
	defer func() { rollback.run() }()
	e, err := a.createEndpoint(ctx, n, spec, &rollback)
	if err != nil {
		return api.Endpoint{}, err
	}
	if err := a.saveRecords(nil, []*endpointRecord{e}); err != nil {
		return api.Endpoint{}, err
	}
	rollback = nil
	a.log.Info("endpoint created", "network", n.Name, "id", e.ID, "addr", e.Addr)
	return a.endpointView(e), nil
}

// EndpointInspect describes an endpoint of this host.
func (a *Agent) EndpointInspect(_ context.Context, ref string) (_ api.Endpoint, err error) {
	defer func() { err = a.serviceError(err) }()
	a.mu.Lock()
	e, err := a.findEndpoint(ref)
	a.mu.Unlock()
	if err != nil {
		return api.Endpoint{}, err
	}
	return a.endpointView(e), nil
}

// EndpointJoin plumbs an endpoint into a sandbox of this host.
func (a *Agent) EndpointJoin(ctx context.Context, ref string, req api.EndpointJoin) (_ api.Endpoint, err error) {
	defer func() { err = a.serviceError(err) }()
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if req.Interface != "" && (len(req.Interface) > 15 || strings.ContainsAny(req.Interface, "/: \t%")) {
		return api.Endpoint{}, badRequest("invalid interface name %q: at most 15 characters, no '/', ':', '%%' or spaces", req.Interface)
	}
	a.mu.Lock()
	e, err := a.findEndpoint(ref)
	var s *sandboxRecord
	if err == nil {
		s, err = a.findSandbox(req.Sandbox)
	}
	a.mu.Unlock()
	if err != nil {
		return api.Endpoint{}, err
	}
	var rollback undo
	defer func() { rollback.run() }()
	if err := a.joinEndpoint(s, e, req.Interface, &rollback); err != nil {
		return api.Endpoint{}, err
	}
	if err := errors.Join(a.writeSandboxFiles(s), a.saveRecords([]*sandboxRecord{s}, []*endpointRecord{e})); err != nil {
		return api.Endpoint{}, err
	}
	rollback = nil
	a.syncDNS(s)
	return a.endpointView(e), nil
}

// EndpointLeave takes an endpoint out of its sandbox; it keeps its
// addresses.
func (a *Agent) EndpointLeave(_ context.Context, ref string) (err error) {
	defer func() { err = a.serviceError(err) }()
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	e, err := a.findEndpoint(ref)
	var s *sandboxRecord
	if err == nil {
		s = a.sandboxes[e.SandboxID]
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	if !e.joined() {
		return conflict("endpoint %s is not joined to a sandbox", e.ID[:12])
	}
	a.leaveEndpoint(e)
	var errs []error
	var touched []*sandboxRecord
	if s != nil {
		a.syncDNS(s)
		errs = append(errs, a.writeSandboxFiles(s))
		touched = append(touched, s)
	}
	return errors.Join(append(errs, a.saveRecords(touched, []*endpointRecord{e}))...)
}

// EndpointDelete gives a left endpoint's addresses back and forgets it.
func (a *Agent) EndpointDelete(ctx context.Context, ref string) (err error) {
	defer func() { err = a.serviceError(err) }()
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	e, err := a.findEndpoint(ref)
	a.mu.Unlock()
	if err != nil {
		return err
	}
	if e.joined() {
		return conflict("endpoint %s is joined to a sandbox: leave it first", e.ID[:12])
	}
	if n, _ := a.lookupNetwork(e.NetworkID); n == nil || n.Global() {
		if _, err := a.netStore(ctx); err != nil {
			return err // its leases could not be given back
		}
	}
	a.deleteEndpoint(e)
	return a.saveRecords(nil, []*endpointRecord{e})
}

// endpointView renders an endpoint of this host.
func (a *Agent) endpointView(e *endpointRecord) api.Endpoint {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := api.Endpoint{ID: e.ID, Name: e.Name, NetworkID: e.NetworkID, Network: e.NetworkID, Interface: e.IfName,
		MacAddress: e.mac().String(), IPv4Address: e.Addr.String(),
		IPv6Address: prefixString(e.Addr6), Aliases: orNone(e.Aliases), Node: a.cfg.NodeName}
	if s := a.sandboxes[e.SandboxID]; s != nil {
		v.Sandbox = s.Name
	}
	if n := a.networks[e.NetworkID]; n != nil {
		v.Network = n.Name
		if g := n.Gateway(true); g.IsValid() {
			v.Gateway = g.Addr().String()
		}
		if g := n.Gateway(false); g.IsValid() {
			v.IPv6Gateway = g.Addr().String()
		}
		v.MTU = a.networkMTU(n)
	}
	return v
}
