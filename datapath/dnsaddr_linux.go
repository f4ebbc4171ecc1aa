package datapath

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// DNSLabel marks the address on the host's loopback device where the
// agent answers DNS for Docker's containers (Docker forwards their
// questions to the servers of the daemon's dns setting). Loopback, since
// kernels without the dummy driver have it too; the label tells the
// address as ours.
const DNSLabel = "lo:meshnet"

// EnsureDNSAddress puts addr/32 on the loopback device, labelled
// DNSLabel, as the only address with that label, so that the host's own
// sockets can serve it and its containers reach it through their
// gateways. The zero addr removes it.
// Equivalent to: `ip addr replace ADDR/32 dev lo label lo:meshnet` (and
// `ip addr del` of another address of that label).
func (d *Datapath) EnsureDNSAddress(addr netip.Addr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if addr.IsValid() && (!addr.Is4() || addr.IsLoopback()) {
		return fmt.Errorf("%w: DNS address %s is not a unicast IPv4 address off the loopback range", ErrInvalid, addr)
	}
	lo, err := d.h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("reading lo: %w", err)
	}
	have, err := d.h.AddrList(lo, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("listing the addresses of lo: %w", err)
	}
	want := netip.PrefixFrom(addr, 32)
	found := false
	for _, a := range have {
		p, ok := prefixOf(a.IPNet)
		switch {
		case ok && p == want:
			found = true
		case a.Label == DNSLabel:
			if err := d.h.AddrDel(lo, &a); err != nil {
				return fmt.Errorf("deleting the former DNS address %s from lo: %w", p, err)
			}
		}
	}
	if found || !addr.IsValid() {
		return nil
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(32, 32)}, Label: DNSLabel}
	if err := d.h.AddrReplace(lo, a); err != nil {
		return fmt.Errorf("adding %s to lo: %w", want, err)
	}
	return nil
}

// ViaBridge reports whether the host reaches addr through a Linux bridge:
// it is a container's or a sandbox's on this host, not a machine of the
// underlay. It asks on a netlink handle of its own, so that a DNS client
// waits for no Apply.
// Equivalent to: `ip route get ADDR` and the type of its device.
func (d *Datapath) ViaBridge(addr netip.Addr) bool {
	d.viaMu.Lock()
	defer d.viaMu.Unlock()
	if d.via == nil {
		d.mu.Lock()
		closed, ns := d.closed, d.ns
		d.mu.Unlock()
		if closed {
			return false
		}
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			return false
		}
		d.via = h
	}
	routes, err := d.via.RouteGet(addr.AsSlice())
	if err != nil || len(routes) == 0 {
		return false
	}
	l, err := d.via.LinkByIndex(routes[0].LinkIndex)
	return err == nil && l.Type() == "bridge"
}
