package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/meshnet/meshnet/sandbox"
)

// Datapath programs the networks (overlay and local) of one host namespace.
//
// Its methods are safe for concurrent use; they are serialised, and each
// blocks until the kernel has answered every request it made.
type Datapath struct {
	viaMu sync.Mutex      // guards via; taken before mu, never inside it
	via   *netlink.Handle // ViaBridge's own handle, made on first use

	mu     sync.Mutex       // serialises Apply, ApplyNetwork, RemoveNetwork, Close
	h      *netlink.Handle  // guarded by mu; netlink socket in the host namespace
	rt     *nl.SocketHandle // guarded by mu; rtnetlink socket there, for rule dumps
	closed bool             // guarded by mu
	ns     netns.NsHandle   // the host namespace (None: the caller's), for sysctls
	hostID sandbox.NSID     // the host namespace's identity: never a sandbox
	// What was applied, so that UpdateNetwork costs what changed (see
	// update_linux.go). Guarded by mu.
	nets    map[string]*appliedNetwork
	applied map[endpointKey]endpointSpec
}

// New returns a Datapath that programs the network namespace hostNS
// (netns.None() for the caller's own). The namespace handle may be closed
// once New returns.
func New(hostNS netns.NsHandle) (*Datapath, error) {
	hostID, err := identifyHost(hostNS)
	if err != nil {
		return nil, err
	}
	h, err := netlink.NewHandleAt(hostNS)
	if err != nil {
		return nil, fmt.Errorf("opening netlink handle: %w", err)
	}
	s, err := nl.GetNetlinkSocketAt(hostNS, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("opening netlink socket: %w", err)
	}
	d := &Datapath{h: h, rt: &nl.SocketHandle{Socket: s}, ns: netns.None(), hostID: hostID,
		nets: map[string]*appliedNetwork{}, applied: map[endpointKey]endpointSpec{}}
	if hostNS.IsOpen() {
		fd, err := unix.Dup(int(hostNS))
		if err != nil {
			h.Close()
			d.rt.Close()
			return nil, fmt.Errorf("keeping the host namespace: %w", err)
		}
		d.ns = netns.NsHandle(fd)
	}
	return d, nil
}

// identifyHost returns the identity of hostNS (None: the calling thread's).
func identifyHost(hostNS netns.NsHandle) (sandbox.NSID, error) {
	ns := hostNS
	if !ns.IsOpen() {
		var err error
		if ns, err = netns.Get(); err != nil {
			return sandbox.NSID{}, fmt.Errorf("opening the host namespace: %w", err)
		}
		defer ns.Close()
	}
	err := sandbox.CheckFD(int(ns))
	id, err2 := sandbox.StatFD(int(ns))
	if err = errors.Join(err, err2); err != nil {
		return sandbox.NSID{}, fmt.Errorf("identifying the host namespace: %w", err)
	}
	return id, nil
}

// Close releases the netlink sockets. It leaves the kernel state alone and
// is idempotent.
func (d *Datapath) Close() error {
	d.viaMu.Lock() // the lock order: viaMu, then mu
	defer d.viaMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.via != nil {
		d.via.Close()
		d.via = nil
	}
	if !d.closed {
		d.closed = true
		d.h.Close()
		d.rt.Close()
		if d.ns.IsOpen() {
			d.ns.Close()
		}
	}
	return nil
}

var errClosed = errors.New("datapath closed")

// Apply makes the kernel hold exactly the desired networks: it creates and
// repairs them, and tears down every network we created that is not in
// desired. A desired network that is invalid (or listed twice, or sharing
// another's VNI or device name) is reported and left as it is, never torn
// down: a bad update must not cut off its live sandboxes, nor lose its
// isolation rule. Errors of single networks, endpoints or entries are
// joined; all the rest is still applied.
func (d *Datapath) Apply(desired []Network) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	links, err := listLinks(d.h)
	if err != nil {
		return err
	}
	var errs []error
	keep := make(map[string]bool, len(desired))
	want := make(map[string]*Network, len(desired))
	vnis := make(map[uint32]string, len(desired))      // of overlay networks
	devices := make(map[string]string, 2*len(desired)) // device name → network id
	for i := range desired {
		n := &desired[i]
		if n.ID != "" {
			keep[n.ID] = true
		}
		if err := n.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if want[n.ID] != nil {
			errs = append(errs, fmt.Errorf("%w: network %s listed twice", ErrInvalid, n.ID))
			continue
		}
		if other, dup := vnis[n.VNI]; dup {
			errs = append(errs, fmt.Errorf("%w: networks %s and %s share VNI %d", ErrInvalid, other, n.ID, n.VNI))
			continue
		}
		if err := claimDevices(devices, n); err != nil {
			errs = append(errs, err)
			continue
		}
		want[n.ID] = n
		if !n.local() {
			vnis[n.VNI] = n.ID
		}
	}
	removed := false
	for id := range ownedNetworks(links) {
		if !keep[id] {
			errs = append(errs, d.teardown(links, id))
			removed = true
		}
	}
	// Devices left behind by VNI changes go before any network is applied,
	// so that networks swapping VNIs converge in one call.
	for _, n := range want {
		r, err := d.removeStale(links, n)
		errs = append(errs, err)
		removed = removed || r
	}
	if removed {
		if links, err = listLinks(d.h); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	rules, err := d.listIsolationRules()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	errs = append(errs, d.sweepIsolationRules(rules, policyBridges(links, keep, want)))
	idx := newLinkIndex(links)
	for i := range desired {
		if n := &desired[i]; want[n.ID] == n {
			errs = append(errs, d.applyNetwork(idx, n, rules))
		}
	}
	return errors.Join(errs...)
}

// policyBridges returns the names of the bridges whose isolation rules
// Apply leaves to the networks: those of the desired networks, and those
// that the kernel has of networks desired but invalid (left as they are).
func policyBridges(links []netlink.Link, keep map[string]bool, want map[string]*Network) map[string]bool {
	names := make(map[string]bool, len(want))
	for _, n := range want {
		names[n.bridgeName()] = true
	}
	for _, l := range links {
		id, ep, ok := parseAlias(l.Attrs().Alias)
		if ok && ep == "" && keep[id] && want[id] == nil && l.Type() == "bridge" {
			names[l.Attrs().Name] = true
		}
	}
	return names
}

// ApplyNetwork makes the kernel match one network and leaves the others
// alone. It checks every local endpoint inside its sandbox.
func (d *Datapath) ApplyNetwork(n Network) error {
	return d.applyOne(n, false)
}

// UpdateNetwork is ApplyNetwork for a change of the network's desired
// state, trusting what this Datapath applied before: when the network's
// settings are unchanged and its devices still there, only the remote
// entries that differ from those programmed last are written, and only
// the local endpoints that are new or changed are programmed (their
// sandboxes entered); the others are not looked at. An update thus costs
// what changed, however many endpoints the host has. ApplyNetwork (the
// periodic resync) finds what was changed behind our back.
func (d *Datapath) UpdateNetwork(n Network) error {
	return d.applyOne(n, true)
}

func (d *Datapath) applyOne(n Network, trust bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	if err := n.validate(); err != nil {
		return err
	}
	if trust {
		if done, err := d.update(&n); done {
			return err
		}
	}
	links, err := listLinks(d.h)
	if err != nil {
		return err
	}
	removed, staleErr := d.removeStale(links, &n)
	if removed {
		if links, err = listLinks(d.h); err != nil {
			return errors.Join(staleErr, err)
		}
	}
	rules, err := d.listIsolationRules()
	if err != nil {
		return errors.Join(staleErr, err)
	}
	return errors.Join(staleErr, d.applyNetwork(newLinkIndex(links), &n, rules))
}

// RemoveNetwork deletes every device (and so every entry) we made for the
// network with the given id, and the isolation rule of its bridge. Removing
// an absent network is not an error. A rule whose bridge was already
// deleted behind our back is left to the next Apply, which sweeps it.
func (d *Datapath) RemoveNetwork(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	links, err := listLinks(d.h)
	if err != nil {
		return err
	}
	return d.teardown(links, id)
}

// claimDevices records the device names of n in claimed (name → network
// id), or reports ErrInvalid when another network has claimed one of them.
func claimDevices(claimed map[string]string, n *Network) error {
	names := n.deviceNames()
	for _, name := range names {
		if other, dup := claimed[name]; dup {
			return fmt.Errorf("%w: networks %s and %s both want device %s", ErrInvalid, other, n.ID, name)
		}
	}
	for _, name := range names {
		claimed[name] = n.ID
	}
	return nil
}

// applyNetwork reconciles one validated network: the bridge and its policy,
// for an overlay network the VXLAN device and its entries, and the local
// endpoints. A device that exists is used even when repairing it failed (an
// address, the MTU, its state, its policy): the rest of the network is
// still applied and the errors are joined.
func (d *Datapath) applyNetwork(idx *linkIndex, n *Network, rules isolationRules) error {
	delete(d.nets, n.ID) // recorded again below if the devices and entries are right
	var under netlink.Link
	mtu := n.MTU
	if !n.local() {
		var err error
		if under, err = d.underlay(idx, n.vtep()); err != nil {
			return fmt.Errorf("network %s: %w", n.ID, err)
		}
		if mtu == 0 {
			mtu = under.Attrs().MTU - n.encapOverhead()
		}
	} else if mtu == 0 {
		mtu = DefaultLocalMTU
	}
	var errs []error
	br, err := d.ensureBridge(idx, n, mtu, rules)
	if err != nil {
		errs = append(errs, fmt.Errorf("network %s: %w", n.ID, err))
	}
	if br == nil {
		return errors.Join(errs...)
	}
	rec := &appliedNetwork{spec: n.spec(), bridge: br.Attrs().Index, mtu: mtu}
	if !n.local() {
		vx, fresh, err := d.ensureVXLAN(idx, n, under, br, mtu)
		if err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", n.ID, err))
		}
		if vx != nil {
			rec.vxlan = vx.Attrs().Index
			rec.remoteSpec = slices.Clone(n.Remote)
			if rec.remote, err = d.syncRemote(n, rec.vxlan, fresh); err != nil {
				errs = append(errs, fmt.Errorf("network %s: %w", n.ID, err))
			}
		}
	}
	if len(errs) == 0 {
		d.nets[n.ID] = rec
	}
	if err := d.syncLocal(idx, n, br, mtu, false); err != nil {
		errs = append(errs, fmt.Errorf("network %s: %w", n.ID, err))
	}
	return errors.Join(errs...)
}

// removeStale deletes the bridge and VXLAN devices of network n that carry
// its alias under other names than its current ones, as left behind when its
// VNI or bridge name changed or it became local; they would hold their names
// and VNI against another network forever. A deleted bridge's isolation
// rule goes with it. removed reports whether it deleted any.
// Equivalent to: `ip link del DEV; ip -6 rule del priority 1000 iif DEV
// prohibit`.
func (d *Datapath) removeStale(links []netlink.Link, n *Network) (removed bool, err error) {
	alias, names := networkAlias(n.ID), n.deviceNames()
	var errs []error
	for _, l := range links {
		a := l.Attrs()
		if a.Alias != alias || slices.Contains(names, a.Name) {
			continue
		}
		removed = true
		if err := d.h.LinkDel(l); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting outdated %s of network %s: %w", a.Name, n.ID, err))
			continue
		}
		if l.Type() == "bridge" {
			errs = append(errs, d.delIsolationRule(a.Name))
		}
	}
	return removed, errors.Join(errs...)
}

// teardown deletes the devices carrying network id's aliases: veths first
// (which takes their sandbox ends with them), then the VXLAN device, if the
// network has one, and the bridge, and last the bridge's isolation rule.
// Equivalent to: `ip link del DEV` for each, then `ip -6 rule del priority
// 1000 iif BRIDGE prohibit`.
func (d *Datapath) teardown(links []netlink.Link, id string) error {
	delete(d.nets, id)
	for key := range d.applied {
		if key.network == id {
			delete(d.applied, key)
		}
	}
	var errs []error
	var veths, devices []netlink.Link
	for _, l := range links {
		nid, eid, ok := parseAlias(l.Attrs().Alias)
		if !ok || nid != id {
			continue
		}
		if eid != "" {
			veths = append(veths, l)
		} else {
			devices = append(devices, l)
		}
	}
	for _, l := range append(veths, devices...) {
		if err := d.h.LinkDel(l); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting %s of network %s: %w", l.Attrs().Name, id, err))
			continue
		}
		if l.Type() == "bridge" {
			errs = append(errs, d.delIsolationRule(l.Attrs().Name))
		}
	}
	return errors.Join(errs...)
}

// underlay returns the link holding the VTEP address. The addresses are
// dumped once per link index, that is once per Apply.
func (d *Datapath) underlay(idx *linkIndex, vtep netip.Addr) (netlink.Link, error) {
	if idx.byAddr == nil {
		addrs, err := listAddrs(d.h, nil, netlink.FAMILY_ALL)
		if err != nil {
			return nil, err
		}
		idx.byAddr = make(map[netip.Addr]netlink.Link, len(addrs))
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				if l := idx.byIndex[a.LinkIndex]; l != nil && idx.byAddr[ip.Unmap()] == nil {
					idx.byAddr[ip.Unmap()] = l
				}
			}
		}
	}
	if l := idx.byAddr[vtep]; l != nil {
		return l, nil
	}
	return nil, fmt.Errorf("finding underlay device: no link has VTEP address %s", vtep)
}

// ownedNetworks returns the ids of the networks whose devices carry our alias.
func ownedNetworks(links []netlink.Link) map[string]bool {
	ids := make(map[string]bool)
	for _, l := range links {
		if id, _, ok := parseAlias(l.Attrs().Alias); ok {
			ids[id] = true
		}
	}
	return ids
}

// linkIndex is one link dump indexed for lookups.
type linkIndex struct {
	all     []netlink.Link
	byName  map[string]netlink.Link
	byIndex map[int]netlink.Link
	byAddr  map[netip.Addr]netlink.Link // filled by the first underlay lookup
}

func newLinkIndex(links []netlink.Link) *linkIndex {
	idx := &linkIndex{all: links, byName: make(map[string]netlink.Link, len(links)), byIndex: make(map[int]netlink.Link, len(links))}
	for _, l := range links {
		idx.byName[l.Attrs().Name] = l
		idx.byIndex[l.Attrs().Index] = l
	}
	return idx
}

// checkOwned reports ErrForeignDevice unless l is of type typ and carries alias.
func checkOwned(l netlink.Link, typ, alias string) error {
	if l.Type() != typ || l.Attrs().Alias != alias {
		return fmt.Errorf("checking %s: %w (type %s, alias %q; want type %s, alias %q)",
			l.Attrs().Name, ErrForeignDevice, l.Type(), l.Attrs().Alias, typ, alias)
	}
	return nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, errNoDevice)
}
