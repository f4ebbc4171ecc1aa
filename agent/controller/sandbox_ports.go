package controller

import (
	"context"
	"fmt"
	"slices"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/ports"
	"github.com/meshnet/meshnet/agent/sandboxes"
	"github.com/meshnet/meshnet/agent/service"
)

// SandboxPublish replaces the ports a sandbox publishes with publish (-p
// values); none unpublishes them all. Host ports asked for are checked,
// the others picked; the sandbox is returned as it is then. A runtime
// that publishes once the sandbox exists (Docker's
// ProgramExternalConnectivity) uses it.
func (c *Controller) SandboxPublish(ctx context.Context, ref string, publish []string) (_ api.Sandbox, err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	_, done := c.operation(ctx)
	defer done()
	s, err := c.Records.FindSandbox(ref)
	if err != nil {
		return api.Sandbox{}, err
	}
	if s.SharesNamespace() {
		return api.Sandbox{}, service.Invalidf("sandbox %s uses the namespace of %s: publish the ports there", s.Name, c.eps.namespaceOwner(s))
	}
	mappings, err := ports.Parse(publish, nil, false)
	if err != nil {
		return api.Sandbox{}, err
	}
	for _, m := range mappings {
		if m.HostIP.Is6() {
			return api.Sandbox{}, service.Invalidf("publishing on the IPv6 host address %s is not supported yet: publish on an IPv4 one or on all", m.HostIP)
		}
	}
	if len(mappings) > 0 {
		var joined []attachment
		for _, e := range c.Records.Joined(s.ID) {
			if n := c.Networks.Table.Get(e.NetworkID); n != nil {
				joined = append(joined, attachment{net: n})
			}
		}
		if err := c.sbs.checkPublish(joined); err != nil {
			return api.Sandbox{}, err
		}
		// Its own mappings are about to go: they do not hold ports
		// against the new ones.
		if err := c.sbs.pickPortsExcept(mappings, s.ID); err != nil {
			return api.Sandbox{}, err
		}
	}
	old := s.Ports
	s = c.Records.UpdateSandbox(s.ID, func(s *sandboxes.Sandbox) { s.Ports = mappings })
	if err := c.State.SaveRecords([]string{s.ID}, nil); err != nil {
		c.Records.UpdateSandbox(s.ID, func(s *sandboxes.Sandbox) { s.Ports = old })
		return api.Sandbox{}, fmt.Errorf("saving the sandbox: %w", err)
	}
	if e := c.Dataplane.DefaultRoute(s); e != nil {
		// The packet filter is written before the network is programmed.
		if err := c.Dataplane.ApplyNow(e.NetworkID); err != nil {
			c.log.Warn("programming a network after publishing ports", "sandbox", s.Name, "err", err)
		}
	}
	if !slices.Equal(old, mappings) {
		c.log.Info("sandbox ports published", "sandbox", s.Name, "ports", len(mappings))
	}
	return c.views.sandbox(s), nil
}
