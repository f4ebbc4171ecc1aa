package datapath

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/meshnet/meshnet/sandbox"
)

// DefaultPort is the IANA VXLAN UDP port, used when Network.Port is 0.
const DefaultPort = 4789

// EncapOverhead is what VXLAN over IPv4 adds to a frame (outer IP 20 + UDP 8 +
// VXLAN 8 + inner Ethernet 14); with an IPv4 VTEP the overlay MTU defaults to
// underlay − 50.
const EncapOverhead = 50

// EncapOverhead6 is what VXLAN over IPv6 adds to a frame (outer IP 40 + UDP 8
// + VXLAN 8 + inner Ethernet 14); with an IPv6 VTEP the overlay MTU defaults
// to underlay − 70.
const EncapOverhead6 = 70

// EncapOverheadFor returns what VXLAN adds to a frame sent from the VTEP
// vtep: EncapOverhead for an IPv4 (or IPv4-mapped IPv6) address,
// EncapOverhead6 for an IPv6 one. An overlay network's default MTU is the
// underlay device's MTU minus this; callers that compute or bound an
// overlay MTU themselves should use it too.
func EncapOverheadFor(vtep netip.Addr) int {
	if vtep.Unmap().Is6() {
		return EncapOverhead6
	}
	return EncapOverhead
}

// DefaultLocalMTU is the MTU of a local network (VNI 0) when Network.MTU is 0.
const DefaultLocalMTU = 1500

// IsolationRulePriority is the priority of the IPv6 policy rules that keep
// networks without Forwarding from routing IPv6: one rule per such network
// with an IPv6 gateway, `ip -6 rule add priority 1000 iif BRIDGE
// prohibit`. It sits after the local table's rule (priority 0), so
// packets to the host's own addresses, the gateway among them, are still
// delivered, and before the main table's (32766), so nothing arriving on
// the bridge is routed elsewhere. The priority is reserved: every IPv6
// prohibit rule at it that names an input interface is taken for ours,
// and Apply deletes those whose interface is not the bridge of a desired
// network that wants one (such rules outlive the device they name).
const IsolationRulePriority = 1000

// maxVNI is the largest 24-bit VXLAN network identifier.
const maxVNI = 1<<24 - 1

var (
	// ErrForeignDevice reports a device that has one of our names but that
	// we did not create (no meshnet alias, another network's alias, or the
	// wrong type). It is never modified or deleted.
	ErrForeignDevice = errors.New("device exists and is not ours")
	// ErrConflict reports desired endpoints that contradict each other, such
	// as one MAC behind two VTEPs or one IP with two MACs.
	ErrConflict = errors.New("conflicting endpoints")
	// ErrInvalid reports a malformed desired state.
	ErrInvalid = errors.New("invalid desired state")
	// ErrSandboxGone reports a local endpoint whose sandbox path no longer
	// leads to its sandbox: it leads to the host's own namespace or to
	// something that is not a network namespace, or, for an endpoint
	// pinned with LocalEndpoint.SandboxID, it is missing or leads to
	// another namespace than the pinned one. Nothing inside it is touched.
	ErrSandboxGone = errors.New("sandbox namespace is gone")
)

// EndpointError is the failure of one local endpoint, the rest of its
// network having been applied. Apply and ApplyNetwork return it (joined
// with any others) so that a caller can tell whose failure it is: a
// sandbox joining a network fails for its own endpoint, not for another.
type EndpointError struct {
	Endpoint string // the endpoint's id
	Err      error
}

func (e *EndpointError) Error() string { return "endpoint " + e.Endpoint + ": " + e.Err.Error() }
func (e *EndpointError) Unwrap() error { return e.Err }

// Network is the desired state of one network on this host: an overlay
// network (VNI 1…16777215: a bridge with a VXLAN device) or a local network
// (VNI 0: a bridge alone, the host-local `bridge` driver's).
type Network struct {
	// ID is the network's id (cluster-wide for an overlay network, host-wide
	// for a local one); ownership marks derive from it.
	ID string
	// VNI is the VXLAN network identifier (1…16777215); the VXLAN device's
	// name derives from it. 0 makes a local network: no VXLAN device and no
	// remote endpoints.
	VNI uint32
	// Bridge is the name of the network's bridge (at most 15 bytes, a valid
	// link name); "" means BridgeName(VNI). A local network must name its
	// bridge. Renaming it replaces the bridge: the old one is deleted.
	Bridge string
	// VTEP is this host's underlay address; the underlay device is the one
	// holding it. An IPv4-mapped IPv6 address counts as IPv4. Unused by a
	// local network.
	VTEP netip.Addr
	// Port is the VXLAN UDP port; 0 means DefaultPort. Unused by a local
	// network.
	Port uint16
	// MTU of the bridge, VXLAN device and veths; 0 means the underlay
	// device's MTU minus EncapOverheadFor(VTEP) (50 over IPv4, 70 over
	// IPv6), or DefaultLocalMTU for a local network.
	MTU int
	// Gateway, when valid, is put on the bridge (address and prefix length)
	// and is the next hop of every local endpoint's default route.
	Gateway netip.Prefix
	// Gateway6 is the same for IPv6.
	Gateway6 netip.Prefix
	// Forwarding is whether the host routes packets that arrive on the
	// network's bridge: to other networks, to the underlay and beyond. The
	// host holds every network's gateway, so without this policy it would
	// route between networks; false (the zero value) isolates the network,
	// and its sandboxes reach only each other and the host's own
	// addresses. It is kernel state reconciled on every apply like any
	// other: net.ipv4.conf.BRIDGE.forwarding, and for a network with a
	// Gateway6, an IPv6 policy rule (see IsolationRulePriority), since
	// Linux has no per-interface switch for IPv6 forwarding. Forwarding
	// does not enable forwarding host-wide (net.ipv4.ip_forward,
	// net.ipv6.conf.all.forwarding); NAT is the caller's business.
	Forwarding bool
	// RouteLocalnet lets packets with a loopback source be routed out of
	// the bridge (net.ipv4.conf.BRIDGE.route_localnet): a connection to a
	// port published on the host's 127.0.0.1, once translated to a
	// sandbox's address, needs it. Whoever sets it must keep sandboxes
	// from reaching the host's loopback in return (package firewall does).
	RouteLocalnet bool
	// Remote lists endpoints on other hosts; a local network has none.
	Remote []RemoteEndpoint
	// Local lists endpoints attached to sandboxes on this host.
	Local []LocalEndpoint
}

// RemoteEndpoint is an endpoint on another host, reached through VTEP.
type RemoteEndpoint struct {
	IP   netip.Addr       // IPv4 address
	IP6  netip.Addr       // optional IPv6 address
	MAC  net.HardwareAddr // optional; MACFromIPv4(IP) when empty
	VTEP netip.Addr       // underlay address of the endpoint's host (not ours)
}

// LocalEndpoint is an endpoint attached to a sandbox on this host.
type LocalEndpoint struct {
	// ID is the endpoint's id; the host end of the veth is named after it.
	ID string
	// Sandbox is the path of the sandbox's network namespace
	// (/run/netns/NAME or /proc/PID/ns/net), opened anew on every apply.
	Sandbox string
	// SandboxID, when not zero, pins the endpoint to the namespace it
	// identifies, as sandbox.Identify returned it: an apply that finds Sandbox
	// missing or leading to another namespace (a reused PID, a name
	// mounted again) reports ErrSandboxGone for the endpoint and touches
	// nothing of it, in the sandbox or on the host. Zero leaves the
	// endpoint unpinned: whatever network namespace Sandbox leads to is
	// programmed, but never the host's own.
	SandboxID sandbox.NSID
	// IfName is the interface name inside the sandbox (eth0, eth1, …).
	IfName string
	// Addr is the IPv4 address with the subnet's prefix length.
	Addr netip.Prefix
	// Addr6 is an optional IPv6 address with prefix length.
	Addr6 netip.Prefix
	// MAC is optional; MACFromIPv4(Addr.Addr()) when empty.
	MAC net.HardwareAddr
	// Handoff: the runtime moves the sandbox end into its sandbox itself
	// (Docker's remote drivers): the pair is made with the sandbox end in
	// the host namespace, named IfName, with its MAC, MTU and alias, and
	// the datapath never looks inside the sandbox; the runtime sets its
	// name there, addresses and routes. Sandbox is then informational.
	Handoff bool
	// DefaultRoute asks for the sandbox's default routes via the network's
	// gateways through this interface. A sandbox has one default route per
	// family, so the caller sets it on at most one of a sandbox's endpoints;
	// without it, default routes through this interface are removed.
	DefaultRoute bool
}

// MACFromIPv4 returns the MAC meshnet gives an endpoint with IPv4 address ip:
// 02:6d followed by the four bytes of the address (locally administered,
// unicast). It returns nil when ip is not IPv4.
func MACFromIPv4(ip netip.Addr) net.HardwareAddr {
	if !ip.Is4() && !ip.Is4In6() {
		return nil
	}
	b := ip.Unmap().As4()
	return net.HardwareAddr{0x02, 0x6d, b[0], b[1], b[2], b[3]}
}

// BridgeName returns the default name of the bridge of the overlay network
// with the given VNI (see Network.Bridge).
func BridgeName(vni uint32) string { return fmt.Sprintf(BridgePrefix+"%d", vni) }

// BridgePrefix begins the name of every overlay network's bridge.
const BridgePrefix = "mnbr-"

// VXLANName returns the name of the VXLAN device of the network with the
// given VNI.
func VXLANName(vni uint32) string { return fmt.Sprintf("mnvx-%d", vni) }

// VethName returns the name of the host end of a local endpoint's veth pair.
func VethName(networkID, endpointID string) string {
	sum := sha256.Sum256([]byte(networkID + "/" + endpointID))
	return "mnve" + hex.EncodeToString(sum[:])[:10]
}

const aliasPrefix = "meshnet:net="

// networkAlias is the alias marking the bridge and VXLAN device of a network.
func networkAlias(networkID string) string { return aliasPrefix + networkID }

// endpointAlias marks both ends of a local endpoint's veth pair.
func endpointAlias(networkID, endpointID string) string {
	return aliasPrefix + networkID + ":ep=" + endpointID
}

// OwnsAlias reports whether a link alias marks a device this package made
// (see `ip link show`), so that callers can tell our devices from others.
func OwnsAlias(alias string) bool {
	_, _, ok := parseAlias(alias)
	return ok
}

// parseAlias splits one of our aliases; ok is false for anything else.
func parseAlias(alias string) (networkID, endpointID string, ok bool) {
	rest, found := strings.CutPrefix(alias, aliasPrefix)
	if !found || rest == "" {
		return "", "", false
	}
	networkID, endpointID, _ = strings.Cut(rest, ":ep=")
	return networkID, endpointID, true
}

// local reports a local network: a bridge without a VXLAN device.
func (n *Network) local() bool { return n.VNI == 0 }

// bridgeName is the name of n's bridge.
// BridgeName is the name of n's bridge: Bridge, or BridgeName(VNI).
func (n *Network) BridgeName() string { return n.bridgeName() }

func (n *Network) bridgeName() string {
	if n.Bridge != "" {
		return n.Bridge
	}
	return BridgeName(n.VNI)
}

// deviceNames are the names of n's bridge and, for an overlay network, its
// VXLAN device.
func (n *Network) deviceNames() []string {
	if n.local() {
		return []string{n.bridgeName()}
	}
	return []string{n.bridgeName(), VXLANName(n.VNI)}
}

func (n *Network) port() int {
	if n.Port == 0 {
		return DefaultPort
	}
	return int(n.Port)
}

// vtep is the local VTEP with an IPv4-mapped address unmapped.
func (n *Network) vtep() netip.Addr { return n.VTEP.Unmap() }

// encapOverhead is what the network's encapsulation adds to a frame.
func (n *Network) encapOverhead() int { return EncapOverheadFor(n.VTEP) }

// isolated6 reports whether n wants its IPv6 isolation rule: an IPv6
// gateway on a network that does not forward.
func (n *Network) isolated6() bool { return !n.Forwarding && n.Gateway6.IsValid() }

// vtep is the endpoint's VTEP with an IPv4-mapped address unmapped.
func (e *RemoteEndpoint) vtep() netip.Addr { return e.VTEP.Unmap() }

func (e *RemoteEndpoint) mac() net.HardwareAddr {
	if len(e.MAC) != 0 {
		return e.MAC
	}
	return MACFromIPv4(e.IP)
}

func (e *LocalEndpoint) mac() net.HardwareAddr {
	if len(e.MAC) != 0 {
		return e.MAC
	}
	return MACFromIPv4(e.Addr.Addr())
}

// validate checks what the whole network depends on; endpoint problems are
// reported per endpoint while applying, so that one bad entry does not stop
// the rest.
func (n *Network) validate() error {
	switch {
	case n.ID == "" || strings.ContainsAny(n.ID, ":\x00"):
		return fmt.Errorf("%w: network id %q", ErrInvalid, n.ID)
	case n.VNI > maxVNI:
		return fmt.Errorf("%w: network %s: VNI %d out of range", ErrInvalid, n.ID, n.VNI)
	case n.Bridge != "" && !validLinkName(n.Bridge):
		return fmt.Errorf("%w: network %s: bridge name %q", ErrInvalid, n.ID, n.Bridge)
	case n.local() && n.Bridge == "":
		return fmt.Errorf("%w: local network %s: no bridge name", ErrInvalid, n.ID)
	case n.local() && len(n.Remote) != 0:
		return fmt.Errorf("%w: local network %s: has remote endpoints", ErrInvalid, n.ID)
	case !n.local() && !n.vtep().IsValid():
		return fmt.Errorf("%w: network %s: no VTEP address", ErrInvalid, n.ID)
	case n.MTU < 0 || (n.MTU > 0 && n.MTU < 68):
		return fmt.Errorf("%w: network %s: MTU %d", ErrInvalid, n.ID, n.MTU)
	case n.Gateway.IsValid() && !n.Gateway.Addr().Is4():
		return fmt.Errorf("%w: network %s: gateway %s is not IPv4", ErrInvalid, n.ID, n.Gateway)
	case n.Gateway6.IsValid() && !n.Gateway6.Addr().Is6():
		return fmt.Errorf("%w: network %s: gateway %s is not IPv6", ErrInvalid, n.ID, n.Gateway6)
	}
	return nil
}

// validate checks e against the network's (unmapped) local VTEP.
func (e *RemoteEndpoint) validate(local netip.Addr) error {
	vtep := e.vtep()
	switch {
	case !e.IP.Is4():
		return fmt.Errorf("%w: remote endpoint IP %s is not IPv4", ErrInvalid, e.IP)
	case e.IP6.IsValid() && !e.IP6.Is6():
		return fmt.Errorf("%w: remote endpoint %s: IPv6 address %s", ErrInvalid, e.IP, e.IP6)
	case !vtep.IsValid() || vtep.Is4() != local.Is4():
		return fmt.Errorf("%w: remote endpoint %s: VTEP %s is not of the local VTEP's family", ErrInvalid, e.IP, e.VTEP)
	case vtep.IsUnspecified() || vtep.IsMulticast():
		return fmt.Errorf("%w: remote endpoint %s: VTEP %s is not a unicast address", ErrInvalid, e.IP, e.VTEP)
	case vtep == local:
		return fmt.Errorf("%w: remote endpoint %s: VTEP %s is the local VTEP", ErrInvalid, e.IP, e.VTEP)
	case len(e.mac()) != 6: // a MAC that is set must have 6 bytes
		return fmt.Errorf("%w: remote endpoint %s: MAC %s", ErrInvalid, e.IP, e.MAC)
	}
	return nil
}

func (e *LocalEndpoint) validate() error {
	switch {
	case e.ID == "" || strings.ContainsRune(e.ID, 0):
		return fmt.Errorf("%w: local endpoint id %q", ErrInvalid, e.ID)
	case e.Sandbox == "" && !e.Handoff:
		return fmt.Errorf("%w: local endpoint %s: no sandbox", ErrInvalid, e.ID)
	case !validLinkName(e.IfName):
		return fmt.Errorf("%w: local endpoint %s: interface name %q", ErrInvalid, e.ID, e.IfName)
	case !e.Addr.IsValid() || !e.Addr.Addr().Is4():
		return fmt.Errorf("%w: local endpoint %s: address %s is not IPv4", ErrInvalid, e.ID, e.Addr)
	case e.Addr6.IsValid() && !e.Addr6.Addr().Is6():
		return fmt.Errorf("%w: local endpoint %s: address %s is not IPv6", ErrInvalid, e.ID, e.Addr6)
	case len(e.mac()) != 6: // a MAC that is set must have 6 bytes
		return fmt.Errorf("%w: local endpoint %s: MAC %s", ErrInvalid, e.ID, e.MAC)
	}
	return nil
}

// validLinkName reports whether the kernel takes name as it is for a link:
// 1–15 bytes, not "." or "..", no '/', ':' or white space (dev_valid_name),
// and no '%', which would make it a pattern the kernel fills in.
func validLinkName(name string) bool {
	return name != "" && len(name) <= 15 && name != "." && name != ".." &&
		!strings.ContainsAny(name, "/:% \t\n\v\f\r\x00")
}
