package ipam_test

import (
	"net/netip"
	"testing"

	"github.com/meshnet/meshnet/testenv/check"

	"github.com/meshnet/meshnet/agent/ipam"
)

func TestNormalize(t *testing.T) {
	good := []struct {
		in   ipam.SubnetConfig
		want ipam.SubnetConfig
	}{
		{ipam.SubnetConfig{Subnet: pfx("10.1.0.0/16")},
			ipam.SubnetConfig{Subnet: pfx("10.1.0.0/16"), Gateway: addr("10.1.0.1")}},
		{ipam.SubnetConfig{Subnet: pfx("10.1.2.3/16"), IPRange: pfx("10.1.2.9/24")},
			ipam.SubnetConfig{Subnet: pfx("10.1.0.0/16"), Gateway: addr("10.1.0.1"), IPRange: pfx("10.1.2.0/24")}},
		{ipam.SubnetConfig{Subnet: pfx("fd00::/64"), Gateway: addr("fd00::ff")},
			ipam.SubnetConfig{Subnet: pfx("fd00::/64"), Gateway: addr("fd00::ff")}},
		{ipam.SubnetConfig{Subnet: pfx("10.0.0.0/30")},
			ipam.SubnetConfig{Subnet: pfx("10.0.0.0/30"), Gateway: addr("10.0.0.1")}},
	}
	for _, c := range good {
		got, err := c.in.Normalize()
		check.OK(t, err)
		if got.Subnet != c.want.Subnet || got.Gateway != c.want.Gateway || got.IPRange != c.want.IPRange {
			t.Errorf("Normalize(%+v) = %+v, want %+v", c.in, got, c.want)
		}
	}
	bad := []ipam.SubnetConfig{
		{},                                   // no subnet
		{Subnet: pfx("10.0.0.0/31")},         // too small
		{Subnet: pfx("10.0.0.0/32")},         // too small
		{Subnet: pfx("fd00::/127")},          // too small
		{Subnet: pfx("::ffff:10.0.0.0/120")}, // mapped IPv4
		{Subnet: pfx("10.0.0.0/24"), Gateway: addr("10.0.1.1")},                                  // gateway outside
		{Subnet: pfx("10.0.0.0/24"), Gateway: addr("10.0.0.0")},                                  // network address
		{Subnet: pfx("10.0.0.0/24"), Gateway: addr("10.0.0.255")},                                // broadcast
		{Subnet: pfx("10.0.0.0/24"), Gateway: addr("fd00::1")},                                   // wrong family
		{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.1.0/25")},                                // range outside
		{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.0.0/23")},                                // range larger
		{Subnet: pfx("10.0.0.0/24"), AuxAddresses: map[string]netip.Addr{"x": addr("10.0.1.1")}}, // aux outside
		{Subnet: pfx("10.0.0.0/24"), AuxAddresses: map[string]netip.Addr{"": addr("10.0.0.9")}},  // aux unnamed
	}
	for _, c := range bad {
		_, err := c.Normalize()
		wantErr(t, err, ipam.ErrInvalid)
		t.Logf("%+v: %v", c, err)
	}
}

func TestParseAddressPool(t *testing.T) {
	p, err := ipam.ParseAddressPool("base=10.0.0.0/8,size=24")
	check.OK(t, err)
	if p.Base != pfx("10.0.0.0/8") || p.Size != 24 {
		t.Fatalf("parsed %+v", p)
	}
	for _, s := range []string{"", "base=10.0.0/8,size=24", "base=10.0.0.0/8", "size=24",
		"base=10.0.0.0/8,size=x", "base=10.0.0.0/8,size=4", "base=10.0.0.0/8,size=31",
		"base=10.0.0.1/8,size=24", "base=10.0.0.0/8,size=24,color=red"} {
		_, err := ipam.ParseAddressPool(s)
		wantErr(t, err, ipam.ErrInvalid)
	}
}

func TestNew(t *testing.T) {
	for _, cfg := range []ipam.Config{
		{VNIMin: 10, VNIMax: 5},
		{VNIMin: 1, VNIMax: 1 << 24},
		{VNIMin: 0, VNIMax: 100},
		{Pools: []ipam.AddressPool{{Base: pfx("10.0.0.0/8"), Size: 7}}},
	} {
		_, err := ipam.New(nil, cfg)
		wantErr(t, err, ipam.ErrInvalid)
	}
}
