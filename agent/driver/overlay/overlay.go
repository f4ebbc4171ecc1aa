// Package overlay is the driver of global overlay networks: one flat L2
// segment across every host, a Linux bridge and a VXLAN device per network
// on each host with a sandbox on it, FDB and neighbour entries per remote
// endpoint (the datapath package github.com/meshnet/meshnet/overlay does
// the kernel work). Networks live in the cluster store and take a VNI and
// their subnets from the cluster's leases.
package overlay

import (
	"net/netip"
	"slices"
	"strconv"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/datapath"
)

// Name is the driver's name.
const Name = "overlay"

// Options of the driver.
const (
	OptVNI     = "com.docker.network.driver.overlay.vxlanid_list"
	OptVNIAbbr = "vni"
)

// Host is what the driver needs to know of this host.
type Host struct {
	VTEP        netip.Addr // underlay address: VXLAN source and gossip address
	Port        uint16     // VXLAN UDP port
	UnderlayMTU int        // MTU of the device holding the VTEP; 0 if unknown
}

// Driver is the overlay driver.
type Driver struct{ host Host }

var (
	_ driver.Driver               = (*Driver)(nil)
	_ driver.ExternalConnectivity = (*Driver)(nil)
	_ driver.ServiceDiscovery     = (*Driver)(nil)
	_ driver.PortPublisher        = (*Driver)(nil)
)

// New returns the driver for this host.
func New(h Host) *Driver { return &Driver{host: h} }

func (d *Driver) Name() string { return Name }

func (d *Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Scope: driver.ScopeGlobal, VNI: true, Interfaces: true}
}

func (d *Driver) Options() []string {
	return []string{driver.OptMTU, driver.OptMTUAbbr, OptVNI, OptVNIAbbr}
}

// Configure reads the MTU (at most what the underlay leaves after the
// VXLAN header) and a requested VNI.
func (d *Driver) Configure(n *driver.Network, _ []*driver.Network) error {
	if err := driver.CheckOptions(Name, n.Options, d.Options()); err != nil {
		return err
	}
	for k, v := range n.Options {
		switch k {
		case driver.OptMTU, driver.OptMTUAbbr:
			mtu, err := driver.ParseMTU(v, 0)
			if err != nil {
				return err
			}
			if max := d.maxMTU(); max > 0 && mtu > max {
				return driver.Invalid("MTU %d is too large for an overlay network: the underlay MTU %d leaves at most %d after the VXLAN header",
					mtu, d.host.UnderlayMTU, max)
			}
			n.MTU = mtu
		case OptVNI, OptVNIAbbr:
			vni, err := strconv.ParseUint(v, 10, 32)
			if err != nil || vni < 1 || vni > uint64(ipam.DefaultVNIMax) {
				return driver.Invalid("invalid VNI %q: give one number from 1 to %d", v, ipam.DefaultVNIMax)
			}
			n.VNI = uint32(vni)
		}
	}
	return nil
}

// maxMTU is the largest frame the underlay carries after encapsulation.
func (d *Driver) maxMTU() int {
	if d.host.UnderlayMTU <= 0 {
		return 0
	}
	return d.host.UnderlayMTU - datapath.EncapOverheadFor(d.host.VTEP)
}

func (d *Driver) CheckJoin(*driver.Network) error { return nil }

// MTU is the user's, else what the underlay leaves after the VXLAN
// header; 0 if the underlay's is unknown (the datapath works it out).
func (d *Driver) MTU(n *driver.Network) int {
	if n.MTU != 0 {
		return n.MTU
	}
	return d.maxMTU()
}

// Render gives the network its bridge and VXLAN device on a host with a
// sandbox on it, with an FDB and a neighbour entry per remote endpoint.
// The MTU is the user's, else what the underlay leaves after the VXLAN
// header. The host routes out of it (egress through this host, isolated
// from other networks by the packet filter), unless it is internal.
func (d *Driver) Render(v driver.View) (datapath.Network, bool) {
	n := v.Network
	if len(v.Local) == 0 {
		return datapath.Network{}, false
	}
	return datapath.Network{ID: n.ID, VNI: n.VNI, VTEP: d.host.VTEP, Port: d.host.Port, MTU: d.MTU(n), Forwarding: !n.Internal, RouteLocalnet: !n.Internal,
		Gateway: n.Gateway(true), Gateway6: n.Gateway(false),
		Local: slices.Clone(v.Local), Remote: slices.Clone(v.Remote)}, true
}

// DefaultRoute: through the distributed gateway, unless internal.
func (d *Driver) DefaultRoute(n *driver.Network) bool {
	return !n.Internal && n.Gateway(true).IsValid()
}

// Discoverable: every overlay network.
func (d *Driver) Discoverable(*driver.Network) bool { return true }

// CheckPublish: ports of sandboxes on the network are published on the
// host (DNAT by the packet filter), unless the network is internal.
func (d *Driver) CheckPublish(n *driver.Network) error {
	if n.Internal {
		return driver.Invalid("network %s is internal: its sandboxes cannot publish ports", n.Name)
	}
	return nil
}
