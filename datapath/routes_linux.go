package datapath

import (
	"net/netip"

	"github.com/vishvananda/netlink"
)

// RoutedPrefixes lists the IPv4 and IPv6 destinations the host (the
// calling thread's namespace) routes, other than default routes,
// link-local ones and meshnet's own bridges', so that automatic local
// subnets can avoid them. It returns nil when the routes cannot be read.
// Equivalent to: `ip route show; ip -6 route show`.
func RoutedPrefixes() []netip.Prefix {
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
	return isBridge && OwnsAlias(l.Attrs().Alias)
}
