package ipam

// Host-local address management: the same rules as the store-backed
// leases, for networks that live in one agent's data dir (the bridge
// driver). The agent serialises its local changes, so plain functions over
// what it already holds are enough; no store, no races.

import (
	"net/netip"
	"slices"
)

// FreeSubnet returns the first block of pools of one family that overlaps
// none of taken (ErrPoolExhausted when there is none).
func FreeSubnet(pools []AddressPool, v4 bool, taken []netip.Prefix) (netip.Prefix, error) {
	return (&Allocator{pools: pools}).freeSubnet(v4, taken)
}

// CheckOverlap fails with ErrSubnetOverlap if subnet overlaps one of taken.
func CheckOverlap(subnet netip.Prefix, taken []netip.Prefix) error {
	for _, t := range taken {
		if t.Overlaps(subnet) {
			return failf(ErrSubnetOverlap, "subnet %s overlaps %s, which is in use", subnet, t)
		}
	}
	return nil
}

// PickAddress returns an address of subnets (normalized) for an endpoint:
// want if valid (it must be a free host address of one of them), else the
// lowest free address of the family v4, with the subnet's prefix length.
// taken holds the addresses in use.
func PickAddress(subnets []SubnetConfig, taken map[netip.Addr]bool, want netip.Addr, v4 bool) (netip.Prefix, error) {
	if want.IsValid() {
		i := slices.IndexFunc(subnets, func(c SubnetConfig) bool {
			return c.Subnet.Addr().Is4() == want.Is4() && c.Subnet.Contains(want)
		})
		if i < 0 {
			return netip.Prefix{}, failf(ErrInvalid, "address %s is not in any subnet of the network (%s)", want, rangesOf(subnets))
		}
		c := subnets[i]
		if err := checkHostAddr(c.Subnet, want, "address"); err != nil {
			return netip.Prefix{}, err
		}
		if why := c.reserved(want); why != "" {
			return netip.Prefix{}, failf(ErrAddressInUse, "address %s is reserved as the %s", want, why)
		}
		if taken[want] {
			return netip.Prefix{}, failf(ErrAddressInUse, "address %s is already in use", want)
		}
		return netip.PrefixFrom(want, c.Subnet.Bits()), nil
	}
	var family []SubnetConfig
	for _, c := range subnets {
		if c.Subnet.Addr().Is4() == v4 {
			family = append(family, c)
		}
	}
	if len(family) == 0 {
		return netip.Prefix{}, failf(ErrInvalid, "the network has no %s subnet", familyName(v4))
	}
	free := freeAddrs(family, taken, false)
	if len(free) == 0 {
		return netip.Prefix{}, failf(ErrPoolExhausted, "no free %s address left in %s", familyName(v4), rangesOf(family))
	}
	return netip.PrefixFrom(free[0], prefixOf(family, free[0]).Bits()), nil
}
