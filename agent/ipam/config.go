package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// AddressPool is one entry of default-address-pools: automatic subnets of
// prefix length Size are cut from Base.
type AddressPool struct {
	Base netip.Prefix `json:"base" yaml:"base"`
	Size int          `json:"size" yaml:"size"`
}

func (p AddressPool) String() string { return fmt.Sprintf("base=%s,size=%d", p.Base, p.Size) }

// Validate checks that the pool can yield subnets with room for endpoints.
func (p AddressPool) Validate() error {
	if !p.Base.IsValid() || p.Base.Addr().Zone() != "" || p.Base.Addr().Is4In6() {
		return failf(ErrInvalid, "address pool has no valid base prefix (want base=CIDR,size=N)")
	}
	if p.Base != p.Base.Masked() {
		return failf(ErrInvalid, "address pool base %s has host bits set; did you mean %s?", p.Base, p.Base.Masked())
	}
	if p.Base.Bits() == 0 {
		return failf(ErrInvalid, "address pool base %s is the whole address space; give a private range such as 10.0.0.0/8", p.Base)
	}
	if p.Size < p.Base.Bits() || p.Size > maxSubnetBits(p.Base.Addr()) {
		return failf(ErrInvalid, "address pool %s: size %d must be between %d and %d",
			p.Base, p.Size, p.Base.Bits(), maxSubnetBits(p.Base.Addr()))
	}
	return nil
}

// ParseAddressPool parses Docker's notation of a pool, "base=CIDR,size=N".
func ParseAddressPool(s string) (AddressPool, error) {
	p, _, err := parsePool(s, false)
	return p, err
}

// parsePool reads one pool's key=value fields, in any order; scope
// (global unless given) is allowed only withScope.
func parsePool(s string, withScope bool) (p AddressPool, scope string, err error) {
	want := "base=CIDR,size=N"
	if withScope {
		want += "[,scope=global|local]"
	}
	scope = "global"
	seen := map[string]bool{}
	for field := range strings.SplitSeq(s, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(field), "=")
		if seen[k] {
			return p, "", failf(ErrInvalid, "address pool %q gives %s twice", s, k)
		}
		seen[k] = true
		switch {
		case k == "base":
			if p.Base, err = netip.ParsePrefix(v); err != nil {
				return p, "", failf(ErrInvalid, "address pool %q: base %q is not a CIDR", s, v)
			}
		case k == "size":
			if p.Size, err = strconv.Atoi(v); err != nil {
				return p, "", failf(ErrInvalid, "address pool %q: size %q is not a number", s, v)
			}
		case k == "scope" && withScope:
			if v != "global" && v != "local" {
				return p, "", failf(ErrInvalid, "address pool %q: scope is global or local", s)
			}
			scope = v
		default:
			return p, "", failf(ErrInvalid, "address pool %q: unknown field %q (want %s)", s, k, want)
		}
	}
	if !seen["base"] || !seen["size"] {
		return p, "", failf(ErrInvalid, "address pool %q needs both base=CIDR and size=N", s)
	}
	return p, scope, p.Validate()
}

// ParseAddressPools reads default-address-pools entries, each
// "base=CIDR,size=N[,scope=global|local]" with the fields in any order
// (scope defaults to global), and returns the pools of each scope; a scope
// with no entry gets its default pools. Global and local pools must not
// overlap: local subnets are not leased in the cluster store.
func ParseAddressPools(entries []string) (global, local []AddressPool, err error) {
	for _, e := range entries {
		p, scope, err := parsePool(e, true)
		if err != nil {
			return nil, nil, err
		}
		if scope == "local" {
			local = append(local, p)
		} else {
			global = append(global, p)
		}
	}
	if len(global) == 0 {
		global = DefaultGlobalPools()
	}
	if len(local) == 0 {
		local = DefaultLocalPools()
	}
	for _, g := range global {
		for _, l := range local {
			if g.Base.Overlaps(l.Base) {
				return nil, nil, failf(ErrInvalid, "global address pool %s overlaps local pool %s", g.Base, l.Base)
			}
		}
	}
	return global, local, nil
}

// DefaultGlobalPools are the pools of global (overlay) networks.
func DefaultGlobalPools() []AddressPool {
	return []AddressPool{{Base: netip.MustParsePrefix("10.0.0.0/8"), Size: 24}}
}

// DefaultLocalPools are the pools of local (bridge) networks.
func DefaultLocalPools() []AddressPool {
	return []AddressPool{
		{Base: netip.MustParsePrefix("172.17.0.0/12"), Size: 16},
		{Base: netip.MustParsePrefix("192.168.0.0/16"), Size: 20},
	}
}

// SubnetConfig is one subnet of a network with the options that shape its
// address leases (--subnet, --gateway, --ip-range, --aux-address).
type SubnetConfig struct {
	Subnet netip.Prefix `json:"subnet"`
	// Gateway is reserved, never leased. Default: the first address after
	// the network address.
	Gateway netip.Addr `json:"gateway,omitzero"`
	// IPRange, if set, is where automatic addresses come from; requested
	// addresses may lie anywhere in Subnet.
	IPRange netip.Prefix `json:"ip_range,omitzero"`
	// AuxAddresses are reserved by name (for hosts outside meshnet's
	// control) and never leased.
	AuxAddresses map[string]netip.Addr `json:"aux_addresses,omitempty"`
}

// maxSubnetBits is the longest prefix that still leaves room for a gateway
// and an endpoint: /30 for IPv4 (network and broadcast take two more),
// /126 for IPv6.
func maxSubnetBits(a netip.Addr) int {
	if a.Is4() {
		return 30
	}
	return 126
}

// Normalize checks c and returns it with the subnet and IP range masked to
// their network addresses and the default gateway filled in. Errors wrap
// ErrInvalid and name the offending value.
func (c SubnetConfig) Normalize() (SubnetConfig, error) {
	s := c.Subnet
	if !s.IsValid() {
		return c, failf(ErrInvalid, "subnet is missing or not a CIDR")
	}
	if s.Addr().Zone() != "" || s.Addr().Is4In6() {
		return c, failf(ErrInvalid, "subnet %s: write IPv4 subnets in plain dotted notation, without zones", s)
	}
	if s.Bits() == 0 {
		return c, failf(ErrInvalid, "subnet %s is the whole address space; give a smaller subnet", s)
	}
	if s.Bits() > maxSubnetBits(s.Addr()) {
		return c, failf(ErrInvalid, "subnet %s is too small: it leaves no address for endpoints (at most /%d)",
			s, maxSubnetBits(s.Addr()))
	}
	c.Subnet = s.Masked()
	s = c.Subnet
	if c.Gateway.IsValid() {
		if err := checkHostAddr(s, c.Gateway, "gateway"); err != nil {
			return c, err
		}
	} else {
		c.Gateway = s.Addr().Next()
	}
	if c.IPRange.IsValid() {
		r := c.IPRange.Masked()
		if r.Addr().Is4() != s.Addr().Is4() || r.Bits() < s.Bits() || !s.Contains(r.Addr()) {
			return c, failf(ErrInvalid, "IP range %s is not inside subnet %s", c.IPRange, s)
		}
		c.IPRange = r
	}
	if len(c.AuxAddresses) > 0 {
		aux := make(map[string]netip.Addr, len(c.AuxAddresses))
		for name, a := range c.AuxAddresses {
			if name == "" {
				return c, failf(ErrInvalid, "auxiliary address %s has no name (want NAME=IP)", a)
			}
			if !a.IsValid() {
				return c, failf(ErrInvalid, "auxiliary address %s has no IP (want NAME=IP)", name)
			}
			if a.Zone() != "" || a.Is4() != s.Addr().Is4() || !s.Contains(a) {
				return c, failf(ErrInvalid, "auxiliary address %s=%s is not inside subnet %s", name, a, s)
			}
			aux[name] = a
		}
		c.AuxAddresses = aux
	}
	if c.IPRange.IsValid() && len(freeAddrs([]SubnetConfig{c}, nil, false)) == 0 {
		return c, failf(ErrInvalid, "IP range %s holds no address to hand out (only the gateway or reserved addresses)", c.IPRange)
	}
	return c, nil
}

// checkHostAddr refuses an address outside s or one that cannot be a host:
// the network address, and for IPv4 the broadcast address.
func checkHostAddr(s netip.Prefix, a netip.Addr, what string) error {
	switch {
	case !a.IsValid() || a.Zone() != "" || a.Is4() != s.Addr().Is4() || !s.Contains(a):
		return failf(ErrInvalid, "%s %s is not inside subnet %s", what, a, s)
	case a == s.Addr():
		return failf(ErrInvalid, "%s %s is the network address of subnet %s", what, a, s)
	case a.Is4() && a == lastAddr(s):
		return failf(ErrInvalid, "%s %s is the broadcast address of subnet %s", what, a, s)
	}
	return nil
}

// reserved says why a is not for leasing in c, or "" if it is.
func (c SubnetConfig) reserved(a netip.Addr) string {
	switch {
	case a == c.Subnet.Addr():
		return "network address"
	case a.Is4() && a == lastAddr(c.Subnet):
		return "broadcast address"
	case a == c.Gateway:
		return "gateway"
	}
	for name, aux := range c.AuxAddresses {
		if a == aux {
			return "auxiliary address " + name
		}
	}
	return ""
}

// lastAddr is the highest address of p (the broadcast address of an IPv4
// subnet).
func lastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	b := p.Addr().AsSlice()
	for i := range b {
		switch lo := i * 8; {
		case lo >= p.Bits():
			b[i] = 0xff
		case lo+8 > p.Bits():
			b[i] |= 0xff >> (p.Bits() - lo)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// sortSubnets orders subnets IPv4 first, then by address, so the lease's
// first subnet is its IPv4 one.
func sortSubnets(cs []SubnetConfig) {
	slices.SortFunc(cs, func(a, b SubnetConfig) int {
		if a.Subnet.Addr().Is4() != b.Subnet.Addr().Is4() {
			if a.Subnet.Addr().Is4() {
				return -1
			}
			return 1
		}
		return a.Subnet.Addr().Compare(b.Subnet.Addr())
	})
}
