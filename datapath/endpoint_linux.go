package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/meshnet/meshnet/sandbox"
)

// syncLocal makes the veth pairs of n's local endpoints exactly the desired
// ones: it deletes ours that are no longer wanted and creates or repairs the
// others. One endpoint's failure does not stop the others.
//
// With partial (an update, see UpdateNetwork), idx starts empty and links
// are looked up by name as needed, the endpoints no longer wanted are
// those recorded for n, and an endpoint recorded with its current desired
// state is left alone: neither its veth nor its sandbox is looked at.
func (d *Datapath) syncLocal(idx *linkIndex, n *Network, br netlink.Link, mtu int, partial bool) error {
	var errs []error
	want := make(map[string]*LocalEndpoint, len(n.Local))
	for i := range n.Local {
		ep := &n.Local[i]
		if err := ep.validate(); err != nil {
			errs = append(errs, &EndpointError{Endpoint: ep.ID, Err: err})
			continue
		}
		if want[ep.ID] != nil {
			errs = append(errs, &EndpointError{Endpoint: ep.ID, Err: fmt.Errorf("%w: local endpoint %s listed twice", ErrInvalid, ep.ID)})
			continue
		}
		want[ep.ID] = ep
	}
	for _, l := range d.unwanted(idx, n, want, partial) {
		_, eid, _ := parseAlias(l.Attrs().Alias)
		delete(d.applied, endpointKey{n.ID, eid})
		// Equivalent to: `ip link del VETH` (takes the sandbox end along).
		if err := d.h.LinkDel(l); err != nil && !isNotFound(err) {
			errs = append(errs, &EndpointError{Endpoint: eid, Err: fmt.Errorf("deleting %s: %w", l.Attrs().Name, err)})
		}
	}
	for i := range n.Local {
		ep := &n.Local[i]
		if want[ep.ID] != ep {
			continue
		}
		key, spec := endpointKey{n.ID, ep.ID}, specOf(n, ep, br, mtu)
		if partial {
			if a, ok := d.applied[key]; ok && a == spec {
				continue
			}
			if _, err := d.linkFor(idx, VethName(n.ID, ep.ID), true); err != nil {
				errs = append(errs, &EndpointError{Endpoint: ep.ID, Err: err})
				continue
			}
		}
		if err := d.ensureEndpoint(idx, n, ep, br, mtu); err != nil {
			delete(d.applied, key)
			errs = append(errs, &EndpointError{Endpoint: ep.ID, Err: err})
			continue
		}
		d.applied[key] = spec
	}
	return errors.Join(errs...)
}

// unwanted returns the host ends of n's veths whose endpoints are not in
// want: from the full index, or, when it is partial, from the records.
func (d *Datapath) unwanted(idx *linkIndex, n *Network, want map[string]*LocalEndpoint, partial bool) []netlink.Link {
	var stale []netlink.Link
	if !partial {
		for _, l := range idx.all {
			nid, eid, ok := parseAlias(l.Attrs().Alias)
			if ok && nid == n.ID && eid != "" && want[eid] == nil {
				stale = append(stale, l)
			}
		}
		return stale
	}
	for key := range d.applied {
		if key.network != n.ID || want[key.endpoint] != nil {
			continue
		}
		l, err := d.linkFor(idx, VethName(n.ID, key.endpoint), true)
		if l == nil || err != nil || l.Attrs().Alias != endpointAlias(n.ID, key.endpoint) {
			delete(d.applied, key) // gone already, or not ours to delete
			continue
		}
		stale = append(stale, l)
	}
	return stale
}

// endpointKey names a local endpoint of a network.
type endpointKey struct{ network, endpoint string }

// endpointSpec is everything programming a local endpoint depends on: an
// endpoint recorded (Datapath.applied) with its current spec is, as far as
// an update is concerned, programmed.
type endpointSpec struct {
	sandbox        string
	sandboxID      sandbox.NSID
	ifName         string
	addr, addr6    netip.Prefix
	mac            string
	defaultRoute   bool
	gateway, gw6   netip.Prefix
	mtu, bridgeIdx int
}

func specOf(n *Network, ep *LocalEndpoint, br netlink.Link, mtu int) endpointSpec {
	return endpointSpec{sandbox: ep.Sandbox, sandboxID: ep.SandboxID, ifName: ep.IfName, addr: ep.Addr, addr6: ep.Addr6,
		mac: ep.mac().String(), defaultRoute: ep.DefaultRoute, gateway: n.Gateway, gw6: n.Gateway6,
		mtu: mtu, bridgeIdx: br.Attrs().Index}
}

// ensureEndpoint creates or repairs one local endpoint. The sandbox is
// opened once and checked (see openSandbox), then programmed through that
// descriptor only: the netlink socket opened in it, the veth's peer
// namespace and the ARP sysctl. A sandbox that is gone is reported before
// anything is touched, in it or on the host.
func (d *Datapath) ensureEndpoint(idx *linkIndex, n *Network, ep *LocalEndpoint, br netlink.Link, mtu int) error {
	if ep.Handoff {
		return d.ensureHandoff(idx, n, ep, br, mtu)
	}
	ns, err := openSandbox(ep, d.hostID)
	if err != nil {
		return err
	}
	defer ns.Close()
	sh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("opening netlink handle in sandbox %s: %w", ep.Sandbox, err)
	}
	defer sh.Close()

	hostName, alias := VethName(n.ID, ep.ID), endpointAlias(n.ID, ep.ID)
	host := idx.byName[hostName]
	peer, err := sh.LinkByName(ep.IfName)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("reading %s in sandbox %s: %w", ep.IfName, ep.Sandbox, err)
	}
	if peer != nil {
		if err := checkOwned(peer, "veth", alias); err != nil {
			return fmt.Errorf("sandbox %s: %w", ep.Sandbox, err)
		}
	}
	if host != nil {
		if err := checkOwned(host, "veth", alias); err != nil {
			return err
		}
		if peer == nil {
			// Our host end leads elsewhere (the endpoint moved to another
			// sandbox): start over.
			if err := d.h.LinkDel(host); err != nil && !isNotFound(err) {
				return fmt.Errorf("deleting stale %s: %w", hostName, err)
			}
			host = nil
		}
	} else if peer != nil {
		// A sandbox end of ours whose host end is gone or renamed.
		if err := sh.LinkDel(peer); err != nil && !isNotFound(err) {
			return fmt.Errorf("deleting stale %s in sandbox %s: %w", ep.IfName, ep.Sandbox, err)
		}
		peer = nil
	}
	if host == nil {
		if host, peer, err = d.addVeth(sh, ns, hostName, alias, ep, mtu); err != nil {
			return err
		}
		if err := setARPRetrans(ns, ep.IfName, SandboxARPRetrans); err != nil {
			return errors.Join(err, d.delHalfMade(host, hostName))
		}
	}
	errs := []error{d.attach(host, br, mtu)}
	errs = append(errs, configureSandboxEnd(sh, peer, n, ep, mtu))
	return errors.Join(errs...)
}

// ensureHandoff creates or repairs an endpoint whose sandbox end the
// runtime moves (LocalEndpoint.Handoff): the pair is made in the host
// namespace, the host end attached to the bridge; once the pair exists,
// only the host end is looked at (the sandbox end may be in the sandbox by
// now, renamed). A leftover sandbox end of ours in the host namespace
// whose host end is gone is replaced.
// Equivalent to: `ip link add VETH mtu MTU type veth peer name IFNAME
// address MAC mtu MTU; ip link set VETH alias A master BRIDGE up; ip link
// set IFNAME alias A`.
func (d *Datapath) ensureHandoff(idx *linkIndex, n *Network, ep *LocalEndpoint, br netlink.Link, mtu int) error {
	hostName, alias := VethName(n.ID, ep.ID), endpointAlias(n.ID, ep.ID)
	host := idx.byName[hostName]
	if host != nil {
		if err := checkOwned(host, "veth", alias); err != nil {
			return err
		}
		return d.attach(host, br, mtu)
	}
	if stale, err := d.h.LinkByName(ep.IfName); err == nil {
		if err := checkOwned(stale, "veth", alias); err != nil {
			return err
		}
		if err := d.h.LinkDel(stale); err != nil && !isNotFound(err) {
			return fmt.Errorf("deleting stale %s: %w", ep.IfName, err)
		}
	} else if !isNotFound(err) {
		return fmt.Errorf("reading %s: %w", ep.IfName, err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.Alias, attrs.MTU = hostName, alias, mtu
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: ep.IfName, PeerHardwareAddr: ep.mac(), PeerMTU: uint32(mtu)}
	host, err := d.addLink(veth)
	if err != nil {
		return err
	}
	peer, err := d.h.LinkByName(ep.IfName)
	if err == nil {
		err = d.h.LinkSetAlias(peer, alias)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("marking %s: %w", ep.IfName, err), d.delHalfMade(host, hostName))
	}
	return d.attach(host, br, mtu)
}

// addVeth creates the pair with its sandbox end directly inside the sandbox,
// already named, so that no half-made device is ever visible in the host
// namespace under a temporary name.
// Equivalent to: `ip link add VETH mtu MTU type veth peer name IFNAME netns
// SANDBOX address MAC mtu MTU; ip link set VETH alias A; ip -n SANDBOX link
// set IFNAME alias A`.
func (d *Datapath) addVeth(sh *netlink.Handle, ns netns.NsHandle, hostName, alias string, ep *LocalEndpoint, mtu int) (host, peer netlink.Link, err error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.Alias, attrs.MTU = hostName, alias, mtu
	veth := &netlink.Veth{
		LinkAttrs:        attrs,
		PeerName:         ep.IfName,
		PeerNamespace:    netlink.NsFd(int(ns)),
		PeerHardwareAddr: ep.mac(),
		PeerMTU:          uint32(mtu),
	}
	if host, err = d.addLink(veth); err != nil {
		return nil, nil, err
	}
	peer, err = sh.LinkByName(ep.IfName)
	if err == nil {
		err = sh.LinkSetAlias(peer, alias)
	}
	if err != nil {
		err = fmt.Errorf("marking %s in sandbox %s: %w", ep.IfName, ep.Sandbox, err)
		return nil, nil, errors.Join(err, d.delHalfMade(host, hostName)) // takes the peer along
	}
	peer.Attrs().Alias = alias
	return host, peer, nil
}

// configureSandboxEnd sets the sandbox end's MAC, MTU, addresses, state and
// default routes.
// Equivalent to: `ip -n SANDBOX link set IFNAME address MAC mtu MTU up;
// ip -n SANDBOX addr replace ADDR dev IFNAME; ip -n SANDBOX route replace
// default via GW dev IFNAME`.
func configureSandboxEnd(sh *netlink.Handle, peer netlink.Link, n *Network, ep *LocalEndpoint, mtu int) error {
	var errs []error
	if mac := ep.mac(); !bytes.Equal(peer.Attrs().HardwareAddr, mac) {
		if err := sh.LinkSetHardwareAddr(peer, mac); err != nil {
			errs = append(errs, fmt.Errorf("setting address of %s: %w", ep.IfName, err))
		}
	}
	if err := ensureMTUUp(sh, peer, mtu); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := syncAddrs(sh, peer, ep.Addr, ep.Addr6); err != nil {
		return errors.Join(append(errs, err)...)
	}
	var gw4, gw6 netip.Addr
	if ep.DefaultRoute && n.Gateway.IsValid() {
		gw4 = n.Gateway.Addr()
	}
	if ep.DefaultRoute && n.Gateway6.IsValid() && ep.Addr6.IsValid() {
		gw6 = n.Gateway6.Addr()
	}
	errs = append(errs, syncDefaultRoute(sh, peer, netlink.FAMILY_V4, gw4))
	errs = append(errs, syncDefaultRoute(sh, peer, netlink.FAMILY_V6, gw6))
	return errors.Join(errs...)
}

// syncDefaultRoute makes the default route of family through l go via gw,
// or removes it when gw is not valid.
// Equivalent to: `ip route replace default via GW dev DEV` / `ip route del
// default dev DEV`.
func syncDefaultRoute(h *netlink.Handle, l netlink.Link, family int, gw netip.Addr) error {
	routes, err := listRoutes(h, l, family)
	if err != nil {
		return err
	}
	found := false
	for i := range routes {
		r := &routes[i]
		if r.Dst != nil && !isDefault(r.Dst) {
			continue
		}
		cur, _ := netip.AddrFromSlice(r.Gw)
		if gw.IsValid() && cur.Unmap() == gw {
			found = true
			continue
		}
		if err := h.RouteDel(r); err != nil {
			return fmt.Errorf("deleting default route via %s: %w", cur, err)
		}
	}
	if found || !gw.IsValid() {
		return nil
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.IP(gw.AsSlice())}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("adding default route via %s: %w", gw, err)
	}
	return nil
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}
