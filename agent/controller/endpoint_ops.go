package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/sandboxes"
	"github.com/meshnet/meshnet/agent/service"
	"github.com/meshnet/meshnet/sandbox"
)

// EndpointCreate leases an endpoint's addresses on a network and records
// it, joined to no sandbox yet.
func (c *Controller) EndpointCreate(ctx context.Context, req api.EndpointCreate) (_ api.Endpoint, err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	ctx, done := c.operation(ctx)
	defer done()
	c.Networks.Know(ctx, req.Network)
	n, err := c.Networks.Table.Find(req.Network)
	if err != nil {
		return api.Endpoint{}, err
	}
	spec, err := checkEndpoint(n, endpointRequest{name: req.Name, ip: req.IP, ip6: req.IP6, mac: req.MacAddress, aliases: req.Aliases})
	if err != nil {
		return api.Endpoint{}, err
	}
	var rollback undo
	defer func() { rollback.run() }()
	e, err := c.eps.create(ctx, n, spec, &rollback)
	if err != nil {
		return api.Endpoint{}, err
	}
	if err := c.State.SaveRecords(nil, []string{e.ID}); err != nil {
		return api.Endpoint{}, err
	}
	rollback = nil
	c.log.Info("endpoint created", "network", n.Name, "id", e.ID, "addr", e.Addr)
	return c.views.endpoint(e), nil
}

// EndpointInspect describes an endpoint of this host.
func (c *Controller) EndpointInspect(_ context.Context, ref string) (_ api.Endpoint, err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	e, err := c.Records.FindEndpoint(ref)
	if err != nil {
		return api.Endpoint{}, err
	}
	return c.views.endpoint(e), nil
}

// EndpointJoin plumbs an endpoint into a sandbox of this host.
func (c *Controller) EndpointJoin(ctx context.Context, ref string, req api.EndpointJoin) (_ api.Endpoint, err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	_, done := c.operation(ctx)
	defer done()
	if req.Interface != "" {
		if err := checkIfName(req.Interface); err != nil {
			return api.Endpoint{}, err
		}
	}
	e, err := c.Records.FindEndpoint(ref)
	if err != nil {
		return api.Endpoint{}, err
	}
	s, err := c.Records.FindSandbox(req.Sandbox)
	if err != nil {
		return api.Endpoint{}, err
	}
	var rollback undo
	defer func() { rollback.run() }()
	if err := c.eps.join(s, e, req.Interface, req.Handoff, &rollback); err != nil {
		return api.Endpoint{}, err
	}
	if err := errors.Join(c.sbs.writeFiles(s.ID), c.State.SaveRecords([]string{s.ID}, []string{e.ID})); err != nil {
		return api.Endpoint{}, err
	}
	rollback = nil
	c.Dataplane.SyncDNS(s.ID)
	return c.views.endpoint(c.Records.Endpoint(e.ID)), nil
}

// EndpointLeave takes an endpoint out of its sandbox; it keeps its
// addresses.
func (c *Controller) EndpointLeave(ctx context.Context, ref string) (err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	_, done := c.operation(ctx)
	defer done()
	e, err := c.Records.FindEndpoint(ref)
	if err != nil {
		return err
	}
	if !e.Joined() {
		return service.Conflictf("endpoint %s is not joined to a sandbox", e.ID[:12])
	}
	c.eps.leave(e)
	var errs []error
	var touched []string
	if s := c.Records.Sandbox(e.SandboxID); s != nil {
		c.Dataplane.SyncDNS(s.ID)
		errs = append(errs, c.sbs.writeFiles(s.ID))
		touched = append(touched, s.ID)
	}
	return errors.Join(append(errs, c.State.SaveRecords(touched, []string{e.ID}))...)
}

// EndpointDelete gives a left endpoint's addresses back and forgets it.
func (c *Controller) EndpointDelete(ctx context.Context, ref string) (err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	ctx, done := c.operation(ctx)
	defer done()
	e, err := c.Records.FindEndpoint(ref)
	if err != nil {
		return err
	}
	if e.Joined() {
		return service.Conflictf("endpoint %s is joined to a sandbox: leave it first", e.ID[:12])
	}
	if n := c.Networks.Table.Get(e.NetworkID); n == nil || n.Global() {
		if _, err := c.Store.NetStore(ctx); err != nil {
			return err // its leases could not be given back
		}
	}
	c.eps.remove(e)
	return c.State.SaveRecords(nil, []string{e.ID})
}

// EndpointUpdate renames an endpoint and replaces its aliases; a joined
// endpoint of a global network is announced again, so that every host
// answers for its new names.
func (c *Controller) EndpointUpdate(ctx context.Context, ref string, req api.EndpointUpdate) (_ api.Endpoint, err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	_, done := c.operation(ctx)
	defer done()
	e, err := c.Records.FindEndpoint(ref)
	if err != nil {
		return api.Endpoint{}, err
	}
	n := c.Networks.Table.Get(e.NetworkID)
	if n == nil {
		return api.Endpoint{}, service.NotFoundf("network %s of the endpoint is gone", e.NetworkID)
	}
	spec, err := checkEndpoint(n, endpointRequest{name: req.Name, aliases: req.Aliases})
	if err != nil {
		return api.Endpoint{}, err
	}
	old := *e
	e = c.Records.UpdateEndpoint(e.ID, func(e *sandboxes.Endpoint) { e.Name, e.Aliases = spec.name, spec.aliases })
	if err := c.State.SaveRecords(nil, []string{e.ID}); err != nil {
		c.Records.UpdateEndpoint(e.ID, func(e *sandboxes.Endpoint) { e.Name, e.Aliases = old.Name, old.Aliases })
		return api.Endpoint{}, err
	}
	if sb := c.Records.Sandbox(e.SandboxID); sb != nil && n.Global() {
		if err := c.Members.Announce(c.eps.announcement(sb, e)); err != nil {
			return api.Endpoint{}, fmt.Errorf("announcing the endpoint's names: %w", err)
		}
	}
	return c.views.endpoint(e), nil
}

// EndpointCheck verifies a joined endpoint in the kernel: its sandbox's
// namespace (the one at req.NetNS, if given) holds its interface, up,
// with its MAC and addresses.
func (c *Controller) EndpointCheck(_ context.Context, ref string, req api.EndpointCheck) (err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	e, err := c.Records.FindEndpoint(ref)
	if err != nil {
		return err
	}
	s := c.Records.Sandbox(e.SandboxID)
	if s == nil {
		return service.Conflictf("endpoint %s is not joined to a sandbox", e.ID[:12])
	}
	if req.NetNS != "" {
		if id, err := c.Namespaces.Identify(req.NetNS); err != nil || id != s.NSID {
			return service.Conflictf("the interface %s of sandbox %s is in another network namespace than %s", e.IfName, s.Name, req.NetNS)
		}
	}
	return c.sbs.checkInterface(s, e)
}

// checkInterface compares an endpoint with its interface in the kernel.
func (t *sandboxSteps) checkInterface(s *sandboxes.Sandbox, e *sandboxes.Endpoint) error {
	ifaces, err := t.ns.Interfaces(s.NetNS)
	if err != nil {
		return fmt.Errorf("reading the interfaces of %s: %w", s.NetNS, err)
	}
	i := slices.IndexFunc(ifaces, func(i sandbox.Interface) bool { return i.Name == e.IfName })
	switch {
	case i < 0:
		return service.Conflictf("the namespace of sandbox %s has no interface %s", s.Name, e.IfName)
	case !slices.Equal(ifaces[i].MAC, e.HardwareAddr()):
		return service.Conflictf("interface %s of sandbox %s has MAC %s, want %s", e.IfName, s.Name, ifaces[i].MAC, e.HardwareAddr())
	case !ifaces[i].Up:
		return service.Conflictf("interface %s of sandbox %s is down", e.IfName, s.Name)
	}
	for _, p := range []netip.Prefix{e.Addr, e.Addr6} {
		if p.IsValid() && !slices.Contains(ifaces[i].Addrs, p) {
			return service.Conflictf("interface %s of sandbox %s lacks its address %s", e.IfName, s.Name, p)
		}
	}
	return nil
}
