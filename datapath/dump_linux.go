package datapath

import (
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/meshnet/meshnet/internal/netlinksafe"
)

// listLinks lists every link. Equivalent to: `ip -d link show`.
func listLinks(h *netlink.Handle) ([]netlink.Link, error) {
	return netlinksafe.Dump("links", h.LinkList)
}

// listAddrs lists the addresses of link (nil: all links) in family.
// Equivalent to: `ip addr show [dev LINK]`.
func listAddrs(h *netlink.Handle, link netlink.Link, family int) ([]netlink.Addr, error) {
	return netlinksafe.Dump("addresses", func() ([]netlink.Addr, error) { return h.AddrList(link, family) })
}

// listFDB lists the VXLAN device's own forwarding entries, leaving out the
// bridge's entries for the port ("master" entries).
// Equivalent to: `bridge fdb show dev VXLAN self`.
func listFDB(h *netlink.Handle, index int) ([]netlink.Neigh, error) {
	all, err := netlinksafe.Dump("fdb entries", func() ([]netlink.Neigh, error) {
		return h.NeighList(index, unix.AF_BRIDGE)
	})
	if err != nil {
		return nil, err
	}
	own := all[:0]
	for _, n := range all {
		if n.Flags&netlink.NTF_SELF != 0 && n.Flags&netlink.NTF_MASTER == 0 && n.MasterIndex == 0 {
			own = append(own, n)
		}
	}
	return own, nil
}

// listNeighs lists the neighbour entries of a link in family (AF_UNSPEC:
// every family). Equivalent to: `ip neigh show dev LINK`.
func listNeighs(h *netlink.Handle, index, family int) ([]netlink.Neigh, error) {
	return netlinksafe.Dump("neighbours", func() ([]netlink.Neigh, error) {
		return h.NeighList(index, family)
	})
}

// listRoutes lists the routes through link in family.
// Equivalent to: `ip route show dev LINK`.
func listRoutes(h *netlink.Handle, link netlink.Link, family int) ([]netlink.Route, error) {
	return netlinksafe.Dump("routes", func() ([]netlink.Route, error) { return h.RouteList(link, family) })
}
