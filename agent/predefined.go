package agent

// The predefined networks every host has, like Docker's: "bridge" (the
// default bridge, device mesh0 unless --bridge says otherwise or none),
// "host" (the host's own stack) and "none" (loopback only). They are local,
// kept in the data dir with stable ids, and cannot be removed.

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/ipam"
)

// defaultBIPs are tried in order for the default bridge when --bip is not
// given: the first that overlaps no route of the host.
var defaultBIPs = func() []netip.Prefix {
	var out []netip.Prefix
	for i := 17; i <= 31; i++ {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(i), 0, 1}), 16))
	}
	return out
}()

func (a *Agent) ensurePredefined() error {
	a.mu.Lock()
	byName := map[string]*networkRecord{}
	for _, n := range a.networks {
		if n.Predefined {
			byName[n.Name] = n
		}
	}
	a.mu.Unlock()
	add := func(n *networkRecord) {
		a.mu.Lock()
		a.networks[n.ID] = n
		a.mu.Unlock()
	}
	for _, p := range []struct{ name, driver string }{{"host", api.DriverHost}, {"none", api.DriverNull}} {
		if byName[p.name] == nil {
			add(&networkRecord{ID: newID(), Name: p.name, Driver: p.driver, Scope: api.ScopeLocal,
				Created: time.Now().UTC(), Predefined: true})
		}
	}
	old := byName["bridge"]
	if a.cfg.Bridge == "none" {
		if old != nil {
			a.mu.Lock()
			delete(a.networks, old.ID)
			a.mu.Unlock()
		}
		return a.saveState()
	}
	bip := a.cfg.BIP
	if !bip.IsValid() && old != nil && old.Bridge == a.cfg.Bridge {
		bip = old.gatewayPrefix(true) // keep what the sandboxes use
	}
	if !bip.IsValid() {
		routes := hostRoutes()
		for _, p := range defaultBIPs {
			if !slices.ContainsFunc(routes, func(r netip.Prefix) bool { return r.Overlaps(p.Masked()) }) {
				bip = p
				break
			}
		}
		if !bip.IsValid() {
			return errors.New("no free subnet for the default bridge in 172.17.0.0/16–172.31.0.0/16: set --bip or --bridge none")
		}
	}
	sc, err := ipam.SubnetConfig{Subnet: bip.Masked(), Gateway: bip.Addr()}.Normalize()
	if err != nil {
		return err
	}
	n := &networkRecord{ID: newID(), Name: "bridge", Driver: api.DriverBridge, Scope: api.ScopeLocal,
		Created: time.Now().UTC(), Predefined: true, Bridge: a.cfg.Bridge, Subnets: []ipam.SubnetConfig{sc},
		MTU: a.cfg.MTU, IPAMDriver: "default"}
	if old != nil {
		n.ID, n.Created = old.ID, old.Created
	}
	add(n)
	return a.saveState()
}

// defaultBridge returns the predefined bridge network, if any. The caller
// holds mu.
func (a *Agent) defaultBridge() *networkRecord {
	for _, n := range a.networks {
		if n.Predefined && n.Driver == api.DriverBridge {
			return n
		}
	}
	return nil
}

// hostRoutes lists the IPv4 and IPv6 destinations the host routes, other
// than default routes and the predefined bridge's own, so that automatic
// local subnets avoid them.
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
	return isBridge && strings.HasPrefix(l.Attrs().Alias, "meshnet:")
}
