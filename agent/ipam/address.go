package ipam

// Address leases: ips/<network-id>/<ip> → {endpoint id, node}.
//
// An automatic lease walks the network's range from the lowest address,
// skipping leased and reserved ones, in a view of the leases, and creates
// the first free key. The view is the Allocator's, kept per network (see
// addrViews): listed from the store when there is none, then kept up to
// date with what this Allocator leases and releases and with the races it
// loses, so that a lease on a busy network costs one create, not a listing
// of every lease. A racer that loses marks that address taken in the view
// and tries a random one of the next few free addresses, so a crowd of
// concurrent leases spreads out instead of all fighting over the same
// lowest address. The view is listed again after relistAfter lost races,
// after viewTTL, after a failure that leaves unclear whether a lease was
// made, and before an automatic lease reports the range exhausted.
//
// A fenced lease (AddressRequest.Fence) writes the same key, but in a
// transaction with a check of the fence key, so it commits only while the
// network's record is at the version the caller read. Removing a network
// moves its record first, then lists and deletes the leases: every lease
// either committed before the move (and is listed) or fails. Returning an
// address already held (the idempotent case) checks the fence and the
// held lease together in one read-only transaction, for the same reason.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/meshnet/meshnet/kvstore"
)

// Owner is the value of an address lease: which endpoint on which node
// holds it. The node is what Reclaim judges by.
type Owner struct {
	EndpointID string `json:"endpoint_id"`
	Node       string `json:"node"`
}

// AddressRequest asks for one address of a network.
type AddressRequest struct {
	// Addr is a requested address (--ip, --ip6); the zero Addr means the
	// lowest free one.
	Addr netip.Addr
	// IPv6, with a zero Addr, leases from the network's IPv6 subnets
	// instead of its IPv4 ones.
	IPv6  bool
	Owner Owner
	// Fence, if not nil, makes the lease conditional on the network's
	// record; see Fence.
	Fence *Fence
}

// Fence is a key (the network's record, networks/<id>) that must still be
// at Version when an address lease commits: the create of
// ips/<network-id>/<ip> and a check of the fence go in one transaction. If
// the fence has moved or is gone, the lease fails with ErrFenceMoved at
// once, without retrying, and nothing is leased.
type Fence struct {
	Key     string
	Version uint64
}

// AddressLease is one leased address.
type AddressLease struct {
	NetworkID string
	Addr      netip.Addr
	Owner     Owner
	Version   uint64 // store version that wrote it
}

// pickWindow is how many of the lowest free addresses a retry chooses
// among at random, so that racers who all lost stop chasing the same one.
const pickWindow = 32

// relistAfter is how many lost races a network's view absorbs before it
// is listed again.
const relistAfter = 8

// LeaseAddress leases an address of a network whose subnets (as leased by
// LeaseNetwork) are given, and returns it with its subnet's prefix length.
// A requested address must be a host address of one of the subnets; it may
// lie outside the IP range. It fails with ErrAddressInUse if it is the
// gateway, an auxiliary address or leased by another endpoint. Leasing
// again for the endpoint that already holds the address (or, for an
// automatic lease, any address of that family) returns that address, so a
// retry after an unclear store failure is safe.
//
// With req.Fence, the lease commits only while the fence key is at the
// given version; if it is not, LeaseAddress returns an error wrapping
// ErrFenceMoved at once and leases nothing. Lost races on the address
// itself are retried as without a fence.
func (a *Allocator) LeaseAddress(ctx context.Context, networkID string, subnets []SubnetConfig, req AddressRequest) (netip.Prefix, error) {
	if err := checkID("network", networkID); err != nil {
		return netip.Prefix{}, err
	}
	if req.Owner.EndpointID == "" || req.Owner.Node == "" {
		return netip.Prefix{}, failf(ErrInvalid, "an address lease needs an endpoint id and a node")
	}
	if f := req.Fence; f != nil && (f.Key == "" || f.Version == 0) {
		return netip.Prefix{}, failf(ErrInvalid, "the fence of an address lease needs a key and a version")
	}
	value, err := json.Marshal(req.Owner)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("encoding lease owner: %w", err)
	}
	subnets, err = normalizeAll(subnets)
	if err != nil {
		return netip.Prefix{}, err
	}
	if req.Addr.IsValid() {
		return a.leaseRequested(ctx, networkID, subnets, req, value)
	}
	v4 := !req.IPv6
	family := slices.DeleteFunc(slices.Clone(subnets), func(c SubnetConfig) bool { return c.Subnet.Addr().Is4() != v4 })
	if len(family) == 0 {
		return netip.Prefix{}, failf(ErrInvalid, "network %s has no %s subnet", networkID, familyName(v4))
	}
	var pending netip.Addr
	err = a.retry(ctx, "leasing an address in network "+networkID, func(n int) (bool, error) {
		v := a.views.get(networkID)
		listed := v == nil
		if listed {
			leases, err := a.Addresses(ctx, networkID)
			if err != nil {
				return false, err
			}
			for _, l := range leases {
				if l.Owner.EndpointID == req.Owner.EndpointID && l.Addr.Is4() == v4 {
					// Already ours. If it changed since the listing,
					// look again.
					pending = l.Addr
					return a.confirmHeld(ctx, networkID, IPKey(networkID, l.Addr), l.Version, req.Fence)
				}
			}
			v = a.views.put(networkID, leases)
		} else if have, ok := a.views.heldBy(v, req.Owner.EndpointID, v4); ok {
			// Already ours, as far as the view knows: make sure.
			pending = have
			held, err := a.heldBy(ctx, networkID, have, req.Owner.EndpointID, req.Fence)
			if !held {
				a.views.drop(networkID, v)
			}
			return held, err
		}
		addr, ok := a.views.pick(v, family, n > 0)
		if !ok {
			a.views.drop(networkID, v)
			if !listed {
				return false, nil // the view may be out of date; look again
			}
			return false, failf(ErrPoolExhausted, "no free address left in network %s (%s)", networkID, rangesOf(family))
		}
		err := a.createLease(ctx, networkID, IPKey(networkID, addr), value, req.Fence)
		switch {
		case err == nil:
			pending = addr
			a.views.leased(v, req.Owner.EndpointID, addr)
			return true, nil
		case errors.Is(err, errAddressTaken):
			a.views.lost(networkID, v) // taken by a racer: stays taken in the view
			return false, nil
		}
		// Not leased, or unclear: the next attempt lists again (and finds
		// the lease if it was made after all).
		a.views.drop(networkID, v)
		if errors.Is(err, ErrFenceMoved) {
			return false, err
		}
		return false, fmt.Errorf("leasing address %s: %w", addr, err)
	})
	if err != nil {
		return netip.Prefix{}, err
	}
	return prefixOf(family, pending), nil
}

// leaseRequested leases the one address the caller asked for.
func (a *Allocator) leaseRequested(ctx context.Context, networkID string, subnets []SubnetConfig,
	req AddressRequest, value []byte) (netip.Prefix, error) {
	addr := req.Addr
	i := slices.IndexFunc(subnets, func(c SubnetConfig) bool {
		return c.Subnet.Addr().Is4() == addr.Is4() && c.Subnet.Contains(addr)
	})
	if i < 0 {
		return netip.Prefix{}, failf(ErrInvalid, "address %s is not in any subnet of network %s (%s)",
			addr, networkID, rangesOf(subnets))
	}
	c := subnets[i]
	if err := checkHostAddr(c.Subnet, addr, "address"); err != nil {
		return netip.Prefix{}, err
	}
	if why := c.reserved(addr); why != "" {
		return netip.Prefix{}, failf(ErrAddressInUse, "address %s is reserved as the %s of network %s", addr, why, networkID)
	}
	key := IPKey(networkID, addr)
	err := a.retry(ctx, "leasing address "+addr.String(), func(int) (bool, error) {
		err := a.createLease(ctx, networkID, key, value, req.Fence)
		switch {
		case err == nil:
			a.views.noted(networkID, req.Owner.EndpointID, addr)
			return true, nil
		case errors.Is(err, ErrFenceMoved):
			return false, err
		case !errors.Is(err, errAddressTaken):
			return false, fmt.Errorf("leasing address %s: %w", addr, err)
		}
		kv, err := a.store.Get(ctx, key)
		switch {
		case errors.Is(err, kvstore.ErrKeyNotFound):
			return false, nil // released in between; try again
		case err != nil:
			return false, fmt.Errorf("reading lease of %s: %w", addr, err)
		}
		var o Owner
		if json.Unmarshal(kv.Value, &o) == nil && o.EndpointID == req.Owner.EndpointID {
			return a.confirmHeld(ctx, networkID, key, kv.Version, req.Fence)
		}
		return false, failf(ErrAddressInUse, "address %s is already in use by endpoint %s on node %s in network %s",
			addr, o.EndpointID, o.Node, networkID)
	})
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(addr, c.Subnet.Bits()), nil
}

// heldBy reports whether endpointID holds addr's lease and, with a fence,
// the fence holds too; false (and no error) means the lease changed.
func (a *Allocator) heldBy(ctx context.Context, networkID string, addr netip.Addr, endpointID string, fence *Fence) (bool, error) {
	key := IPKey(networkID, addr)
	kv, err := a.store.Get(ctx, key)
	switch {
	case errors.Is(err, kvstore.ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading lease of %s: %w", addr, err)
	}
	var o Owner
	if json.Unmarshal(kv.Value, &o) != nil || o.EndpointID != endpointID {
		return false, nil
	}
	return a.confirmHeld(ctx, networkID, key, kv.Version, fence)
}

// errAddressTaken: the address's key exists, or was created and deleted
// again while the create was in flight; either way another writer won.
var errAddressTaken = errors.New("address lease taken by another writer")

// createLease creates key (an address lease) with value; with a fence, in
// one transaction with a check of the fence. A lost race on key yields
// errAddressTaken, a fence that does not hold an ErrFenceMoved error.
func (a *Allocator) createLease(ctx context.Context, networkID, key string, value []byte, fence *Fence) error {
	var err error
	if fence == nil {
		_, err = a.store.Create(ctx, key, value)
	} else {
		// The lease comes first: should a backend fail to tell which
		// condition broke, it names the first op, and a retry is safe.
		err = a.store.Txn(ctx, kvstore.Op{Kind: kvstore.OpCreate, Key: key, Value: value},
			kvstore.Op{Kind: kvstore.OpCheck, Key: fence.Key, Version: fence.Version})
	}
	switch k := conflictKey(err); {
	case err == nil:
		return nil
	case fence != nil && k == fence.Key:
		return fenceMoved(networkID, err)
	case k == key, errors.Is(err, kvstore.ErrKeyExists), errors.Is(err, kvstore.ErrKeyModified):
		return errAddressTaken
	}
	return err
}

// confirmHeld reports whether the lease at key is still at version and,
// with a fence, the fence still holds, both checked in one read-only
// transaction. false means the lease changed: look again.
func (a *Allocator) confirmHeld(ctx context.Context, networkID, key string, version uint64, fence *Fence) (bool, error) {
	if fence == nil {
		return true, nil
	}
	err := a.store.Txn(ctx, kvstore.Op{Kind: kvstore.OpCheck, Key: key, Version: version},
		kvstore.Op{Kind: kvstore.OpCheck, Key: fence.Key, Version: fence.Version})
	switch k := conflictKey(err); {
	case err == nil:
		return true, nil
	case k == fence.Key:
		return false, fenceMoved(networkID, err)
	case k == key:
		return false, nil
	}
	return false, fmt.Errorf("checking lease %s: %w", key, err)
}

// fenceMoved is the error of a lease whose fence failed with err.
func fenceMoved(networkID string, err error) error {
	if errors.Is(err, kvstore.ErrKeyNotFound) {
		return failf(ErrFenceMoved, "network %s was removed while an address was being leased", networkID)
	}
	return failf(ErrFenceMoved, "network %s changed while an address was being leased", networkID)
}

// freeAddrs walks the ranges of subnets from the bottom and returns the
// lowest free address, or with spread the lowest pickWindow of them. The
// walk only steps over taken or reserved addresses, so it costs
// O(leases + reserved) however large the subnet.
func freeAddrs(subnets []SubnetConfig, taken map[netip.Addr]bool, spread bool) []netip.Addr {
	want := 1
	if spread {
		want = pickWindow
	}
	var free []netip.Addr
	for _, c := range subnets {
		r := c.Subnet
		if c.IPRange.IsValid() {
			r = c.IPRange
		}
		last := lastAddr(r)
		for a := r.Masked().Addr(); a.IsValid(); a = a.Next() {
			if !taken[a] && c.reserved(a) == "" {
				free = append(free, a)
				if len(free) == want {
					return free
				}
			}
			if a == last {
				break
			}
		}
	}
	return free
}

// Addresses lists the address leases of a network, in key order. Leases
// whose value cannot be read are reported with an empty Owner.
func (a *Allocator) Addresses(ctx context.Context, networkID string) ([]AddressLease, error) {
	if err := checkID("network", networkID); err != nil {
		return nil, err
	}
	kvs, _, err := a.store.List(ctx, IPKeyPrefix(networkID))
	if err != nil {
		return nil, fmt.Errorf("listing address leases of network %s: %w", networkID, err)
	}
	leases := make([]AddressLease, 0, len(kvs))
	for _, kv := range kvs {
		if l, ok := parseAddressLease(kv); ok {
			leases = append(leases, l)
		}
	}
	return leases, nil
}

// parseAddressLease reads an ips/<network-id>/<ip> pair.
func parseAddressLease(kv kvstore.KVPair) (AddressLease, bool) {
	rest, ok := strings.CutPrefix(kv.Key, ipPrefix)
	if !ok {
		return AddressLease{}, false
	}
	netID, ip, ok := strings.Cut(rest, "/")
	addr, err := netip.ParseAddr(ip)
	if !ok || err != nil {
		return AddressLease{}, false
	}
	l := AddressLease{NetworkID: netID, Addr: addr, Version: kv.Version}
	json.Unmarshal(kv.Value, &l.Owner) // an unreadable owner stays empty
	return l, true
}

// ReleaseAddress deletes the lease of addr if endpointID holds it. It is
// idempotent.
func (a *Allocator) ReleaseAddress(ctx context.Context, networkID string, addr netip.Addr, endpointID string) error {
	if err := errors.Join(checkID("network", networkID), checkID("endpoint", endpointID)); err != nil {
		return err
	}
	err := a.releaseOwned(ctx, IPKey(networkID, addr), func(v []byte) bool {
		var o Owner
		return json.Unmarshal(v, &o) == nil && o.EndpointID == endpointID
	})
	if err == nil {
		a.views.released(networkID, addr)
	}
	return err
}

// ReleaseEndpoint deletes every address lease endpointID holds in the
// network (its IPv4 and IPv6 addresses). It is idempotent.
func (a *Allocator) ReleaseEndpoint(ctx context.Context, networkID, endpointID string) error {
	if err := checkID("endpoint", endpointID); err != nil {
		return err
	}
	leases, err := a.Addresses(ctx, networkID)
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range leases {
		if l.Owner.EndpointID != endpointID {
			continue
		}
		// The listing has the version: delete at it, and re-read only if
		// the lease changed since.
		err := a.store.CompareAndDelete(ctx, IPKey(networkID, l.Addr), l.Version)
		switch {
		case errors.Is(err, kvstore.ErrKeyModified):
			err = a.ReleaseAddress(ctx, networkID, l.Addr, endpointID)
		case errors.Is(err, kvstore.ErrKeyNotFound):
			err = nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ReleaseNetworkAddresses deletes every address lease of the network,
// whoever holds it; for a network being removed. It lists again until a
// listing comes back empty, so a lease taken by a racing connect during
// the release goes too. It is idempotent.
func (a *Allocator) ReleaseNetworkAddresses(ctx context.Context, networkID string) error {
	return a.retry(ctx, "releasing the addresses of network "+networkID, func(int) (bool, error) {
		leases, err := a.Addresses(ctx, networkID)
		if err != nil || len(leases) == 0 {
			return err == nil, err
		}
		var errs []error
		for _, l := range leases {
			if err := a.store.Delete(ctx, IPKey(networkID, l.Addr)); err != nil && !errors.Is(err, kvstore.ErrKeyNotFound) {
				errs = append(errs, fmt.Errorf("deleting lease of %s: %w", l.Addr, err))
			}
		}
		return false, errors.Join(errs...)
	})
}

// normalizeAll normalizes a network's subnets, so that a caller passing
// them as configured (without the default gateway) still gets the gateway
// reserved.
func normalizeAll(subnets []SubnetConfig) ([]SubnetConfig, error) {
	out := make([]SubnetConfig, len(subnets))
	for i, c := range subnets {
		n, err := c.Normalize()
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

func familyName(v4 bool) string {
	if v4 {
		return "IPv4"
	}
	return "IPv6"
}

// rangesOf renders the subnets (and IP ranges) for a message.
func rangesOf(subnets []SubnetConfig) string {
	var parts []string
	for _, c := range subnets {
		s := c.Subnet.String()
		if c.IPRange.IsValid() {
			s += " range " + c.IPRange.String()
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// prefixOf returns addr with the prefix length of the subnet holding it.
func prefixOf(subnets []SubnetConfig, addr netip.Addr) netip.Prefix {
	for _, c := range subnets {
		if c.Subnet.Contains(addr) {
			return netip.PrefixFrom(addr, c.Subnet.Bits())
		}
	}
	return netip.PrefixFrom(addr, addr.BitLen())
}
