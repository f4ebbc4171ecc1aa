package agent

// The predefined networks every host has, like Docker's: each driver that
// has some (driver.Predefiner) says which, from the agent's configuration.
// They are local, kept in the data dir with stable ids, and cannot be
// removed.

import (
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/datapath"
)

// ensurePredefined makes the predefined networks those the drivers want
// now, keeping ids (and what the drivers keep) of the ones in the data
// dir, and dropping those no driver wants any more.
func (a *Agent) ensurePredefined() error {
	for _, d := range a.drivers.All() {
		p, ok := d.(driver.Predefiner)
		if !ok {
			continue
		}
		a.mu.Lock()
		old := map[string]*driver.Network{}
		for _, n := range a.networks {
			if n.Predefined && n.Driver == d.Name() {
				old[n.Name] = n
			}
		}
		a.mu.Unlock()
		nets, err := p.Predefined(old)
		if err != nil {
			return err
		}
		a.mu.Lock()
		for _, n := range old {
			delete(a.networks, n.ID)
		}
		for _, n := range nets {
			if n.ID == "" {
				n.ID = newID()
			}
			a.networks[n.ID] = n
		}
		a.mu.Unlock()
	}
	return a.saveState()
}

// hostRoutes lists the IPv4 and IPv6 destinations the host routes, other
// than default routes and our own bridges', so that automatic local
// subnets avoid them.
func hostRoutes() []netip.Prefix {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		if ones == 0 {
			continue
		}
		addr, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok || addr.IsLinkLocalUnicast() {
			continue
		}
		if link, err := netlink.LinkByIndex(r.LinkIndex); err == nil && isOurBridge(link) {
			continue
		}
		out = append(out, netip.PrefixFrom(addr.Unmap(), ones).Masked())
	}
	return out
}

func isOurBridge(l netlink.Link) bool {
	_, isBridge := l.(*netlink.Bridge)
	return isBridge && datapath.OwnsAlias(l.Attrs().Alias)
}
