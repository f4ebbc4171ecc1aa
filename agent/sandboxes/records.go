// Package sandboxes keeps this host's sandboxes and endpoints: the
// records (Sandbox, Endpoint) and the Table that holds them.
//
// Records are values once in the table: a change replaces the record
// (copy on write), so a reader holds a consistent record without a lock,
// and the table's lock is held only for the maps. Operations change the
// table one at a time (the controller's operation lock); readers (the
// dataplane's rendering, DNS lookups, views, the state file) read at any
// time. Lock order: the table's lock is a leaf, taken with no other held
// and released before anything else is called.
package sandboxes

import (
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/meshnet/meshnet/agent/ports"
	"github.com/meshnet/meshnet/datapath"
	"github.com/meshnet/meshnet/sandbox"
)

// Endpoint is an endpoint of this host: created (addresses leased) and,
// while joined, an interface in a sandbox.
type Endpoint struct {
	ID        string       `json:"id"`
	NetworkID string       `json:"network_id"`
	Name      string       `json:"name,omitempty"` // what peers and inspect call it
	Addr      netip.Prefix `json:"addr"`
	Addr6     netip.Prefix `json:"addr6,omitzero"`
	Aliases   []string     `json:"aliases,omitempty"`
	Links     []string     `json:"links,omitempty"` // SANDBOX:ALIAS
	// MAC is the interface's MAC when one was asked for; empty: derived
	// from Addr.
	MAC string `json:"mac,omitempty"`
	// SandboxID and IfName are set while the endpoint is joined.
	SandboxID string `json:"sandbox_id,omitempty"`
	IfName    string `json:"ifname,omitempty"`
	// Handoff: the runtime moved the interface into the sandbox (IfName
	// is its name in the host namespace before the move).
	Handoff bool `json:"handoff,omitempty"`
}

// Joined reports whether the endpoint is in a sandbox.
func (e *Endpoint) Joined() bool { return e.SandboxID != "" }

// HardwareAddr is the endpoint's interface MAC.
func (e *Endpoint) HardwareAddr() net.HardwareAddr {
	if m, err := net.ParseMAC(e.MAC); err == nil {
		return m
	}
	return datapath.MACFromIPv4(e.Addr.Addr())
}

// Sandbox is a sandbox on this host: a network namespace, named
// (/run/netns/NAME, ours) or adopted (External: a path given by another
// runtime). NSID pins the namespace's identity: a path that leads to
// another namespace later (PID reuse, a namespace deleted and made anew)
// is never programmed.
type Sandbox struct {
	ID       string       `json:"id"`
	Name     sandbox.Name `json:"name"`
	Created  time.Time    `json:"created"`
	Hostname string       `json:"hostname"`
	NetNS    string       `json:"netns"`
	NSID     sandbox.NSID `json:"nsid,omitzero"`
	External bool         `json:"external,omitempty"`
	// ContainerID: the sandbox was made for this container by another
	// runtime (CNI); its endpoints are told apart by interface name.
	ContainerID string `json:"container_id,omitempty"`
	// Handoff: the runtime moves interfaces into the namespace itself
	// and owns it (Docker); it is never identified, entered or reaped.
	Handoff bool `json:"handoff,omitempty"`
	// HostNet: the sandbox is the host's own namespace (--net host).
	HostNet bool `json:"host_net,omitempty"`
	// SharedFrom is the id of the sandbox whose namespace this one shares
	// (--net container:OTHER).
	SharedFrom string   `json:"shared_from,omitempty"`
	Endpoints  []string `json:"endpoint_ids,omitempty"` // joined endpoints, in join order
	DNS        []string `json:"dns,omitempty"`
	DNSOpts    []string `json:"dns_opts,omitempty"`
	DNSSearch  []string `json:"dns_search,omitempty"`
	// Ports are the sandbox's published ports, host ports picked; they
	// lead to its address on the network that carries its default route.
	Ports []ports.Mapping `json:"ports,omitempty"`
	// Exposed are the ports a --link to the sandbox may reach.
	Exposed []ports.Exposed `json:"exposed,omitempty"`

	// Legacy holds the endpoints of a state file written before endpoints
	// were records of their own; loading moves them out.
	Legacy []*Endpoint `json:"endpoints,omitempty"`
}

// SharesNamespace reports whether the sandbox uses a namespace that is
// not its own (the host's, or another sandbox's): it takes no endpoints.
func (s *Sandbox) SharesNamespace() bool { return s.HostNet || s.SharedFrom != "" }

// clone copies a record for a change (copy on write).
func (s *Sandbox) clone() *Sandbox {
	c := *s
	c.Endpoints = slices.Clone(s.Endpoints)
	return &c
}

func (e *Endpoint) clone() *Endpoint {
	c := *e
	return &c
}
