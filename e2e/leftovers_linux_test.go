package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/testenv/cluster"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// datapathLeft lists what is left of meshnet's datapath in a host's
// namespace: any device but lo and the underlay's eth0 (bridges mnbr-*,
// VXLAN devices mnvx-*, veths), neighbour and FDB entries on such
// devices or permanent ones anywhere, and routes through them.
func datapathLeft(h *cluster.Host) ([]string, error) {
	nl, err := h.Netlink()
	if err != nil {
		return nil, err
	}
	defer nl.Close()
	links, err := nl.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links of %s: %w", h.Node, err)
	}
	base := map[int]bool{}
	var left []string
	for _, l := range links {
		a := l.Attrs()
		if a.Name == "lo" || a.Name == nshost.HostDev {
			base[a.Index] = true
			continue
		}
		left = append(left, fmt.Sprintf("device %s (%s)", a.Name, l.Type()))
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6, unix.AF_BRIDGE} {
		neighs, err := nl.NeighList(0, fam)
		if err != nil {
			return nil, fmt.Errorf("listing neighbours of %s: %w", h.Node, err)
		}
		for _, n := range neighs {
			onBase := base[n.LinkIndex]
			switch {
			case fam == unix.AF_BRIDGE && !onBase:
				left = append(left, fmt.Sprintf("fdb entry %s dst %s on link %d", n.HardwareAddr, n.IP, n.LinkIndex))
			case fam != unix.AF_BRIDGE && (!onBase || n.State&netlink.NUD_PERMANENT != 0):
				left = append(left, fmt.Sprintf("neighbour %s lladdr %s on link %d", n.IP, n.HardwareAddr, n.LinkIndex))
			}
		}
	}
	routes, err := nl.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("listing routes of %s: %w", h.Node, err)
	}
	for _, r := range routes {
		if !base[r.LinkIndex] {
			left = append(left, "route "+r.String())
		}
	}
	return left, nil
}

// networkLeft lists what is left in a host's namespace of one overlay
// network while others remain: its devices (named …-VNI, like mnbr-4096
// and mnvx-4096), and neighbour entries and routes in its subnet.
func networkLeft(h *cluster.Host, vni uint32, subnet netip.Prefix) ([]string, error) {
	nl, err := h.Netlink()
	if err != nil {
		return nil, err
	}
	defer nl.Close()
	links, err := nl.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links of %s: %w", h.Node, err)
	}
	var left []string
	suffix := "-" + strconv.FormatUint(uint64(vni), 10)
	for _, l := range links {
		if strings.HasSuffix(l.Attrs().Name, suffix) {
			left = append(left, fmt.Sprintf("device %s (%s)", l.Attrs().Name, l.Type()))
		}
	}
	neighs, err := nl.NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("listing neighbours of %s: %w", h.Node, err)
	}
	for _, n := range neighs {
		if ip, ok := netip.AddrFromSlice(n.IP); ok && subnet.Contains(ip.Unmap()) {
			left = append(left, fmt.Sprintf("neighbour %s lladdr %s on link %d", n.IP, n.HardwareAddr, n.LinkIndex))
		}
	}
	routes, err := nl.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("listing routes of %s: %w", h.Node, err)
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(r.Dst.IP); ok && subnet.Contains(ip.Unmap()) {
			left = append(left, "route "+r.String())
		}
	}
	return left, nil
}

// globalPrefixes are the store's subtrees of network state (docs/design.md §4).
var globalPrefixes = []string{"networks/", "names/", "vni/", "subnets/", "ips/"}

// storeKeys lists the keys (and values) of the network state subtrees.
func storeKeys(ctx context.Context, kv kvstore.Store) (map[string]string, error) {
	keys := map[string]string{}
	for _, p := range globalPrefixes {
		kvs, _, err := kv.List(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", p, err)
		}
		for _, e := range kvs {
			keys[e.Key] = string(e.Value)
		}
	}
	return keys, nil
}

// storeLeft lists the keys of the network state that still belong to the
// network with this id and name.
func storeLeft(ctx context.Context, kv kvstore.Store, id, name string) ([]string, error) {
	keys, err := storeKeys(ctx, kv)
	if err != nil {
		return nil, err
	}
	var left []string
	for k, v := range keys {
		if k == "names/"+name || strings.Contains(k, id) || strings.Contains(v, id) {
			left = append(left, k)
		}
	}
	return left, nil
}
