package controller

// Removing sandboxes (leave and delete of each endpoint), and connecting
// and disconnecting them to and from networks.

import (
	"context"
	"errors"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/sandboxes"
	"github.com/meshnet/meshnet/agent/service"
)

// SandboxRemove takes a sandbox off every network and deletes it.
// Without force it refuses while the store is down and the sandbox has
// leases there (they could not be given back); with force it goes on and
// leaves the leases to the orphan sweep.
func (c *Controller) SandboxRemove(ctx context.Context, ref string, force bool) (err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	ctx, done := c.operation(ctx)
	defer done()
	s, err := c.Records.FindSandbox(ref)
	if err != nil {
		return err
	}
	if sharers := c.Records.Sharers(s.ID); len(sharers) > 0 {
		o := sharers[0]
		return service.Conflictf("sandbox %s shares the network namespace of %s: remove %s first", o.Name, s.Name, o.Name)
	}
	if !force && c.eps.holdsGlobalLeases(s) {
		if _, err := c.Store.NetStore(ctx); err != nil {
			return err
		}
	}
	if err := c.dropSandbox(s, !s.External); err != nil {
		return err
	}
	c.log.Info("sandbox removed", "name", s.Name, "id", s.ID)
	return nil
}

// holdsGlobalLeases reports whether a sandbox has an endpoint whose
// leases are in the store.
func (t *endpoints) holdsGlobalLeases(s *sandboxes.Sandbox) bool {
	for _, e := range t.recs.Joined(s.ID) {
		if n := t.nets.Table.Get(e.NetworkID); n == nil || n.Global() {
			return true
		}
	}
	return false
}

// dropSandbox leaves and deletes every endpoint of the sandbox and
// forgets it; with removeNS it also deletes the named namespace and its
// /etc files. The caller holds opMu.
func (c *Controller) dropSandbox(s *sandboxes.Sandbox, removeNS bool) error {
	// A CNI runtime deletes the namespace after DEL: the redirect to the
	// resolver (an nftables commit, ~10 ms) is left to go with it. In a
	// namespace kept, it leads nowhere; an ADD writes it anew.
	path := s.NetNS
	if s.ContainerID != "" {
		path = ""
	}
	c.Dataplane.DetachDNS(s.ID, path)
	eps := c.Records.Joined(s.ID)
	var epIDs []string
	for _, e := range eps {
		c.eps.leave(e)
		c.eps.remove(e)
		epIDs = append(epIDs, e.ID)
	}
	c.Records.DeleteSandbox(s.ID)
	var errs []error
	if removeNS {
		errs = append(errs, c.Namespaces.Remove(s.Name))
	}
	return errors.Join(append(errs, c.State.SaveRecords([]string{s.ID}, epIDs))...)
}

// NetworkConnect joins an existing sandbox to one more network.
func (c *Controller) NetworkConnect(ctx context.Context, netRef string, req api.NetworkConnect) (err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	ctx, done := c.operation(ctx)
	defer done()
	c.Networks.Know(ctx, netRef)
	n, err := c.Networks.Table.Find(netRef)
	if err != nil {
		return err
	}
	s, err := c.Records.FindSandbox(req.Container)
	if err != nil {
		return err
	}
	switch {
	case c.Records.EndpointIn(s.ID, n.ID) != nil:
		return service.Conflictf("sandbox %s is already connected to network %s", s.Name, n.Name)
	case s.SharesNamespace():
		return service.Invalidf("sandbox %s uses the namespace of %s: connect that one instead", s.Name, c.eps.namespaceOwner(s))
	}
	var r endpointRequest
	if ec := req.EndpointConfig; ec != nil {
		r = endpointRequest{aliases: ec.Aliases, links: ec.Links, mac: ec.MacAddress, ifname: ec.Interface}
		if ec.IPAMConfig != nil {
			r.ip, r.ip6 = ec.IPAMConfig.IPv4Address, ec.IPAMConfig.IPv6Address
		}
	}
	if d, ok := c.Networks.Driver(n); ok && d.Capabilities().Exclusive {
		return service.Invalidf("a sandbox cannot be connected to the %s network after it is created", n.Name)
	}
	spec, err := checkEndpoint(n, r)
	if err != nil {
		return err
	}
	var rollback undo
	defer func() { rollback.run() }()
	e, err := c.eps.create(ctx, n, spec, &rollback)
	if err != nil {
		return err
	}
	if err := c.eps.join(s, e, spec.ifname, false, &rollback); err != nil {
		return err
	}
	if err := errors.Join(c.sbs.writeFiles(s.ID), c.State.SaveRecords([]string{s.ID}, []string{e.ID})); err != nil {
		return err
	}
	rollback = nil
	c.Dataplane.SyncDNS(s.ID)
	return nil
}

// NetworkDisconnect takes a sandbox off a network.
func (c *Controller) NetworkDisconnect(ctx context.Context, netRef string, req api.NetworkDisconnect) (err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	ctx, done := c.operation(ctx)
	defer done()
	n, err := c.Networks.Table.Find(netRef)
	if err != nil {
		return err
	}
	s, err := c.Records.FindSandbox(req.Container)
	if err != nil {
		return err
	}
	e := c.Records.EndpointIn(s.ID, n.ID)
	if e == nil {
		if req.Force {
			return nil
		}
		return service.NotFoundf("sandbox %s is not connected to network %s", s.Name, n.Name)
	}
	if n.Global() && !req.Force {
		if _, err := c.Store.NetStore(ctx); err != nil {
			return err
		}
	}
	c.eps.leave(e)
	c.eps.remove(e)
	c.Dataplane.SyncDNS(s.ID)
	return errors.Join(c.sbs.writeFiles(s.ID), c.State.SaveRecords([]string{s.ID}, []string{e.ID}))
}
