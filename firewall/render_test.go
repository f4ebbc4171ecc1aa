package firewall

import (
	"net/netip"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	if inet, bridge := render(Ruleset{}); inet != nil || bridge != nil {
		t.Fatalf("no networks: %v %v, want no table", inet, bridge)
	}
	rs := Ruleset{Networks: []Network{
		{Bridge: "mnbr-4096", Subnets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/64")}},
		{Bridge: "br-9f8e", Subnets: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24")}, Internal: true},
		{Bridge: "br-1a2b", Subnets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}},
	}}
	rs.Ports = []Port{
		{Proto: "tcp", HostPort: 8080, Addr: netip.MustParseAddr("10.1.0.2"), Port: 80},
		{Proto: "udp", HostIP: netip.MustParseAddr("192.0.2.1"), HostPort: 5353, Addr: netip.MustParseAddr("10.0.0.3"), Port: 53},
	}
	want := `table inet
set bridges ifname: br-1a2b br-9f8e mnbr-4096
set internal ifname: br-9f8e
set egress4 ipv4_addr: 10.0.0.0/24 10.1.0.0/24
set ports4 proto.port:addr.port: tcp 8080 : 10.1.0.2 80
set ports4-addr addr.proto.port:addr.port: 192.0.2.1 udp 5353 : 10.0.0.3 53
chain loopback (hook raw-prerouting)
	127.0.0.0/8 only from lo
	no loopback source from a sandbox
chain prerouting (hook prerouting)
	to the host
chain output (hook output)
	from the host to itself
chain publish
	published on every address
	published on one address
chain input (hook input)
	sandboxes do not reach the host's loopback
chain forward (hook forward)
	internal networks: nothing leaves to the outside
	internal networks: nothing enters from the outside
	published ports
	between networks
	answers
	nothing else enters a network
chain between
	within br-1a2b
	within br-9f8e
	within mnbr-4096
	networks are isolated
chain postrouting (hook postrouting)
	egress as the host
	published ports from sandboxes
	published ports from the host's loopback
`
	inet, bridge := render(rs)
	if got := inet.String(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if bridge != nil {
		t.Fatalf("a bridge table without icc off:\n%s", bridge)
	}
	rs.Networks[2].NoICC = true
	rs.Networks[2].Veths = []string{"mnve0000000002", "mnve0000000001"}
	rs.Networks[2].Addrs = []netip.Addr{netip.MustParseAddr("10.1.0.3"), netip.MustParseAddr("10.1.0.2")}
	rs.Links = []Link{{From: netip.MustParseAddr("10.1.0.3"), To: netip.MustParseAddr("10.1.0.2"), Proto: "tcp", Port: 5432}}
	wantBridge := `table bridge
set noicc ifname: mnve0000000001 mnve0000000002
set noicc4 ipv4_addr: 10.1.0.2/32 10.1.0.3/32
set links addr.addr.proto.port: 10.1.0.3 10.1.0.2 tcp 5432
chain forward (hook bridge-forward)
	icc off
chain noicc
	linked, to the exposed ports
	linked, the answers
	no IPv4 between sandboxes
	no IPv6 between sandboxes
chain routed (hook bridge-output)
	icc off, routed through the gateway
`
	inet, bridge = render(rs)
	if bridge.String() != wantBridge {
		t.Fatalf("bridge table:\n%s\nwant:\n%s", bridge, wantBridge)
	}
	if !strings.Contains(inet.String(), "within br-1a2b") {
		t.Fatal("with br_netfilter loaded, a network with icc off would drop its linked traffic")
	}
	for _, bad := range []Ruleset{
		{Networks: []Network{{Bridge: ""}}},
		{Networks: []Network{{Bridge: "a-name-longer-than-15"}}},
		{Networks: []Network{{Bridge: "br0"}, {Bridge: "br0"}}},
		{Networks: []Network{{Bridge: "br0"}}, Ports: []Port{{Proto: "sctp", HostPort: 1, Port: 1, Addr: netip.MustParseAddr("10.0.0.2")}}},
		{Networks: []Network{{Bridge: "br0"}}, Ports: []Port{{Proto: "tcp", HostPort: 1, Port: 1, Addr: netip.MustParseAddr("fd00::2")}}},
		{Networks: []Network{{Bridge: "br0"}}, Links: []Link{{From: netip.MustParseAddr("10.0.0.2"), To: netip.MustParseAddr("10.0.0.3"), Proto: "icmp", Port: 1}}},
		{Networks: []Network{{Bridge: "br0"}}, Ports: []Port{
			{Proto: "tcp", HostPort: 1, Port: 1, Addr: netip.MustParseAddr("10.0.0.2")},
			{Proto: "tcp", HostPort: 1, Port: 2, Addr: netip.MustParseAddr("10.0.0.3")}}},
	} {
		if err := bad.validate(); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: %v, want one line", bad, err)
		}
	}
}
