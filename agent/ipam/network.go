package ipam

// Network leases: a VNI and one or more subnets per network. Pools
// (pool.go) take their one subnet through the same code, without a VNI.
//
// The subnet-overlap guard. Create-if-absent of subnets/<cidr> makes one
// CIDR unique, but two writers can lease different CIDRs that overlap
// (10.1.0.0/16 and 10.1.2.0/24), each seeing a listing without the other.
// So every transaction that leases a subnet also bumps the guard key
// subnets-version by compare-and-swap against the version it read together
// with the listing. Of any two transactions that both read the guard at
// version V, at most one commits; the other fails its swap, re-reads and
// sees the winner's subnet. Subnet leases are thereby serialised, and each
// one is checked against every subnet leased before it.
//
// The guard and the leases are read in a single List of the prefix
// "subnets", which returns subnets/… and subnets-version from one snapshot
// of the store. (Read separately, a lease committed between the two reads
// would be missed while its guard bump was seen.)
//
// The guard's value is a counter that every writer increments, so a write
// never stores the value it read: Consul drops no-op writes without a new
// index, which would let two racers both "win" a swap of the same value.
//
// Releasing a subnet deletes its key without touching the guard: a racing
// allocator that still sees the old lease only avoids a free range, which
// is safe.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/meshnet/meshnet/kvstore"
)

// NetworkRequest asks for the leases of a new network.
type NetworkRequest struct {
	// ID is the network's id; it owns the leases. It must not contain "/".
	ID string
	// VNI is a requested VNI; 0 means the lowest free one in the
	// configured range.
	VNI uint32
	// Subnets are requested subnets (--subnet with --gateway, --ip-range,
	// --aux-address). If none of them is IPv4, an IPv4 subnet is leased
	// from the pools, since every network needs one.
	Subnets []SubnetConfig
	// IPv6 also leases an IPv6 subnet from the pools if none is requested;
	// it needs an IPv6 pool.
	IPv6 bool
	// NoVNI leases subnets only: for a network whose driver has no use
	// for a VXLAN id. VNI must then be 0.
	NoVNI bool
}

// NetworkLease is what a network holds: its VNI and its subnets, IPv4
// first, normalized (default gateway filled in). The agent stores it in
// the network record and passes it back to release the leases.
type NetworkLease struct {
	NetworkID string         `json:"network_id"`
	VNI       uint32         `json:"vni"`
	Subnets   []SubnetConfig `json:"subnets"`
}

// LeaseNetwork leases a VNI and the subnets of a new network in one
// transaction. with, if not nil, returns further ops that must commit
// together with the leases (the network record, its names/<name> index);
// it may be called more than once, each time with the lease about to be
// tried. So the network exists with its leases or not at all, and nothing
// needs rolling back.
//
// Lost races on leases are retried by re-reading. If one of with's ops
// fails its condition, LeaseNetwork returns at once with an error wrapping
// the *kvstore.TxnError (for names/<name>, kvstore.ErrKeyExists means the
// name is taken).
//
// A store failure (kvstore.ErrUnavailable) is returned as is: the
// transaction may or may not have committed, so before trying again the
// caller looks for its network record (all or nothing went in with it).
func (a *Allocator) LeaseNetwork(ctx context.Context, req NetworkRequest,
	with func(NetworkLease) ([]kvstore.Op, error)) (NetworkLease, error) {
	if err := checkID("network", req.ID); err != nil {
		return NetworkLease{}, err
	}
	if req.NoVNI && req.VNI != 0 {
		return NetworkLease{}, failf(ErrInvalid, "VNI %d requested for a network that takes none", req.VNI)
	}
	if req.VNI > DefaultVNIMax {
		return NetworkLease{}, failf(ErrInvalid, "VNI %d is out of range: VXLAN ids go from 1 to %d", req.VNI, DefaultVNIMax)
	}
	explicit, err := normalizeRequested(req.Subnets)
	if err != nil {
		return NetworkLease{}, err
	}
	return a.leaseSubnets(ctx, subnetRequest{what: "network " + req.ID, id: req.ID, withVNI: !req.NoVNI, vni: req.VNI,
		explicit: explicit, auto4: true, auto6: req.IPv6}, with)
}

// PlanNetwork returns the subnets LeaseNetwork would lease for req now,
// taking nothing: requested ones checked against the leases, automatic
// ones picked from the pools. A LeaseNetwork made later may find them
// taken meanwhile.
func (a *Allocator) PlanNetwork(ctx context.Context, req NetworkRequest) ([]SubnetConfig, error) {
	explicit, err := normalizeRequested(req.Subnets)
	if err != nil {
		return nil, err
	}
	leased, _, _, err := a.readLeases(ctx, false)
	if err != nil {
		return nil, err
	}
	return a.chooseSubnets(subnetRequest{what: "network " + req.ID, id: req.ID, explicit: explicit, auto4: true, auto6: req.IPv6}, leased)
}

// subnetRequest is one transaction's worth of leases: a network's VNI and
// subnets, or a pool's one subnet.
type subnetRequest struct {
	what         string // "network <id>" or "pool <id>", for messages
	id           string // the owner written into the leases
	withVNI      bool   // lease a VNI too
	vni          uint32 // requested VNI; 0: the lowest free one
	explicit     []SubnetConfig
	auto4, auto6 bool // lease a subnet of that family from the pools if explicit has none
}

// leaseSubnets takes the leases of req (and with's ops) in one
// transaction, re-reading after lost races; see LeaseNetwork.
func (a *Allocator) leaseSubnets(ctx context.Context, req subnetRequest,
	with func(NetworkLease) ([]kvstore.Op, error)) (NetworkLease, error) {
	var lease NetworkLease
	err := a.retry(ctx, "leasing "+req.what, func(int) (bool, error) {
		leased, guard, vniTaken, err := a.readLeases(ctx, req.withVNI && req.vni == 0)
		if err != nil {
			return false, err
		}
		subnets, err := a.chooseSubnets(req, leased)
		if err != nil {
			return false, err
		}
		ops := []kvstore.Op{guardOp(guard)}
		vni := req.vni
		if req.withVNI {
			if vni == 0 {
				if vni = a.pickVNI(vniTaken); vni == 0 {
					return false, failf(ErrPoolExhausted, "no free VNI left in the range %d-%d", a.vniMin, a.vniMax)
				}
			}
			ops = append(ops, kvstore.Op{Kind: kvstore.OpCreate, Key: VNIKey(vni), Value: []byte(req.id)})
		}
		lease = NetworkLease{NetworkID: req.id, VNI: vni, Subnets: subnets}
		for _, s := range subnets {
			ops = append(ops, kvstore.Op{Kind: kvstore.OpCreate, Key: SubnetKey(s.Subnet), Value: []byte(req.id)})
		}
		if with != nil {
			more, err := with(lease)
			if err != nil {
				return false, err
			}
			ops = append(ops, more...)
		}
		err = a.store.Txn(ctx, ops...)
		switch key := conflictKey(err); {
		case err == nil:
			return true, nil
		case key == "":
			return false, fmt.Errorf("writing leases of %s: %w", req.what, err)
		case req.withVNI && key == VNIKey(vni) && req.vni != 0:
			return false, a.vniInUse(ctx, vni)
		case req.withVNI && key == VNIKey(vni), key == GuardKey, strings.HasPrefix(key, subnetPrefix):
			return false, nil // lost a race; re-read
		default:
			return false, fmt.Errorf("creating %s: %w", req.what, err)
		}
	})
	if err != nil {
		return NetworkLease{}, err
	}
	return lease, nil
}

// normalizeRequested validates requested subnets and returns them
// normalized.
func normalizeRequested(subnets []SubnetConfig) ([]SubnetConfig, error) {
	explicit := make([]SubnetConfig, 0, len(subnets))
	for _, c := range subnets {
		if !c.Subnet.IsValid() && (c.Gateway.IsValid() || c.IPRange.IsValid() || len(c.AuxAddresses) > 0) {
			return nil, failf(ErrInvalid, "a gateway, IP range or auxiliary address needs an explicit subnet")
		}
		n, err := c.Normalize()
		if err != nil {
			return nil, err
		}
		for _, o := range explicit {
			if o.Subnet.Overlaps(n.Subnet) {
				return nil, failf(ErrInvalid, "requested subnets %s and %s overlap", o.Subnet, n.Subnet)
			}
		}
		explicit = append(explicit, n)
	}
	return explicit, nil
}

// readLeases reads the subnet leases with the guard and, if wantVNIs, the
// VNI leases, both at once. Network leases are serialised by the guard
// anyway, so an allocation always reads afresh: it then takes the lowest
// free VNI and subnet, and racers who lost see the winner's at once.
func (a *Allocator) readLeases(ctx context.Context, wantVNIs bool) ([]leasedSubnet, kvstore.KVPair, map[uint32]bool, error) {
	var (
		vnis   map[uint32]bool
		vniErr error
		wg     sync.WaitGroup
	)
	if wantVNIs {
		wg.Go(func() { vnis, vniErr = a.listVNIs(ctx) })
	}
	leased, guard, err := a.listSubnets(ctx)
	wg.Wait()
	return leased, guard, vnis, errors.Join(err, vniErr)
}

// leasedSubnet is one subnets/<cidr> key.
type leasedSubnet struct {
	prefix netip.Prefix
	owner  string
}

// listSubnets reads every subnet lease and the guard from one snapshot
// (see the top of this file).
func (a *Allocator) listSubnets(ctx context.Context) ([]leasedSubnet, kvstore.KVPair, error) {
	kvs, _, err := a.store.List(ctx, strings.TrimSuffix(subnetPrefix, "/"))
	if err != nil {
		return nil, kvstore.KVPair{}, fmt.Errorf("listing subnet leases: %w", err)
	}
	var (
		leased []leasedSubnet
		guard  kvstore.KVPair
	)
	for _, kv := range kvs {
		if kv.Key == GuardKey {
			guard = kv
			continue
		}
		rest, ok := strings.CutPrefix(kv.Key, subnetPrefix)
		if !ok {
			continue
		}
		p, err := netip.ParsePrefix(rest)
		if err != nil {
			continue // not a lease we wrote; it names no range to avoid
		}
		leased = append(leased, leasedSubnet{prefix: p.Masked(), owner: string(kv.Value)})
	}
	return leased, guard, nil
}

// guardOp bumps the guard read as kv (Version 0: absent).
func guardOp(kv kvstore.KVPair) kvstore.Op {
	if kv.Version == 0 {
		return kvstore.Op{Kind: kvstore.OpCreate, Key: GuardKey, Value: []byte("1")}
	}
	// n+1 never reads back as the value read, so the swap is never a
	// no-op write (which Consul would drop without a new version).
	n, _ := strconv.ParseUint(string(kv.Value), 10, 64)
	next := []byte(strconv.FormatUint(n+1, 10))
	return kvstore.Op{Kind: kvstore.OpSwap, Key: GuardKey, Value: next, Version: kv.Version}
}

// chooseSubnets checks the explicit subnets against the leases and adds
// automatic ones from the pools.
func (a *Allocator) chooseSubnets(req subnetRequest, leased []leasedSubnet) ([]SubnetConfig, error) {
	chosen := slices.Clone(req.explicit)
	for _, c := range req.explicit {
		for _, l := range leased {
			if l.prefix.Overlaps(c.Subnet) {
				return nil, failf(ErrSubnetOverlap, "subnet %s overlaps subnet %s, leased by %s", c.Subnet, l.prefix, l.owner)
			}
		}
	}
	hasFamily := func(v4 bool) bool {
		return slices.ContainsFunc(chosen, func(c SubnetConfig) bool { return c.Subnet.Addr().Is4() == v4 })
	}
	for _, v4 := range []bool{true, false} {
		if hasFamily(v4) || (v4 && !req.auto4) || (!v4 && !req.auto6) {
			continue
		}
		taken := make([]netip.Prefix, 0, len(leased)+len(chosen))
		for _, l := range leased {
			taken = append(taken, l.prefix)
		}
		for _, c := range chosen {
			taken = append(taken, c.Subnet)
		}
		p, err := a.freeSubnet(v4, taken)
		if err != nil {
			return nil, err
		}
		c, err := SubnetConfig{Subnet: p}.Normalize()
		if err != nil {
			return nil, err
		}
		chosen = append(chosen, c)
	}
	sortSubnets(chosen)
	return chosen, nil
}

// freeSubnet returns the first block of the pools of one family that
// overlaps nothing taken. It merges the taken prefixes into disjoint
// address intervals and walks them in step with the candidate blocks, so
// it costs O(n log n) for n leases however full the pools are.
func (a *Allocator) freeSubnet(v4 bool, taken []netip.Prefix) (netip.Prefix, error) {
	type span struct{ lo, hi netip.Addr }
	var spans []span
	for _, p := range taken {
		if p.Addr().Is4() == v4 {
			spans = append(spans, span{p.Masked().Addr(), lastAddr(p)})
		}
	}
	slices.SortFunc(spans, func(x, y span) int { return x.lo.Compare(y.lo) })
	merged := spans[:0]
	for _, s := range spans {
		if n := len(merged); n > 0 && s.lo.Compare(merged[n-1].hi) <= 0 {
			if s.hi.Compare(merged[n-1].hi) > 0 {
				merged[n-1].hi = s.hi
			}
			continue
		}
		merged = append(merged, s)
	}

	var pools []string
	for _, pool := range a.pools {
		if pool.Base.Addr().Is4() != v4 {
			continue
		}
		pools = append(pools, pool.String())
		block := netip.PrefixFrom(pool.Base.Addr(), pool.Size)
		i := 0
		for block.IsValid() && pool.Base.Contains(block.Addr()) {
			hi := lastAddr(block)
			for i < len(merged) && merged[i].hi.Less(block.Addr()) {
				i++
			}
			if i == len(merged) || hi.Less(merged[i].lo) {
				return block, nil
			}
			// Skip to the first aligned block after the taken span.
			next := merged[i].hi.Next()
			if !next.IsValid() {
				break
			}
			block = netip.PrefixFrom(next, pool.Size).Masked()
			if block.Addr().Less(next) {
				after := lastAddr(block).Next()
				if !after.IsValid() {
					break
				}
				block = netip.PrefixFrom(after, pool.Size)
			}
		}
	}
	family := "IPv4"
	if !v4 {
		family = "IPv6"
	}
	if len(pools) == 0 {
		return netip.Prefix{}, failf(ErrInvalid, "no %s address pool is configured; give an %s subnet", family, family)
	}
	return netip.Prefix{}, failf(ErrPoolExhausted, "no free %s subnet left in the address pools (%s)", family, strings.Join(pools, "; "))
}

// listVNIs returns the leased VNIs.
func (a *Allocator) listVNIs(ctx context.Context) (map[uint32]bool, error) {
	kvs, _, err := a.store.List(ctx, vniPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing VNI leases: %w", err)
	}
	taken := make(map[uint32]bool, len(kvs))
	for _, kv := range kvs {
		if v, err := strconv.ParseUint(strings.TrimPrefix(kv.Key, vniPrefix), 10, 32); err == nil {
			taken[uint32(v)] = true
		}
	}
	return taken, nil
}

// pickVNI returns the lowest free VNI of the range, or 0 if none is free.
// The walk costs O(leases), all local.
func (a *Allocator) pickVNI(taken map[uint32]bool) uint32 {
	for v := a.vniMin; ; v++ {
		if !taken[v] {
			return v
		}
		if v == a.vniMax {
			return 0
		}
	}
}

// vniInUse names the owner of a requested VNI that is taken.
func (a *Allocator) vniInUse(ctx context.Context, vni uint32) error {
	kv, err := a.store.Get(ctx, VNIKey(vni))
	owner := "another network"
	if err == nil {
		owner = "network " + string(kv.Value)
	}
	return failf(ErrVNIInUse, "VNI %d is already used by %s", vni, owner)
}

// ReleaseOps returns compare-and-delete ops for the VNI and subnet leases
// of lease that its network still owns, for the transaction that deletes
// the network record: then the record and its leases go together. If that
// transaction fails on one of these ops (a lease changed meanwhile), call
// ReleaseOps again. Leases already gone or owned by another network are
// left out.
func (a *Allocator) ReleaseOps(ctx context.Context, lease NetworkLease) ([]kvstore.Op, error) {
	var keys []string
	if lease.VNI != 0 {
		keys = append(keys, VNIKey(lease.VNI))
	}
	for _, s := range lease.Subnets {
		keys = append(keys, SubnetKey(s.Subnet))
	}
	var ops []kvstore.Op
	for _, key := range keys {
		kv, err := a.store.Get(ctx, key)
		switch {
		case errors.Is(err, kvstore.ErrKeyNotFound):
			continue
		case err != nil:
			return nil, fmt.Errorf("reading lease %s: %w", key, err)
		case string(kv.Value) == lease.NetworkID:
			ops = append(ops, kvstore.Op{Kind: kvstore.OpCompareDelete, Key: key, Version: kv.Version})
		}
	}
	return ops, nil
}

// ReleaseVNI deletes vni/<vni> if networkID owns it. It is idempotent.
func (a *Allocator) ReleaseVNI(ctx context.Context, networkID string, vni uint32) error {
	return a.releaseOwned(ctx, VNIKey(vni), func(v []byte) bool { return string(v) == networkID })
}

// ReleaseSubnet deletes subnets/<cidr> if networkID owns it. It is
// idempotent.
func (a *Allocator) ReleaseSubnet(ctx context.Context, networkID string, subnet netip.Prefix) error {
	return a.releaseOwned(ctx, SubnetKey(subnet), func(v []byte) bool { return string(v) == networkID })
}

// ReleaseNetwork deletes every lease of the network that it still owns:
// its addresses, subnets and VNI. It is idempotent; it tries everything
// and joins the errors.
func (a *Allocator) ReleaseNetwork(ctx context.Context, lease NetworkLease) error {
	errs := []error{a.ReleaseNetworkAddresses(ctx, lease.NetworkID)}
	for _, s := range lease.Subnets {
		errs = append(errs, a.ReleaseSubnet(ctx, lease.NetworkID, s.Subnet))
	}
	if lease.VNI != 0 {
		errs = append(errs, a.ReleaseVNI(ctx, lease.NetworkID, lease.VNI))
	}
	return errors.Join(errs...)
}

// releaseOwned deletes key if owns(value), by compare-and-delete at the
// version read; if the key changes in between it reads again.
func (a *Allocator) releaseOwned(ctx context.Context, key string, owns func([]byte) bool) error {
	return a.retry(ctx, "releasing "+key, func(int) (bool, error) {
		kv, err := a.store.Get(ctx, key)
		switch {
		case errors.Is(err, kvstore.ErrKeyNotFound):
			return true, nil
		case err != nil:
			return false, fmt.Errorf("reading lease %s: %w", key, err)
		case !owns(kv.Value):
			return true, nil
		}
		err = a.store.CompareAndDelete(ctx, key, kv.Version)
		switch {
		case err == nil, errors.Is(err, kvstore.ErrKeyNotFound):
			return true, nil
		case errors.Is(err, kvstore.ErrKeyModified):
			return false, nil
		}
		return false, fmt.Errorf("deleting lease %s: %w", key, err)
	})
}
