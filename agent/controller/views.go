package controller

// Views: the components' records rendered as API types.

import (
	"fmt"
	"maps"
	"net/netip"
	"strconv"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/dataplane"
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/membership"
	"github.com/meshnet/meshnet/agent/networks"
	"github.com/meshnet/meshnet/agent/sandboxes"
	"github.com/meshnet/meshnet/datapath"
)

// views renders records; it reads, never changes.
type views struct {
	node    string
	nets    *networks.Manager
	recs    *sandboxes.Table
	members *membership.Membership
	dp      *dataplane.Dataplane
}

// network renders a network with its endpoints on every host.
func (v *views) network(n *driver.Network) api.Network {
	out := api.Network{Name: n.Name, ID: n.ID, Created: n.Created, Scope: n.Scope, Driver: n.Driver,
		EnableIPv6: n.IPv6, Internal: n.Internal, Attachable: n.Attachable, Ingress: n.Ingress,
		ConfigOnly: n.ConfigOnly, ConfigFrom: api.ConfigReference{Network: n.ConfigFrom},
		Options: orEmpty(n.Options), Labels: orEmpty(n.Labels), VNI: n.VNI, MTU: v.nets.MTU(n),
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
		out.IPAM.Config = append(out.IPAM.Config, c)
	}
	discoverable := v.dp.Discoverable(n)
	for _, e := range v.recs.OnNetwork(n.ID, -1) {
		r := api.EndpointResource{Name: v.endpointName(e), EndpointID: e.ID,
			MacAddress: e.HardwareAddr().String(), IPv4Address: e.Addr.String(),
			IPv6Address: prefixString(e.Addr6), Node: v.node, Aliases: e.Aliases}
		if s := v.recs.Sandbox(e.SandboxID); s != nil {
			r.ContainerID = s.ContainerID
		}
		if discoverable && e.Joined() {
			r.DNSNames = v.dp.EndpointNames(e)
		}
		out.Containers[e.ID] = r
	}
	if n.Global() {
		v.remoteEndpoints(n, discoverable, out.Containers)
	}
	return out
}

// remoteEndpoints adds the endpoints gossip knows on other hosts.
func (v *views) remoteEndpoints(n *driver.Network, discoverable bool, into map[string]api.EndpointResource) {
	bits := 32
	if s, ok := n.Subnet(true); ok {
		bits = s.Subnet.Bits()
	}
	bits6 := 128
	if s, ok := n.Subnet(false); ok {
		bits6 = s.Subnet.Bits()
	}
	for _, ep := range v.members.Endpoints(n.ID) {
		if _, ok := into[ep.ID]; ok || ep.Node == v.node {
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
		into[ep.ID] = r
	}
}

// endpointName is how an endpoint is named to the user: its sandbox's
// name while joined, else its own.
func (v *views) endpointName(e *sandboxes.Endpoint) string {
	if s := v.recs.Sandbox(e.SandboxID); s != nil {
		return s.Name.String()
	}
	if e.Name != "" {
		return e.Name
	}
	return e.ID[:12]
}

// sandbox renders a sandbox.
func (v *views) sandbox(s *sandboxes.Sandbox) api.Sandbox {
	out := api.Sandbox{ID: s.ID, Name: s.Name.String(), Created: s.Created, Hostname: s.Hostname, NetNS: s.NetNS,
		External: s.External, ContainerID: s.ContainerID, Node: v.node, Networks: map[string]api.EndpointSettings{},
		DNS: orNone(s.DNS), DNSOpts: orNone(s.DNSOpts), DNSSearch: orNone(s.DNSSearch),
		Ports: map[string][]api.PortBinding{}, Resolver: v.dp.ResolverSettings(s)}
	switch {
	case s.HostNet:
		out.NetworkMode = "host"
	case s.SharedFrom != "":
		out.NetworkMode = "container:" + v.recs.Owner(s).Name.String()
	}
	for _, m := range s.Ports {
		key := fmt.Sprintf("%d/%s", m.Port, m.Proto)
		ip := "0.0.0.0"
		if m.HostIP.IsValid() {
			ip = m.HostIP.String()
		}
		out.Ports[key] = append(out.Ports[key], api.PortBinding{HostIP: ip, HostPort: strconv.Itoa(int(m.HostPort))})
	}
	def := v.dp.DefaultRoute(s)
	for _, e := range v.recs.Joined(s.ID) {
		name := e.NetworkID
		es := api.EndpointSettings{NetworkID: e.NetworkID, EndpointID: e.ID, Interface: e.IfName,
			MacAddress: e.HardwareAddr().String(), IPAddress: e.Addr.Addr().String(),
			IPPrefixLen: e.Addr.Bits(), Aliases: orNone(e.Aliases), Links: orNone(e.Links),
			DefaultRoute: def != nil && def.ID == e.ID}
		if n := v.nets.Table.Get(e.NetworkID); n != nil {
			name = n.Name
			es.Gateway, es.IPv6Gateway = gateway(n, true), gateway(n, false)
			es.MTU = v.nets.MTU(n)
			if v.dp.Discoverable(n) {
				es.DNSNames = v.dp.EndpointNames(e)
			}
		}
		if e.Addr6.IsValid() {
			es.IPv6Address, es.IPv6Prefix = e.Addr6.Addr().String(), e.Addr6.Bits()
		} else {
			es.IPv6Gateway = ""
		}
		out.Networks[name] = es
	}
	return out
}

// endpoint renders an endpoint of this host.
func (v *views) endpoint(e *sandboxes.Endpoint) api.Endpoint {
	out := api.Endpoint{ID: e.ID, Name: e.Name, NetworkID: e.NetworkID, Network: e.NetworkID, Interface: e.IfName,
		MacAddress: e.HardwareAddr().String(), IPv4Address: e.Addr.String(),
		IPv6Address: prefixString(e.Addr6), Aliases: orNone(e.Aliases), Node: v.node}
	if s := v.recs.Sandbox(e.SandboxID); s != nil {
		out.Sandbox = s.Name.String()
	}
	if n := v.nets.Table.Get(e.NetworkID); n != nil {
		out.Network = n.Name
		out.Gateway, out.IPv6Gateway = gateway(n, true), gateway(n, false)
		out.MTU = v.nets.MTU(n)
	}
	return out
}

// gateway is a network's gateway address of a family, or "".
func gateway(n *driver.Network, v4 bool) string {
	if g := n.Gateway(v4); g.IsValid() {
		return g.Addr().String()
	}
	return ""
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}

func orNone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}
