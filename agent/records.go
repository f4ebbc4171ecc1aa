package agent

// The agent's records: networks (global ones in the cluster store under
// networks/<id>, local ones in the data dir) and sandboxes with their
// endpoints (always local: a sandbox lives on one host). Remote endpoints
// are not recorded here; gossip holds them.

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/meshnet/meshnet/agent/ipam"
)

// networkRecord is a network's full configuration, as stored at
// networks/<id> (global scope) or in the data dir (local scope).
type networkRecord struct {
	ID          string              `json:"id"`
	Name        string              `json:"name"`
	Driver      string              `json:"driver"`
	Scope       string              `json:"scope"`
	Created     time.Time           `json:"created"`
	VNI         uint32              `json:"vni,omitempty"`
	MTU         int                 `json:"mtu,omitempty"`
	Bridge      string              `json:"bridge,omitempty"` // local bridge device
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
}

func (n *networkRecord) global() bool { return n.Scope == "global" }

func (n *networkRecord) lease() ipam.NetworkLease {
	return ipam.NetworkLease{NetworkID: n.ID, VNI: n.VNI, Subnets: n.Subnets}
}

// subnet4 returns the network's IPv4 subnet, if any.
func (n *networkRecord) subnet(v4 bool) (ipam.SubnetConfig, bool) {
	for _, s := range n.Subnets {
		if s.Subnet.Addr().Is4() == v4 {
			return s, true
		}
	}
	return ipam.SubnetConfig{}, false
}

// gatewayPrefix returns the gateway address with its subnet's length, the
// form the datapath puts on the bridge.
func (n *networkRecord) gatewayPrefix(v4 bool) netip.Prefix {
	s, ok := n.subnet(v4)
	if !ok || !s.Gateway.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(s.Gateway, s.Subnet.Bits())
}

// endpointRecord is one of a sandbox's interfaces.
type endpointRecord struct {
	ID        string       `json:"id"`
	NetworkID string       `json:"network_id"`
	IfName    string       `json:"ifname"`
	Addr      netip.Prefix `json:"addr"`
	Addr6     netip.Prefix `json:"addr6,omitzero"`
	Aliases   []string     `json:"aliases,omitempty"`
	Links     []string     `json:"links,omitempty"`
}

// sandboxRecord is a sandbox on this host.
type sandboxRecord struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Created   time.Time         `json:"created"`
	Hostname  string            `json:"hostname"`
	NetNS     string            `json:"netns"`
	External  bool              `json:"external,omitempty"`
	HostNet   bool              `json:"host_net,omitempty"` // --net host: the host's own stack
	Endpoints []*endpointRecord `json:"endpoints,omitempty"`
	DNS       []string          `json:"dns,omitempty"`
	DNSOpts   []string          `json:"dns_opts,omitempty"`
	DNSSearch []string          `json:"dns_search,omitempty"`
}

func (s *sandboxRecord) endpoint(networkID string) *endpointRecord {
	for _, e := range s.Endpoints {
		if e.NetworkID == networkID {
			return e
		}
	}
	return nil
}

// nextIfName returns the first free ethN.
func (s *sandboxRecord) nextIfName() string {
	for i := 0; ; i++ {
		name := "eth" + strconv.Itoa(i)
		if !slices.ContainsFunc(s.Endpoints, func(e *endpointRecord) bool { return e.IfName == name }) {
			return name
		}
	}
}

func (s *sandboxRecord) clone() *sandboxRecord {
	c := *s
	c.Endpoints = make([]*endpointRecord, len(s.Endpoints))
	for i, e := range s.Endpoints {
		ec := *e
		c.Endpoints[i] = &ec
	}
	return &c
}

func (n *networkRecord) clone() *networkRecord {
	c := *n
	c.Subnets = slices.Clone(n.Subnets)
	c.Options = maps.Clone(n.Options)
	c.Labels = maps.Clone(n.Labels)
	c.IPAMOptions = maps.Clone(n.IPAMOptions)
	return &c
}

// newID returns 64 random hex digits, like Docker's ids.
func newID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
