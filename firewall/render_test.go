package firewall

import (
	"net/netip"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	if got := render(Ruleset{}); got != nil {
		t.Fatalf("no networks: %v, want no table", got)
	}
	rs := Ruleset{Networks: []Network{
		{Bridge: "mnbr-4096", Subnets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/64")}},
		{Bridge: "br-9f8e", Subnets: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24")}, Internal: true},
		{Bridge: "br-1a2b", Subnets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}},
	}}
	want := `set bridges ifname: br-1a2b br-9f8e mnbr-4096
set internal ifname: br-9f8e
set egress4 ipv4_addr: 10.0.0.0/24 10.1.0.0/24
chain forward (hook forward)
	between networks
	internal networks: nothing leaves
	internal networks: nothing enters
	answers
	nothing else enters a network
chain between
	within br-1a2b
	within br-9f8e
	within mnbr-4096
	networks are isolated
chain postrouting (hook postrouting)
	egress as the host
`
	if got := render(rs).String(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	for _, bad := range []Ruleset{
		{Networks: []Network{{Bridge: ""}}},
		{Networks: []Network{{Bridge: "a-name-longer-than-15"}}},
		{Networks: []Network{{Bridge: "br0"}, {Bridge: "br0"}}},
	} {
		if err := bad.validate(); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: %v, want one line", bad, err)
		}
	}
}
