package controller

import (
	"context"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/sandboxes"
	"github.com/meshnet/meshnet/agent/service"
)

// SandboxList lists this host's sandboxes matching filters: name
// (substring), id (prefix), container-id and network (name or id).
func (c *Controller) SandboxList(_ context.Context, filters map[string][]string) (_ []api.Sandbox, err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	for k := range filters {
		switch k {
		case "name", "id", "container-id", "network":
		default:
			return nil, service.Invalidf("invalid filter %q: use name, id, container-id or network", k)
		}
	}
	candidates := c.Records.Sandboxes()
	if ids := filters["container-id"]; len(ids) == 1 { // a runtime's lookup: no walk
		candidates = nil
		if s := c.Records.ByContainer(ids[0]); s != nil {
			candidates = []*sandboxes.Sandbox{s}
		}
	}
	out := []api.Sandbox{}
	for _, s := range candidates {
		if c.views.matchSandbox(s, filters) {
			out = append(out, c.views.sandbox(s))
		}
	}
	return out, nil
}

// matchSandbox reports whether a sandbox passes the filters.
func (v *views) matchSandbox(s *sandboxes.Sandbox, filters map[string][]string) bool {
	anyOf := func(key string, ok func(string) bool) bool {
		vals := filters[key]
		return len(vals) == 0 || slices.ContainsFunc(vals, ok)
	}
	onNetwork := func(ref string) bool {
		n, err := v.nets.Table.Find(ref)
		return err == nil && v.recs.EndpointIn(s.ID, n.ID) != nil
	}
	return anyOf("name", func(v string) bool { return strings.Contains(s.Name.String(), v) }) &&
		anyOf("id", func(v string) bool { return strings.HasPrefix(s.ID, v) }) &&
		anyOf("container-id", func(v string) bool { return s.ContainerID == v }) &&
		anyOf("network", onNetwork)
}

// SandboxInspect returns one sandbox.
func (c *Controller) SandboxInspect(_ context.Context, ref string) (_ api.Sandbox, err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	s, err := c.Records.FindSandbox(ref)
	if err != nil {
		return api.Sandbox{}, err
	}
	return c.views.sandbox(s), nil
}

// Nodes lists the gossip members and the nodes registered in the store.
func (c *Controller) Nodes(ctx context.Context) ([]api.Node, error) {
	nodes := map[string]*api.Node{}
	for _, m := range c.Members.Members() {
		nodes[m.Name] = &api.Node{Name: m.Name, Address: m.Addr.Addr().String(), GossipPort: int(m.Addr.Port()),
			Version: m.Version, State: "alive", Self: m.Name == c.cfg.NodeName}
	}
	reg, _, _ := c.Store.RegisteredNodes(ctx) // nil on error: gossip's view only
	for name, ni := range reg {
		if nodes[name] == nil {
			nodes[name] = &api.Node{Name: name, Address: ni.Address, GossipPort: ni.GossipPort,
				Version: ni.Version, State: "registered", Self: name == c.cfg.NodeName}
		}
	}
	for _, n := range c.Networks.Table.All() {
		if !n.Global() {
			continue
		}
		for _, ep := range c.Members.Endpoints(n.ID) {
			if node := nodes[ep.Node]; node != nil && !slices.Contains(node.Networks, n.Name) {
				node.Networks = append(node.Networks, n.Name)
			}
		}
	}
	out := []api.Node{}
	for _, n := range nodes {
		if n.Networks == nil {
			n.Networks = []string{}
		}
		slices.Sort(n.Networks)
		out = append(out, *n)
	}
	slices.SortFunc(out, func(x, y api.Node) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// Info describes the agent.
func (c *Controller) Info(context.Context) (api.Info, error) {
	nsb, _ := c.Records.Counts()
	return api.Info{Node: c.cfg.NodeName, Version: c.cfg.Version, ClusterStore: c.cfg.StoreURL,
		ClusterAdvertise: c.cfg.VTEP.String() + ":" + strconv.Itoa(c.cfg.GossipPort), StoreStatus: c.Store.Status(),
		DataDir: c.cfg.DataDir, Networks: c.Networks.Table.Len(), Sandboxes: nsb,
		Nodes: len(c.Members.Members()), Warnings: c.cfg.Warnings}, nil
}

// Version describes the build.
func (c *Controller) Version() api.VersionInfo { return VersionInfo(c.cfg.Version) }

// VersionInfo describes the build of an agent of the version.
func VersionInfo(version string) api.VersionInfo {
	return api.VersionInfo{Version: version, APIVersion: api.Version, GoVersion: runtime.Version(),
		Os: runtime.GOOS, Arch: runtime.GOARCH}
}

// Metrics gathers the agent's metrics.
func (c *Controller) Metrics() prometheus.Gatherer { return c.Deps.Metrics }
