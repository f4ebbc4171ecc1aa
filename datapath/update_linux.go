package datapath

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// What the datapath remembers between applies, so that an update costs what
// changed rather than what the host holds (UpdateNetwork):
//
//   - per network (appliedNetwork): its device settings, the bridge's and
//     VXLAN device's ifindexes and the remote entries last programmed in
//     full. An update whose settings are unchanged, and whose devices are
//     still there under those indexes, skips the link, address, rule and
//     FDB/neighbour dumps and writes only the entries that differ;
//   - per local endpoint (appliedEndpoint): what it was programmed with. An
//     update leaves it alone when that is unchanged.
//
// A record is dropped whenever programming what it stands for fails, so the
// next apply redoes it; the periodic full ApplyNetwork checks everything
// against the kernel again and repairs what was changed behind our back.

// networkSpec is a network's desired state without its endpoints.
type networkSpec struct {
	vni                       uint32
	bridge                    string
	vtep                      netip.Addr
	port                      uint16
	mtu                       int
	gateway, gateway6         netip.Prefix
	forwarding, routeLocalnet bool
}

func (n *Network) spec() networkSpec {
	return networkSpec{vni: n.VNI, bridge: n.Bridge, vtep: n.VTEP, port: n.Port, mtu: n.MTU,
		gateway: n.Gateway, gateway6: n.Gateway6, forwarding: n.Forwarding, routeLocalnet: n.RouteLocalnet}
}

// appliedNetwork is a network as last applied in full without a device or
// remote-entry error.
type appliedNetwork struct {
	spec          networkSpec
	bridge, vxlan int // ifindexes; vxlan 0 for a local network
	mtu           int // the MTU in effect (n.MTU or derived from the underlay)
	remote        remoteWant
	// remoteSpec is the Remote list remote was computed from: an update
	// with the same list has no entry to write, and skips computing them.
	remoteSpec []RemoteEndpoint
}

// update applies n from the records, if they allow it: done reports
// whether they did (otherwise the caller applies n in full).
func (d *Datapath) update(n *Network) (done bool, err error) {
	a := d.nets[n.ID]
	if a == nil || a.spec != n.spec() {
		return false, nil
	}
	br := d.sameLink(n.bridgeName(), a.bridge)
	if br == nil {
		return false, nil
	}
	var errs []error
	if !n.local() {
		if d.sameLink(VXLANName(n.VNI), a.vxlan) == nil {
			return false, nil
		}
		if !sameRemotes(n.Remote, a.remoteSpec) {
			want, err := desiredRemote(n)
			errs = append(errs, err, d.updateRemote(a.vxlan, a.remote, want))
			if err := errors.Join(errs...); err != nil {
				delete(d.nets, n.ID) // the next apply dumps and compares
				errs = []error{err}
			} else {
				a.remote, a.remoteSpec = want, slices.Clone(n.Remote)
			}
		}
	}
	idx := &linkIndex{byName: map[string]netlink.Link{}}
	errs = append(errs, d.syncLocal(idx, n, br, a.mtu, true))
	return true, errors.Join(errs...)
}

// sameRemotes reports whether two Remote lists are the same, in the same
// order.
func sameRemotes(a, b []RemoteEndpoint) bool {
	return slices.EqualFunc(a, b, func(x, y RemoteEndpoint) bool {
		return x.IP == y.IP && x.IP6 == y.IP6 && x.VTEP == y.VTEP && bytes.Equal(x.MAC, y.MAC)
	})
}

// sameLink returns the link named name if it is still the device of
// ifindex index and up; nil otherwise.
func (d *Datapath) sameLink(name string, index int) netlink.Link {
	l, err := d.h.LinkByName(name)
	if err != nil || l.Attrs().Index != index || l.Attrs().Flags&net.FlagUp == 0 {
		return nil
	}
	return l
}

// updateRemote moves the VXLAN device's entries from have (what was
// programmed) to want, writing only the differences, in syncRemote's
// order: neighbours out, FDB entries out, FDB entries in, neighbours in.
func (d *Datapath) updateRemote(vx int, have, want remoteWant) error {
	var errs []error
	for ip := range have.neighs {
		if _, ok := want.neighs[ip]; !ok {
			errs = append(errs, d.delNeigh(vx, &netlink.Neigh{Family: family(ip), IP: net.IP(ip.AsSlice())}))
		}
	}
	for key, h := range have.fdb {
		if _, ok := want.fdb[key]; !ok {
			errs = append(errs, d.delFDB(vx, &netlink.Neigh{HardwareAddr: h.mac, IP: net.IP(h.vtep.AsSlice())}))
		}
	}
	for key, w := range want.fdb {
		if h := have.fdb[key]; h == nil || h.vtep != w.vtep {
			errs = append(errs, d.setFDB(vx, w.mac, w.vtep))
		}
	}
	for ip, mac := range want.neighs {
		if h, ok := have.neighs[ip]; !ok || !bytes.Equal(h, mac) {
			errs = append(errs, d.setNeigh(vx, ip, mac))
		}
	}
	return errors.Join(errs...)
}

// linkFor returns the link named name from idx, looking it up when idx is
// partial (an update's index starts empty); nil when there is none.
func (d *Datapath) linkFor(idx *linkIndex, name string, partial bool) (netlink.Link, error) {
	if l, ok := idx.byName[name]; ok || !partial {
		return l, nil
	}
	l, err := d.h.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			idx.byName[name] = nil
			return nil, nil
		}
		return nil, err
	}
	idx.byName[name] = l
	return l, nil
}

func family(ip netip.Addr) int {
	if ip.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}
