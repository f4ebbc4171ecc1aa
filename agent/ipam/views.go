package ipam

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// viewTTL is how long a network's view of its address leases is used
// before it is listed again, so that addresses released by other nodes
// come back into use.
const viewTTL = 10 * time.Second

// addrViews holds, per network, the addresses this Allocator believes
// leased: the last listing, plus what it leased and lost races for since,
// minus what it released. A view may hold an address another node has
// released since (it is skipped until the next listing) and may miss one
// another node leased (the create loses, and the view learns it); it never
// decides alone that an address is free: the create-if-absent in the store
// does. The zero value is ready to use.
type addrViews struct {
	mu    sync.Mutex
	nets  map[string]*addrView
	clock func() time.Time // time.Now when nil; tests set it
}

type addrView struct {
	taken  map[netip.Addr]bool
	held   map[string][]netip.Addr // by endpoint id, where known
	listed time.Time
	lost   int // races lost since the listing
}

func (vs *addrViews) now() time.Time {
	if vs.clock != nil {
		return vs.clock()
	}
	return time.Now()
}

// get returns the network's view, or nil when it must be listed.
func (vs *addrViews) get(networkID string) *addrView {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	v := vs.nets[networkID]
	if v == nil || v.lost >= relistAfter || vs.now().Sub(v.listed) >= viewTTL {
		delete(vs.nets, networkID)
		return nil
	}
	return v
}

// put installs a view listed just now.
func (vs *addrViews) put(networkID string, leases []AddressLease) *addrView {
	v := &addrView{taken: make(map[netip.Addr]bool, len(leases)), held: make(map[string][]netip.Addr, len(leases)),
		listed: vs.now()}
	for _, l := range leases {
		v.taken[l.Addr] = true
		v.held[l.Owner.EndpointID] = append(v.held[l.Owner.EndpointID], l.Addr)
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if vs.nets == nil {
		vs.nets = map[string]*addrView{}
	}
	vs.nets[networkID] = v
	return v
}

// pick chooses the lowest free address of subnets in v, or with spread
// (a retry) one at random of the lowest few, and marks it taken at once,
// so that concurrent leases on the network try different addresses.
func (vs *addrViews) pick(v *addrView, subnets []SubnetConfig, spread bool) (netip.Addr, bool) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	free := freeAddrs(subnets, v.taken, spread)
	if len(free) == 0 {
		return netip.Addr{}, false
	}
	a := free[rand.IntN(len(free))]
	v.taken[a] = true
	return a, true
}

// heldBy returns the address of family v4 (or IPv6) that the view has
// endpointID holding.
func (vs *addrViews) heldBy(v *addrView, endpointID string, v4 bool) (netip.Addr, bool) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	for _, a := range v.held[endpointID] {
		if a.Is4() == v4 {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// leased records that endpointID now holds addr (which pick marked taken).
func (vs *addrViews) leased(v *addrView, endpointID string, addr netip.Addr) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	v.held[endpointID] = append(v.held[endpointID], addr)
}

// noted records a lease made outside pick (a requested address).
func (vs *addrViews) noted(networkID, endpointID string, addr netip.Addr) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if v := vs.nets[networkID]; v != nil && !v.taken[addr] {
		v.taken[addr] = true
		v.held[endpointID] = append(v.held[endpointID], addr)
	}
}

// lost records a race lost on the address pick marked taken: it stays so.
func (vs *addrViews) lost(networkID string, v *addrView) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	v.lost++
}

// drop forgets the network's view v, if it is still the current one, so
// that the next lease lists again.
func (vs *addrViews) drop(networkID string, v *addrView) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if vs.nets[networkID] == v {
		delete(vs.nets, networkID)
	}
}

// released returns addr to the network's view.
func (vs *addrViews) released(networkID string, addr netip.Addr) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if v := vs.nets[networkID]; v != nil {
		delete(v.taken, addr)
		for id, as := range v.held {
			if i := slices.Index(as, addr); i >= 0 {
				if v.held[id] = slices.Delete(as, i, i+1); len(v.held[id]) == 0 {
					delete(v.held, id)
				}
				break
			}
		}
	}
}
