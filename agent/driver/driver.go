// Package driver is the seam between the agent and its network drivers,
// after libnetwork's driverapi: one small Driver interface, extra
// behaviour discovered by type assertion, and a Registry the agent looks
// drivers up in by name. Each driver is a package of its own (null, host,
// bridge, overlay; room for remote) and imports nothing from the agent.
//
// A driver owns what is particular to its kind of network:
//
//   - its capabilities: scope (global networks live in the cluster store,
//     local ones on one host), whether networks take a VNI, whether a
//     sandbox gets an interface on them, whether users may create them;
//   - its options (-o KEY=VALUE): which keys it knows, how their values
//     are checked, and the sentence for an unknown one;
//   - its part of the desired kernel state, rendered as a pure function
//     of the view of one network (the network, its endpoints on this host
//     and on others), so that it is table-tested without a kernel;
//   - the networks every host has from the start (bridge, host, none).
//
// The agent core names no driver: it asks the Registry and reads
// capabilities. What a driver does is decided by the data it is given;
// no method writes to the kernel or the store, blocks, or keeps state
// between calls (Predefined may read the host's routes), so all are safe
// for concurrent use.
package driver

import (
	"errors"
	"fmt"

	"github.com/meshnet/meshnet/datapath"
)

// ErrInvalid marks a refusal of bad input: an unknown or malformed option,
// a network the driver cannot make, a sandbox it cannot join. Its message
// is one sentence for the user; the API answers it with 400.
var ErrInvalid = errors.New("invalid request for the driver")

// Invalid returns an error wrapping ErrInvalid with a formatted message.
func Invalid(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return ErrInvalid }

// Scopes of networks.
const (
	// ScopeGlobal: the network is kept in the cluster store and is the
	// same on every host; its leases are global.
	ScopeGlobal = "global"
	// ScopeLocal: the network lives in one agent's data dir.
	ScopeLocal = "local"
)

// Capabilities say what a driver's networks are, for the agent to act on
// without knowing the driver.
type Capabilities struct {
	// Scope is ScopeGlobal or ScopeLocal.
	Scope string
	// VNI: a network takes a VXLAN network identifier from the cluster's
	// leases (vni/), unless the user gave one.
	VNI bool
	// Interfaces: an endpoint is an interface in the sandbox, with
	// addresses from the network's subnets. Without, the sandbox has no
	// endpoint on the network (none) or uses the host's stack (host).
	Interfaces bool
	// Exclusive: a sandbox on such a network is on no other.
	Exclusive bool
	// Singleton: users cannot create networks of the driver; its
	// predefined network is the only one.
	Singleton bool
	// HostNamespace: a sandbox on such a network is the host's own network
	// namespace (Docker's --net host): no interface, no address, no rule.
	HostNamespace bool
	// DefaultRank ranks the driver's predefined network as the network of
	// a sandbox created without one: the highest rank wins (Docker's
	// default bridge over none); 0 never.
	DefaultRank int
}

// Driver is one kind of network.
type Driver interface {
	// Name is the driver's name, as given to network create -d.
	Name() string
	// Capabilities are the same for every network of the driver.
	Capabilities() Capabilities
	// Options lists the -o keys the driver knows.
	Options() []string
	// Configure checks the options and settings of a network about to be
	// created and records the driver's settings in it (VNI, MTU, Bridge).
	// others are the other networks of this host, for the uniqueness the
	// driver owns (a bridge's device name). It fails with ErrInvalid.
	Configure(n *Network, others []*Network) error
	// CheckJoin says whether a sandbox may join the network: nil, or an
	// ErrInvalid saying why not.
	CheckJoin(n *Network) error
	// MTU is the MTU the network's interfaces get on this host; 0 when
	// its sandboxes get none (or the datapath works it out).
	MTU(n *Network) int
	// Render returns the kernel state this host needs for the network,
	// given its endpoints here and elsewhere; ok is false when it needs
	// none (no local endpoint, and nothing the host must always have).
	Render(v View) (k datapath.Network, ok bool)
}

// View is what Render sees of one network on this host.
type View struct {
	Network *Network
	// Local are the endpoints joined to sandboxes on this host, in the
	// order they joined; the agent decides which carries the sandbox's
	// default route (see ExternalConnectivity).
	Local []datapath.LocalEndpoint
	// Remote are the network's endpoints on other hosts, as gossip tells.
	Remote []datapath.RemoteEndpoint
}

// Predefiner is a driver with networks every host has from the start,
// like Docker's bridge, host and none. They are local, cannot be removed,
// and keep their ids across restarts.
type Predefiner interface {
	// Predefined returns the driver's predefined networks as they should
	// be now. old are the ones kept in the data dir, by name, so that a
	// network keeps its id and, where the configuration does not say
	// otherwise, its settings (the sandboxes use them).
	Predefined(old map[string]*Network) ([]*Network, error)
}

// ExternalConnectivity is a driver whose networks can carry a sandbox's
// default route out of the network (through the network's gateway).
type ExternalConnectivity interface {
	// DefaultRoute reports whether an endpoint on n may carry the
	// sandbox's default route. A sandbox has one per family: the agent
	// gives it to the first of the sandbox's endpoints for which this
	// holds.
	DefaultRoute(n *Network) bool
}

// ServiceDiscovery is a driver whose networks let sandboxes find each
// other by name (Docker: user-defined networks, not the default bridge).
type ServiceDiscovery interface {
	// Discoverable reports whether the endpoints of n resolve by name to
	// the other sandboxes of n.
	Discoverable(n *Network) bool
}

// ICCFilter is a driver whose networks may keep their sandboxes from
// talking to each other (Docker's icc=false), but for --link'ed pairs on
// the linked sandbox's exposed ports.
type ICCFilter interface {
	// ICC reports whether the sandboxes of n may talk to each other.
	ICC(n *Network) bool
}

// PortPublisher is a driver that can publish sandbox ports on the host
// (-p, -P): DNAT from the host's addresses to an endpoint on the network.
type PortPublisher interface {
	// CheckPublish says whether ports of endpoints on n can be published:
	// nil, or an ErrInvalid saying why not.
	CheckPublish(n *Network) error
}
