package agent

// The agent's own records: sandboxes and endpoints, always of this host.
// Networks are driver.Network records (global ones mirrored from the
// cluster store, local ones kept here); remote endpoints are gossip's.

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/meshnet/meshnet/agent/ports"
	"github.com/meshnet/meshnet/datapath"
	"github.com/meshnet/meshnet/sandbox"
)

// endpointRecord is an endpoint of this host: created (addresses leased)
// and, while joined, an interface in a sandbox.
type endpointRecord struct {
	ID        string       `json:"id"`
	NetworkID string       `json:"network_id"`
	Name      string       `json:"name,omitempty"` // what peers and inspect call it
	Addr      netip.Prefix `json:"addr"`
	Addr6     netip.Prefix `json:"addr6,omitzero"`
	Aliases   []string     `json:"aliases,omitempty"`
	Links     []string     `json:"links,omitempty"`
	// MAC is the interface's MAC when one was asked for (CNI's mac);
	// empty: derived from Addr.
	MAC string `json:"mac,omitempty"`
	// SandboxID and IfName are set while the endpoint is joined.
	SandboxID string `json:"sandbox_id,omitempty"`
	IfName    string `json:"ifname,omitempty"`
}

func (e *endpointRecord) joined() bool { return e.SandboxID != "" }

// mac is the endpoint's interface MAC.
func (e *endpointRecord) mac() net.HardwareAddr {
	if m, err := net.ParseMAC(e.MAC); err == nil {
		return m
	}
	return datapath.MACFromIPv4(e.Addr.Addr())
}

// sandboxRecord is a sandbox on this host: a network namespace, named
// (/run/netns/NAME, ours) or adopted (External: a path given by another
// runtime). NSID pins the namespace's identity: a path that leads to
// another namespace later (PID reuse, a namespace deleted and made anew)
// is never programmed.
type sandboxRecord struct {
	ID       string       `json:"id"`
	Name     string       `json:"name"`
	Created  time.Time    `json:"created"`
	Hostname string       `json:"hostname"`
	NetNS    string       `json:"netns"`
	NSID     sandbox.NSID `json:"nsid,omitzero"`
	External bool         `json:"external,omitempty"`
	// ContainerID: the sandbox was made by the CNI plugin for this
	// container; its endpoints are keyed by interface name.
	ContainerID string `json:"container_id,omitempty"`
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

	// discardedPorts: -p was given with --net host (a warning, not kept).
	discardedPorts bool

	// Legacy holds the endpoints of a state file written before endpoints
	// were records of their own; load moves them out.
	Legacy []*endpointRecord `json:"endpoints,omitempty"`
}

// nextIfName returns the first ethN no endpoint of the sandbox uses. The
// caller holds mu.
func (a *Agent) nextIfName(s *sandboxRecord) string {
	for i := 0; ; i++ {
		name := "eth" + strconv.Itoa(i)
		if !slices.ContainsFunc(s.Endpoints, func(id string) bool {
			e := a.endpoints[id]
			return e != nil && e.IfName == name
		}) {
			return name
		}
	}
}

// recordSandbox records s, and on rollback forgets it again.
func (a *Agent) recordSandbox(s *sandboxRecord, rollback *undo) {
	a.mu.Lock()
	a.sandboxes[s.ID] = s
	a.mu.Unlock()
	rollback.add(func() {
		a.mu.Lock()
		delete(a.sandboxes, s.ID)
		a.mu.Unlock()
	})
}

// putEndpointLocked records e, also in the index by network. The caller
// holds mu.
func (a *Agent) putEndpointLocked(e *endpointRecord) {
	a.endpoints[e.ID] = e
	m := a.byNetwork[e.NetworkID]
	if m == nil {
		m = map[string]*endpointRecord{}
		a.byNetwork[e.NetworkID] = m
	}
	m[e.ID] = e
}

// dropEndpointLocked forgets e. The caller holds mu.
func (a *Agent) dropEndpointLocked(e *endpointRecord) {
	delete(a.endpoints, e.ID)
	if m := a.byNetwork[e.NetworkID]; m != nil {
		if delete(m, e.ID); len(m) == 0 {
			delete(a.byNetwork, e.NetworkID)
		}
	}
}

// sandboxEndpoints returns the sandbox's joined endpoints in join order.
// The caller holds mu.
func (a *Agent) sandboxEndpoints(s *sandboxRecord) []*endpointRecord {
	out := make([]*endpointRecord, 0, len(s.Endpoints))
	for _, id := range s.Endpoints {
		if e := a.endpoints[id]; e != nil {
			out = append(out, e)
		}
	}
	return out
}

// endpointIn returns the sandbox's endpoint on a network, if any. The
// caller holds mu.
func (a *Agent) endpointIn(s *sandboxRecord, networkID string) *endpointRecord {
	for _, e := range a.sandboxEndpoints(s) {
		if e.NetworkID == networkID {
			return e
		}
	}
	return nil
}

// newID returns 64 random hex digits, like Docker's ids.
func newID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
