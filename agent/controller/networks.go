package controller

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/agent/service"
)

// NetworkCreate validates req and creates the network.
func (c *Controller) NetworkCreate(ctx context.Context, req api.NetworkCreate) (_ api.CreateResponse, err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	ctx, done := c.operation(ctx)
	defer done()
	n, err := c.Networks.Create(ctx, req)
	if err != nil {
		return api.CreateResponse{}, err
	}
	return api.CreateResponse{ID: n.ID}, nil
}

// NetworkPlan checks req and returns the network NetworkCreate would
// make now, its subnets picked, creating nothing.
func (c *Controller) NetworkPlan(ctx context.Context, req api.NetworkCreate) (_ api.Network, err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	n, err := c.Networks.Plan(ctx, req)
	if err != nil {
		return api.Network{}, err
	}
	return c.views.network(n), nil
}

// NetworkRemove deletes a network that has no endpoints on any host.
func (c *Controller) NetworkRemove(ctx context.Context, ref string) (err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	ctx, done := c.operation(ctx)
	defer done()
	c.Networks.Know(ctx, ref)
	n, err := c.Networks.Table.Find(ref)
	if err != nil {
		return err
	}
	return c.removeNetwork(ctx, n)
}

// removeNetwork removes n unless an endpoint on any host we know of is
// on it. The caller holds opMu.
func (c *Controller) removeNetwork(ctx context.Context, n *driver.Network) error {
	inUse := func(who []string) error {
		return service.Conflictf("network %s has active endpoints (%s): remove or disconnect them first", n.Name, strings.Join(who, ", "))
	}
	if eps := c.views.endpointsOf(n); len(eps) > 0 && !n.Predefined {
		return inUse(eps)
	}
	return c.Networks.Remove(ctx, n, inUse)
}

// endpointsOf names the network's endpoints on every host we know of.
func (v *views) endpointsOf(n *driver.Network) []string {
	var names []string
	for _, e := range v.recs.OnNetwork(n.ID, -1) {
		names = append(names, v.endpointName(e))
	}
	if n.Global() {
		for _, ep := range v.members.Endpoints(n.ID) {
			if ep.Node != v.node {
				names = append(names, ep.Name+" on "+ep.Node)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// NetworkPrune removes every user network without endpoints.
func (c *Controller) NetworkPrune(ctx context.Context) (_ api.PruneResponse, err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	ctx, done := c.operation(ctx)
	defer done()
	resp := api.PruneResponse{NetworksDeleted: []string{}}
	var errs []error
	for _, n := range c.Networks.Table.All() {
		if n.Predefined || len(c.views.endpointsOf(n)) > 0 {
			continue
		}
		err := c.removeNetwork(ctx, n)
		switch {
		case err == nil:
			resp.NetworksDeleted = append(resp.NetworksDeleted, n.Name)
		case errors.Is(serviceError(c.cfg.StoreURL, err), service.ErrConflict), errors.Is(err, ipam.ErrContention):
			// in use, or changed meanwhile: not prunable now
		default:
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return resp, errs[0]
	}
	return resp, nil
}

// NetworkList lists the networks matching filters (Docker's names: name,
// id, driver, label, scope, type=custom|builtin). A name or id filter
// matches substrings/prefixes as in Docker.
func (c *Controller) NetworkList(ctx context.Context, filters map[string][]string) (_ []api.Network, err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	for k := range filters {
		switch k {
		case "name", "id", "driver", "label", "scope", "type":
		default:
			return nil, service.Invalidf("invalid filter %q: use name, id, driver, label, scope or type", k)
		}
	}
	c.Networks.Refresh(ctx)
	var out []api.Network
	for _, n := range c.Networks.Table.All() {
		if matchNetwork(n, filters) {
			out = append(out, c.views.network(n))
		}
	}
	return out, nil
}

// NetworkInspect returns one network.
func (c *Controller) NetworkInspect(ctx context.Context, ref string) (_ api.Network, err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	c.Networks.Know(ctx, ref)
	n, err := c.Networks.Table.Find(ref)
	if err != nil {
		return api.Network{}, err
	}
	return c.views.network(n), nil
}

// NetworkReady says why an endpoint could not be made on the network now:
// it is unknown, takes no endpoints, or is global while the cluster store
// cannot be reached.
func (c *Controller) NetworkReady(ctx context.Context, ref string) (err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	c.Networks.Know(ctx, ref)
	n, err := c.Networks.Table.Find(ref)
	if err != nil {
		return err
	}
	if err := c.eps.checkJoinable(n); err != nil {
		return err
	}
	if n.Global() {
		if _, err := c.Store.NetStore(ctx); err != nil {
			return err
		}
	}
	return nil
}

func matchNetwork(n *driver.Network, filters map[string][]string) bool {
	anyOf := func(key string, ok func(string) bool) bool {
		vals := filters[key]
		return len(vals) == 0 || slices.ContainsFunc(vals, ok)
	}
	return anyOf("name", func(v string) bool { return strings.Contains(n.Name, v) }) &&
		anyOf("id", func(v string) bool { return strings.HasPrefix(n.ID, v) }) &&
		anyOf("driver", func(v string) bool { return n.Driver == v }) &&
		anyOf("scope", func(v string) bool { return n.Scope == v }) &&
		anyOf("type", func(v string) bool { return (v == "builtin") == n.Predefined }) &&
		allLabels(n.Labels, filters["label"])
}

// allLabels: every label filter (KEY or KEY=VALUE) must hold, as in Docker.
func allLabels(labels map[string]string, want []string) bool {
	for _, w := range want {
		k, v, hasValue := strings.Cut(w, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != v) {
			return false
		}
	}
	return true
}
