package sandbox

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/meshnet/meshnet/internal/netlinksafe"
)

// Interfaces lists the network interfaces inside the network namespace file
// path (RunDir/NAME or /proc/PID/ns/net) with their addresses, in kernel
// order.
// Equivalent to: `ip -n NAME addr show`.
func Interfaces(path string) ([]Interface, error) {
	h, err := netlinkAt(path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := netlinksafe.Dump("links in "+path, h.LinkList)
	if err != nil {
		return nil, err
	}
	addrs, err := netlinksafe.Dump("addresses in "+path, func() ([]netlink.Addr, error) { return h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, err
	}
	ifaces := make([]Interface, 0, len(links))
	byIndex := make(map[int]int, len(links)) // link index → position in ifaces
	for _, l := range links {
		a := l.Attrs()
		byIndex[a.Index] = len(ifaces)
		ifaces = append(ifaces, Interface{
			Index: a.Index,
			Name:  a.Name,
			MAC:   a.HardwareAddr,
			MTU:   a.MTU,
			Up:    a.Flags&net.FlagUp != 0,
		})
	}
	for _, a := range addrs {
		i, ok := byIndex[a.LinkIndex]
		if !ok || a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		bits, _ := a.Mask.Size()
		ifaces[i].Addrs = append(ifaces[i].Addrs, netip.PrefixFrom(ip.Unmap(), bits))
	}
	return ifaces, nil
}
