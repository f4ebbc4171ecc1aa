package agent

// Views: the agent's records rendered as API types, and the list filters.

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/datapath"
)

// networkMTU is the MTU the network's interfaces get here, as its driver
// says; 0 when it has none.
func (a *Agent) networkMTU(n *driver.Network) int {
	if d, ok := a.driverOf(n); ok && !n.ConfigOnly {
		return d.MTU(n)
	}
	return n.MTU
}

// networkView renders a network with its endpoints on every host. The
// caller holds mu.
func (a *Agent) networkView(n *driver.Network) api.Network {
	v := api.Network{Name: n.Name, ID: n.ID, Created: n.Created, Scope: n.Scope, Driver: n.Driver,
		EnableIPv6: n.IPv6, Internal: n.Internal, Attachable: n.Attachable, Ingress: n.Ingress,
		ConfigOnly: n.ConfigOnly, ConfigFrom: api.ConfigReference{Network: n.ConfigFrom},
		Options: orEmpty(n.Options), Labels: orEmpty(n.Labels), VNI: n.VNI, MTU: a.networkMTU(n),
		Containers: map[string]api.EndpointResource{},
		IPAM:       api.IPAM{Driver: "default", Options: orEmpty(n.IPAMOptions), Config: []api.IPAMConfig{}}}
	for _, s := range n.Subnets {
		c := api.IPAMConfig{Subnet: s.Subnet.String()}
		if s.Gateway.IsValid() {
			c.Gateway = s.Gateway.String()
		}
		if s.IPRange.IsValid() {
			c.IPRange = s.IPRange.String()
		}
		if len(s.AuxAddresses) > 0 {
			c.AuxAddress = map[string]string{}
			for k, ad := range s.AuxAddresses {
				c.AuxAddress[k] = ad.String()
			}
		}
		v.IPAM.Config = append(v.IPAM.Config, c)
	}
	discoverable := a.discoverable(n)
	for _, e := range a.endpoints {
		if e.NetworkID == n.ID {
			r := api.EndpointResource{Name: a.endpointName(e), EndpointID: e.ID,
				MacAddress: e.mac().String(), IPv4Address: e.Addr.String(),
				IPv6Address: prefixString(e.Addr6), Node: a.cfg.NodeName, Aliases: e.Aliases}
			if s := a.sandboxes[e.SandboxID]; s != nil {
				r.ContainerID = s.ContainerID
			}
			if discoverable && e.joined() {
				r.DNSNames = a.endpointNames(e)
			}
			v.Containers[e.ID] = r
		}
	}
	if n.Global() && a.gossip != nil {
		bits := 32
		if s, ok := n.Subnet(true); ok {
			bits = s.Subnet.Bits()
		}
		bits6 := 128
		if s, ok := n.Subnet(false); ok {
			bits6 = s.Subnet.Bits()
		}
		for _, ep := range a.gossip.Endpoints(n.ID) {
			if _, ok := v.Containers[ep.ID]; ok || ep.Node == a.cfg.NodeName {
				continue
			}
			mac := ep.MAC
			if len(mac) == 0 {
				mac = datapath.MACFromIPv4(ep.IP)
			}
			r := api.EndpointResource{Name: ep.Name, EndpointID: ep.ID, MacAddress: mac.String(),
				IPv4Address: netip.PrefixFrom(ep.IP, bits).String(), Node: ep.Node, Aliases: ep.Aliases}
			if discoverable {
				r.DNSNames = append([]string{ep.Name}, ep.Aliases...)
			}
			if ep.IPv6.IsValid() {
				r.IPv6Address = netip.PrefixFrom(ep.IPv6, bits6).String()
			}
			v.Containers[ep.ID] = r
		}
	}
	return v
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// sandboxView renders a sandbox. The caller holds mu.
func (a *Agent) sandboxView(s *sandboxRecord) api.Sandbox {
	v := api.Sandbox{ID: s.ID, Name: s.Name, Created: s.Created, Hostname: s.Hostname, NetNS: s.NetNS,
		External: s.External, ContainerID: s.ContainerID, Node: a.cfg.NodeName, Networks: map[string]api.EndpointSettings{},
		DNS: orNone(s.DNS), DNSOpts: orNone(s.DNSOpts), DNSSearch: orNone(s.DNSSearch),
		Ports: map[string][]api.PortBinding{}}
	switch {
	case s.HostNet:
		v.NetworkMode = "host"
	case s.SharedFrom != "":
		v.NetworkMode = "container:" + a.namespaceOwner(s).Name
	}
	for _, m := range s.Ports {
		key := fmt.Sprintf("%d/%s", m.Port, m.Proto)
		ip := "0.0.0.0"
		if m.HostIP.IsValid() {
			ip = m.HostIP.String()
		}
		v.Ports[key] = append(v.Ports[key], api.PortBinding{HostIP: ip, HostPort: strconv.Itoa(int(m.HostPort))})
	}
	for _, e := range a.sandboxEndpoints(s) {
		name := e.NetworkID
		var gw, gw6 string
		if n := a.networks[e.NetworkID]; n != nil {
			name = n.Name
			if g := n.Gateway(true); g.IsValid() {
				gw = g.Addr().String()
			}
			if g := n.Gateway(false); g.IsValid() {
				gw6 = g.Addr().String()
			}
		}
		es := api.EndpointSettings{NetworkID: e.NetworkID, EndpointID: e.ID, Interface: e.IfName,
			MacAddress: e.mac().String(), IPAddress: e.Addr.Addr().String(),
			IPPrefixLen: e.Addr.Bits(), Gateway: gw, Aliases: orNone(e.Aliases), Links: orNone(e.Links)}
		if n := a.networks[e.NetworkID]; n != nil && a.discoverable(n) {
			es.DNSNames = a.endpointNames(e)
		}
		if e.Addr6.IsValid() {
			es.IPv6Address, es.IPv6Prefix, es.IPv6Gateway = e.Addr6.Addr().String(), e.Addr6.Bits(), gw6
		}
		v.Networks[name] = es
	}
	return v
}

func orNone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// NetworkList lists the networks matching filters (Docker's names: name,
// id, driver, label, scope, type=custom|builtin). A name or id filter
// matches substrings/prefixes as in Docker.
func (a *Agent) NetworkList(ctx context.Context, filters map[string][]string) (_ []api.Network, err error) {
	defer func() { err = a.serviceError(err) }()
	for k := range filters {
		switch k {
		case "name", "id", "driver", "label", "scope", "type":
		default:
			return nil, badRequest("invalid filter %q: use name, id, driver, label, scope or type", k)
		}
	}
	a.refreshNetworks(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []api.Network
	for _, n := range a.networks {
		if matchNetwork(n, filters) {
			out = append(out, a.networkView(n))
		}
	}
	slices.SortFunc(out, func(x, y api.Network) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

func matchNetwork(n *driver.Network, filters map[string][]string) bool {
	any := func(key string, ok func(string) bool) bool {
		vals := filters[key]
		return len(vals) == 0 || slices.ContainsFunc(vals, ok)
	}
	return any("name", func(v string) bool { return strings.Contains(n.Name, v) }) &&
		any("id", func(v string) bool { return strings.HasPrefix(n.ID, v) }) &&
		any("driver", func(v string) bool { return n.Driver == v }) &&
		any("scope", func(v string) bool { return n.Scope == v }) &&
		any("type", func(v string) bool { return (v == "builtin") == n.Predefined }) &&
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

// NetworkInspect returns one network.
func (a *Agent) NetworkInspect(ctx context.Context, ref string) (_ api.Network, err error) {
	defer func() { err = a.serviceError(err) }()
	a.knowNetworks(ctx, ref)
	a.mu.Lock()
	defer a.mu.Unlock()
	n, err := a.findNetwork(ref)
	if err != nil {
		return api.Network{}, err
	}
	return a.networkView(n), nil
}

// SandboxList lists this host's sandboxes.
func (a *Agent) SandboxList(context.Context) ([]api.Sandbox, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []api.Sandbox{}
	for _, s := range a.sandboxes {
		out = append(out, a.sandboxView(s))
	}
	slices.SortFunc(out, func(x, y api.Sandbox) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// SandboxInspect returns one sandbox.
func (a *Agent) SandboxInspect(_ context.Context, ref string) (_ api.Sandbox, err error) {
	defer func() { err = a.serviceError(err) }()
	a.mu.Lock()
	defer a.mu.Unlock()
	s, err := a.findSandbox(ref)
	if err != nil {
		return api.Sandbox{}, err
	}
	return a.sandboxView(s), nil
}

// Nodes lists the gossip members and the nodes registered in the store.
func (a *Agent) Nodes(ctx context.Context) ([]api.Node, error) {
	nodes := map[string]*api.Node{}
	for _, m := range a.gossip.Members() {
		nodes[m.Name] = &api.Node{Name: m.Name, Address: m.Addr.Addr().String(), GossipPort: int(m.Addr.Port()),
			Version: m.Version, State: "alive", Self: m.Name == a.cfg.NodeName}
	}
	if store, ok := a.storeReady(); ok {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		reg, _, _ := registeredNodes(ctx, store) // nil on error: gossip's view only
		cancel()
		for name, ni := range reg {
			if nodes[name] == nil {
				nodes[name] = &api.Node{Name: name, Address: ni.Address, GossipPort: ni.GossipPort,
					Version: ni.Version, State: "registered", Self: name == a.cfg.NodeName}
			}
		}
	}
	a.mu.Lock()
	for _, n := range a.networks {
		if !n.Global() {
			continue
		}
		for _, ep := range a.gossip.Endpoints(n.ID) {
			if node := nodes[ep.Node]; node != nil && !slices.Contains(node.Networks, n.Name) {
				node.Networks = append(node.Networks, n.Name)
			}
		}
	}
	a.mu.Unlock()
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
func (a *Agent) Info(context.Context) (api.Info, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	status := "ok"
	switch {
	case !a.everUp && a.storeErr == nil:
		status = "connecting"
	case a.store == nil || a.storeErr != nil:
		status = "unreachable"
		if a.storeErr != nil {
			status += ": " + a.storeErr.Error()
		}
	}
	return api.Info{Node: a.cfg.NodeName, Version: Version, ClusterStore: a.cfg.StoreURL,
		ClusterAdvertise: a.vtep.String() + ":" + strconv.Itoa(a.cfg.GossipPort), StoreStatus: status,
		DataDir: a.cfg.DataDir, Networks: len(a.networks), Sandboxes: len(a.sandboxes),
		Nodes: len(a.gossip.Members())}, nil
}

// Version describes the build.
func (a *Agent) Version() api.VersionInfo { return VersionInfo() }

// VersionInfo describes the build.
func VersionInfo() api.VersionInfo {
	return api.VersionInfo{Version: Version, APIVersion: api.Version, GoVersion: runtime.Version(),
		Os: runtime.GOOS, Arch: runtime.GOARCH}
}

// Metrics gathers the agent's metrics.
func (a *Agent) Metrics() prometheus.Gatherer { return a.metrics }
