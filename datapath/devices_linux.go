package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var errNoDevice = unix.ENODEV

// ensureBridge creates or repairs the network's bridge (called BRIDGE below:
// Network.Bridge or mnbr-VNI) and its policy (see ensurePolicy), which a new
// bridge gets before it is up. A bridge of that name that is not ours, such
// as an administrator's own, is reported as ErrForeignDevice and left alone,
// policy and all.
// Equivalent to: `ip link add BRIDGE type bridge; ip link set BRIDGE
// alias meshnet:net=ID mtu MTU address GWMAC up; ip addr replace GW dev BRIDGE`.
func (d *Datapath) ensureBridge(idx *linkIndex, n *Network, mtu int, rules isolationRules) (netlink.Link, error) {
	name, alias := n.bridgeName(), networkAlias(n.ID)
	var mac net.HardwareAddr
	if n.Gateway.IsValid() {
		mac = MACFromIPv4(n.Gateway.Addr())
	}
	var errs []error
	br := idx.byName[name]
	if br != nil {
		if err := checkOwned(br, "bridge", alias); err != nil {
			return nil, err
		}
		errs = append(errs, d.ensurePolicy(name, n, rules))
	} else {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.Alias, attrs.MTU, attrs.HardwareAddr = name, alias, mtu, mac
		var err error
		if br, err = d.addLink(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			return nil, err
		}
		// A network is never up, even for a moment, without its policy:
		// isolated networks must not route.
		if err := d.ensurePolicy(name, n, rules); err != nil {
			return nil, errors.Join(err, d.delHalfMade(br, name))
		}
	}
	if mac != nil && !bytes.Equal(br.Attrs().HardwareAddr, mac) {
		if err := d.h.LinkSetHardwareAddr(br, mac); err != nil {
			errs = append(errs, fmt.Errorf("setting address of %s: %w", name, err))
		}
	}
	errs = append(errs, ensureMTUUp(d.h, br, mtu))
	errs = append(errs, syncAddrs(d.h, br, n.Gateway, n.Gateway6))
	return br, errors.Join(errs...)
}

// ensureVXLAN creates or repairs the network's VXLAN device; fresh reports a
// device created by this call (and so without entries). A device of ours
// whose VXLAN parameters differ is deleted and recreated, as they cannot all
// be changed in place.
// Equivalent to: `ip link add mnvx-VNI type vxlan id VNI dstport PORT local
// VTEP dev UNDERLAY nolearning proxy; ip link set mnvx-VNI alias
// meshnet:net=ID mtu MTU master BRIDGE up`.
func (d *Datapath) ensureVXLAN(idx *linkIndex, n *Network, under, br netlink.Link, mtu int) (vx netlink.Link, fresh bool, err error) {
	name, alias := VXLANName(n.VNI), networkAlias(n.ID)
	want := &netlink.Vxlan{
		LinkAttrs:    netlink.NewLinkAttrs(),
		VxlanId:      int(n.VNI),
		VtepDevIndex: under.Attrs().Index,
		SrcAddr:      net.IP(n.VTEP.AsSlice()),
		Port:         n.port(),
		Proxy:        true,
	}
	want.Name, want.Alias, want.MTU = name, alias, mtu
	if vx = idx.byName[name]; vx != nil {
		if err := checkOwned(vx, "vxlan", alias); err != nil {
			return nil, false, err
		}
		if sameVXLAN(vx.(*netlink.Vxlan), want) {
			return vx, false, d.attach(vx, br, mtu)
		}
		if err := d.h.LinkDel(vx); err != nil && !isNotFound(err) {
			return nil, false, fmt.Errorf("deleting outdated %s: %w", name, err)
		}
	}
	if vx, err = d.addLink(want); err != nil {
		return nil, false, err
	}
	return vx, true, d.attach(vx, br, mtu)
}

// addLink creates l and marks it ours. The kernel ignores an alias given at
// creation, so it is set right after; should that fail, the device is deleted
// again rather than left unmarked (an unmarked device is foreign to the next
// Apply). Callers enslave it afterwards: LinkAdd with a master is two
// requests, and a failure between them would leave an unmarked device.
// Equivalent to: `ip link add NAME type TYPE …; ip link set NAME alias A`.
func (d *Datapath) addLink(l netlink.Link) (netlink.Link, error) {
	name, alias := l.Attrs().Name, l.Attrs().Alias
	if err := d.h.LinkAdd(l); err != nil {
		return nil, fmt.Errorf("adding %s %s: %w", l.Type(), name, err)
	}
	made, err := d.h.LinkByName(name)
	if err == nil {
		err = d.h.LinkSetAlias(made, alias)
	}
	if err != nil {
		err = fmt.Errorf("marking %s %s: %w", l.Type(), name, err)
		return nil, errors.Join(err, d.delHalfMade(made, name))
	}
	made.Attrs().Alias = alias
	return made, nil
}

// delHalfMade deletes a device made but not fully marked: made
// when the lookup after creation succeeded, else the device called name.
// Equivalent to: `ip link del NAME`.
func (d *Datapath) delHalfMade(made netlink.Link, name string) error {
	if made == nil {
		var err error
		if made, err = d.h.LinkByName(name); err != nil {
			if isNotFound(err) {
				return nil
			}
			return fmt.Errorf("reading half-made %s to delete it: %w", name, err)
		}
	}
	if err := d.h.LinkDel(made); err != nil && !isNotFound(err) {
		return fmt.Errorf("deleting half-made %s: %w", name, err)
	}
	return nil
}

// sameVXLAN compares the parameters that ensureVXLAN sets at creation.
func sameVXLAN(have, want *netlink.Vxlan) bool {
	return have.VxlanId == want.VxlanId &&
		have.VtepDevIndex == want.VtepDevIndex &&
		have.SrcAddr.Equal(want.SrcAddr) &&
		have.Port == want.Port &&
		have.Learning == want.Learning &&
		have.Proxy == want.Proxy &&
		(len(have.Group) == 0 || have.Group.IsUnspecified())
}

// attach enslaves l to br and sets its MTU and state.
// Equivalent to: `ip link set DEV master BRIDGE mtu MTU up`.
func (d *Datapath) attach(l, br netlink.Link, mtu int) error {
	if l.Attrs().MasterIndex != br.Attrs().Index {
		if err := d.h.LinkSetMasterByIndex(l, br.Attrs().Index); err != nil {
			return fmt.Errorf("enslaving %s to %s: %w", l.Attrs().Name, br.Attrs().Name, err)
		}
	}
	return ensureMTUUp(d.h, l, mtu)
}

// ensureMTUUp sets l's MTU and brings it up where needed.
// Equivalent to: `ip link set DEV mtu MTU up`.
func ensureMTUUp(h *netlink.Handle, l netlink.Link, mtu int) error {
	if l.Attrs().MTU != mtu {
		if err := h.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("setting mtu of %s: %w", l.Attrs().Name, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("setting %s up: %w", l.Attrs().Name, err)
		}
	}
	return nil
}

// syncAddrs makes the valid ones of want the only global addresses of l
// (link-local addresses are the kernel's and are kept). IPv6 addresses are
// added without duplicate address detection: meshnet's addresses are leased
// (cluster-wide for overlay networks, host-wide for local ones).
// Equivalent to: `ip addr replace ADDR dev DEV [nodad]` and `ip addr del`.
func syncAddrs(h *netlink.Handle, l netlink.Link, want ...netip.Prefix) error {
	have, err := listAddrs(h, l, netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	var errs []error
	present := make(map[netip.Prefix]bool, len(have))
	for i := range have {
		a := &have[i]
		p, ok := prefixOf(a.IPNet)
		if !ok || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		present[p] = true
		if !containsPrefix(want, p) {
			if err := h.AddrDel(l, a); err != nil {
				errs = append(errs, fmt.Errorf("deleting address %s from %s: %w", p, l.Attrs().Name, err))
			}
		}
	}
	for _, p := range want {
		if !p.IsValid() || present[p] {
			continue
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrReplace(l, a); err != nil {
			errs = append(errs, fmt.Errorf("adding address %s to %s: %w", p, l.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}

func containsPrefix(list []netip.Prefix, p netip.Prefix) bool {
	for _, q := range list {
		if q.IsValid() && q == p {
			return true
		}
	}
	return false
}
