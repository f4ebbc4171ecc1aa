package driver

import (
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/meshnet/meshnet/agent/ipam"
)

// Network is a network's full configuration: what `network create` asked
// for, with what the driver and IPAM settled. A global network's record is
// this, as JSON, at networks/<id> in the cluster store; a local one's is
// kept in the agent's data dir.
type Network struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Driver  string    `json:"driver"`
	Scope   string    `json:"scope"`
	Created time.Time `json:"created"`
	// VNI is the overlay's VXLAN id (drivers with Capabilities.VNI).
	VNI uint32 `json:"vni,omitempty"`
	// MTU is the MTU the user set (-o mtu); 0 means the driver's default.
	MTU int `json:"mtu,omitempty"`
	// Bridge is a local network's Linux bridge device.
	Bridge      string              `json:"bridge,omitempty"`
	Subnets     []ipam.SubnetConfig `json:"subnets,omitempty"`
	IPv6        bool                `json:"ipv6,omitempty"`
	Internal    bool                `json:"internal,omitempty"`
	Attachable  bool                `json:"attachable,omitempty"`
	Ingress     bool                `json:"ingress,omitempty"`
	ConfigOnly  bool                `json:"config_only,omitempty"`
	ConfigFrom  string              `json:"config_from,omitempty"`
	IPAMDriver  string              `json:"ipam_driver,omitempty"`
	IPAMOptions map[string]string   `json:"ipam_options,omitempty"`
	Options     map[string]string   `json:"options,omitempty"`
	Labels      map[string]string   `json:"labels,omitempty"`
	// Predefined networks (bridge, host, none) cannot be removed.
	Predefined bool `json:"predefined,omitempty"`
	// Removing marks a global network whose removal has begun: no
	// endpoint may lease an address in it any more (see agent/netstore).
	Removing bool `json:"removing,omitempty"`
}

// Singleton returns the one predefined network of a driver that has a
// single one (host, none): the kept one if there is, else a new one.
func Singleton(old map[string]*Network, name, driverName string) []*Network {
	if n := old[name]; n != nil {
		return []*Network{n}
	}
	return []*Network{{Name: name, Driver: driverName, Scope: ScopeLocal, Created: time.Now().UTC(), Predefined: true}}
}

// Global reports a network kept in the cluster store.
func (n *Network) Global() bool { return n.Scope == ScopeGlobal }

// Subnet returns the network's first subnet of a family.
func (n *Network) Subnet(v4 bool) (ipam.SubnetConfig, bool) {
	for _, s := range n.Subnets {
		if s.Subnet.Addr().Is4() == v4 {
			return s, true
		}
	}
	return ipam.SubnetConfig{}, false
}

// Gateway returns the gateway of a family with its subnet's prefix
// length, the form a bridge holds it in; the zero Prefix if there is none.
func (n *Network) Gateway(v4 bool) netip.Prefix {
	s, ok := n.Subnet(v4)
	if !ok || !s.Gateway.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(s.Gateway, s.Subnet.Bits())
}

// Lease is what the network holds in IPAM.
func (n *Network) Lease() ipam.NetworkLease {
	return ipam.NetworkLease{NetworkID: n.ID, VNI: n.VNI, Subnets: n.Subnets}
}

// Clone returns a deep copy.
func (n *Network) Clone() *Network {
	c := *n
	c.Subnets = slices.Clone(n.Subnets)
	c.Options = maps.Clone(n.Options)
	c.Labels = maps.Clone(n.Labels)
	c.IPAMOptions = maps.Clone(n.IPAMOptions)
	return &c
}
