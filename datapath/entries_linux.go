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

// fdbWant is one desired FDB entry and the number of endpoints sharing it.
type fdbWant struct {
	mac  net.HardwareAddr
	vtep netip.Addr
	refs int
}

// remoteWant is the desired FDB and neighbour entries of a network.
type remoteWant struct {
	fdb    map[string]*fdbWant             // by string(MAC)
	neighs map[netip.Addr]net.HardwareAddr // IPv4 and IPv6
}

// desiredRemote computes the entries for n's remote endpoints. An endpoint
// that is invalid or contradicts an earlier one is reported and skipped.
func desiredRemote(n *Network) (remoteWant, error) {
	w := remoteWant{
		fdb:    make(map[string]*fdbWant, len(n.Remote)),
		neighs: make(map[netip.Addr]net.HardwareAddr, len(n.Remote)),
	}
	var errs []error
	for i := range n.Remote {
		e := &n.Remote[i]
		if err := e.validate(n.vtep()); err != nil {
			errs = append(errs, err)
			continue
		}
		mac, vtep := e.mac(), e.vtep()
		key := string(mac)
		if f := w.fdb[key]; f != nil && f.vtep != vtep {
			errs = append(errs, fmt.Errorf("%w: MAC %s behind VTEPs %s and %s (endpoint %s)", ErrConflict, mac, f.vtep, vtep, e.IP))
			continue
		}
		if err := claimNeigh(w.neighs, e.IP, mac); err != nil {
			errs = append(errs, err)
			continue
		}
		if e.IP6.IsValid() {
			if err := claimNeigh(w.neighs, e.IP6, mac); err != nil {
				errs = append(errs, err)
				// The IPv4 part stands: the FDB entry is still needed.
			}
		}
		if f := w.fdb[key]; f != nil {
			f.refs++
		} else {
			w.fdb[key] = &fdbWant{mac: mac, vtep: vtep, refs: 1}
		}
	}
	return w, errors.Join(errs...)
}

func claimNeigh(m map[netip.Addr]net.HardwareAddr, ip netip.Addr, mac net.HardwareAddr) error {
	if have, dup := m[ip]; dup {
		if !bytes.Equal(have, mac) {
			return fmt.Errorf("%w: IP %s has MACs %s and %s", ErrConflict, ip, have, mac)
		}
		return nil
	}
	m[ip] = mac
	return nil
}

// syncRemote makes the VXLAN device's FDB and neighbour tables hold exactly
// the entries of n's remote endpoints. fresh skips the dumps of a device
// created just now. It returns the entries it programmed.
func (d *Datapath) syncRemote(n *Network, vx int, fresh bool) (remoteWant, error) {
	want, err := desiredRemote(n)
	errs := []error{err}
	var fdb, neighs []netlink.Neigh
	if !fresh {
		if fdb, err = listFDB(d.h, vx); err != nil {
			return want, errors.Join(append(errs, err)...)
		}
		// One dump of both families (AF_UNSPEC): IPv4 and IPv6 entries
		// are told apart by their addresses below.
		if neighs, err = listNeighs(d.h, vx, unix.AF_UNSPEC); err != nil {
			return want, errors.Join(append(errs, err)...)
		}
	}

	// Neighbours first out, last in: an IP never points at a MAC whose FDB
	// entry is already gone.
	haveNeigh := make(map[netip.Addr]*netlink.Neigh, len(neighs))
	for i := range neighs {
		nb := &neighs[i]
		ip, ok := netip.AddrFromSlice(nb.IP)
		if !ok || (nb.Family != unix.AF_INET && nb.Family != unix.AF_INET6) {
			continue
		}
		ip = ip.Unmap()
		if _, wanted := want.neighs[ip]; !wanted {
			if nb.State&unix.NUD_NOARP != 0 {
				continue // the kernel's own multicast mappings
			}
			errs = append(errs, d.delNeigh(vx, nb))
			continue
		}
		haveNeigh[ip] = nb
	}

	haveFDB := make(map[string][]*netlink.Neigh, len(fdb))
	for i := range fdb {
		key := string(fdb[i].HardwareAddr)
		haveFDB[key] = append(haveFDB[key], &fdb[i])
	}
	for key, entries := range haveFDB {
		w := want.fdb[key]
		for _, e := range entries {
			switch {
			case w == nil:
				errs = append(errs, d.delFDB(vx, e))
			case len(entries) > 1 && !fdbMatches(e, w):
				// Extra destinations of a wanted MAC; a single wrong one is
				// replaced below instead.
				errs = append(errs, d.delFDB(vx, e))
			}
		}
	}
	for key, w := range want.fdb {
		ok := false
		for _, e := range haveFDB[key] {
			ok = ok || fdbMatches(e, w)
		}
		if !ok {
			errs = append(errs, d.setFDB(vx, w.mac, w.vtep))
		}
	}
	for ip, mac := range want.neighs {
		if nb := haveNeigh[ip]; nb != nil && nb.State&unix.NUD_PERMANENT != 0 && bytes.Equal(nb.HardwareAddr, mac) {
			continue
		}
		errs = append(errs, d.setNeigh(vx, ip, mac))
	}
	return want, errors.Join(errs...)
}

func fdbMatches(e *netlink.Neigh, w *fdbWant) bool {
	ip, ok := netip.AddrFromSlice(e.IP)
	return ok && ip.Unmap() == w.vtep.Unmap() && e.State&unix.NUD_PERMANENT != 0 &&
		e.VNI == 0 && e.Vlan == 0
}

// setFDB points mac at vtep.
// Equivalent to: `bridge fdb replace MAC dev VXLAN self dst VTEP permanent`.
func (d *Datapath) setFDB(vx int, mac net.HardwareAddr, vtep netip.Addr) error {
	err := d.h.NeighSet(&netlink.Neigh{
		LinkIndex: vx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT,
		HardwareAddr: mac, IP: net.IP(vtep.AsSlice()),
	})
	if err != nil {
		return fmt.Errorf("replacing fdb entry %s dst %s: %w", mac, vtep, err)
	}
	return nil
}

// delFDB deletes one destination of an FDB entry.
// Equivalent to: `bridge fdb del MAC dev VXLAN self dst VTEP`.
func (d *Datapath) delFDB(vx int, e *netlink.Neigh) error {
	err := d.h.NeighDel(&netlink.Neigh{
		LinkIndex: vx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
		HardwareAddr: e.HardwareAddr, IP: e.IP, Vlan: e.Vlan, VNI: e.VNI,
	})
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("deleting fdb entry %s dst %s: %w", e.HardwareAddr, e.IP, err)
	}
	return nil
}

// setNeigh maps ip to mac, so that the VXLAN device answers ARP and
// neighbour solicitations for it locally.
// Equivalent to: `ip neigh replace IP lladdr MAC dev VXLAN nud permanent`.
func (d *Datapath) setNeigh(vx int, ip netip.Addr, mac net.HardwareAddr) error {
	fam := unix.AF_INET
	if ip.Is6() {
		fam = unix.AF_INET6
	}
	err := d.h.NeighSet(&netlink.Neigh{
		LinkIndex: vx, Family: fam, State: netlink.NUD_PERMANENT,
		IP: net.IP(ip.AsSlice()), HardwareAddr: mac,
	})
	if err != nil {
		return fmt.Errorf("replacing neighbour %s lladdr %s: %w", ip, mac, err)
	}
	return nil
}

// delNeigh deletes a neighbour entry.
// Equivalent to: `ip neigh del IP dev VXLAN`.
func (d *Datapath) delNeigh(vx int, nb *netlink.Neigh) error {
	err := d.h.NeighDel(&netlink.Neigh{LinkIndex: vx, Family: nb.Family, IP: nb.IP})
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("deleting neighbour %s: %w", nb.IP, err)
	}
	return nil
}
