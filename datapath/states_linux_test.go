package datapath_test

import (
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/datapath"
)

// stateCase is a desired state of one host and the kernel state it must
// produce, whatever state came before.
type stateCase struct {
	name      string
	nets      func(tb *testbed) []datapath.Network
	host      string            // render of the host
	sandboxes map[string]string // render of each sandbox
}

var sharedMAC = net.HardwareAddr{0x02, 0x6d, 0xaa, 0x00, 0x00, 0x01}

func blue(tb *testbed, remotes []datapath.RemoteEndpoint, locals ...datapath.LocalEndpoint) datapath.Network {
	return datapath.Network{
		ID: "blue", VNI: 100, VTEP: ip("192.0.2.1"),
		Gateway: pfx("10.1.0.1/24"), Gateway6: pfx("fd00:1::1/64"),
		Remote: remotes, Local: locals,
	}
}

func red(remotes []datapath.RemoteEndpoint) datapath.Network {
	return datapath.Network{ID: "red", VNI: 200, VTEP: ip("192.0.2.1"), MTU: 1400, Remote: remotes}
}

func local(tb *testbed, id, sandbox, ifname, addr, addr6 string, defaultRoute bool) datapath.LocalEndpoint {
	ep := datapath.LocalEndpoint{
		ID: id, Sandbox: tb.sandbox(sandbox).Path(), IfName: ifname, Addr: pfx(addr), DefaultRoute: defaultRoute,
	}
	if addr6 != "" {
		ep.Addr6 = pfx(addr6)
	}
	return ep
}

var stateCases = []stateCase{
	{
		name: "empty",
		nets: func(*testbed) []datapath.Network { return nil },
	},
	{
		name: "blue with one remote and a local endpoint",
		nets: func(tb *testbed) []datapath.Network {
			return []datapath.Network{blue(tb,
				[]datapath.RemoteEndpoint{{IP: ip("10.1.0.3"), IP6: ip("fd00:1::3"), VTEP: ip("192.0.2.2")}},
				local(tb, "a", "s1", "eth0", "10.1.0.2/24", "fd00:1::2/64", true))}
		},
		host: `
bridge mnbr-100 alias=meshnet:net=blue mtu=1450 mac=02:6d:0a:01:00:01 up addrs=10.1.0.1/24,fd00:1::1/64 forwarding=0
fdb mnvx-100 02:6d:0a:01:00:03 dst=192.0.2.2 permanent
neigh mnvx-100 10.1.0.3 02:6d:0a:01:00:03 permanent
neigh mnvx-100 fd00:1::3 02:6d:0a:01:00:03 permanent
rule6 pref=1000 iif=mnbr-100 table=0
veth alias=meshnet:net=blue:ep=a mtu=1450 master=mnbr-100 up
vxlan mnvx-100 vni=100 port=4789 local=192.0.2.1 dev=eth0 learning=false proxy=true alias=meshnet:net=blue mtu=1450 master=mnbr-100 up`,
		sandboxes: map[string]string{
			"s1": `
eth0 veth alias=meshnet:net=blue:ep=a mac=02:6d:0a:01:00:02 mtu=1450 up addrs=10.1.0.2/24,fd00:1::2/64 default=10.1.0.1 default=fd00:1::1`,
		},
	},
	{
		name: "blue with a moved remote, a second remote and the endpoint in another sandbox",
		nets: func(tb *testbed) []datapath.Network {
			return []datapath.Network{blue(tb,
				[]datapath.RemoteEndpoint{
					{IP: ip("10.1.0.3"), VTEP: ip("192.0.2.3")},
					{IP: ip("10.1.0.4"), VTEP: ip("192.0.2.2")},
				},
				local(tb, "a", "s2", "eth1", "10.1.0.2/24", "", true))}
		},
		host: `
bridge mnbr-100 alias=meshnet:net=blue mtu=1450 mac=02:6d:0a:01:00:01 up addrs=10.1.0.1/24,fd00:1::1/64 forwarding=0
fdb mnvx-100 02:6d:0a:01:00:03 dst=192.0.2.3 permanent
fdb mnvx-100 02:6d:0a:01:00:04 dst=192.0.2.2 permanent
neigh mnvx-100 10.1.0.3 02:6d:0a:01:00:03 permanent
neigh mnvx-100 10.1.0.4 02:6d:0a:01:00:04 permanent
rule6 pref=1000 iif=mnbr-100 table=0
veth alias=meshnet:net=blue:ep=a mtu=1450 master=mnbr-100 up
vxlan mnvx-100 vni=100 port=4789 local=192.0.2.1 dev=eth0 learning=false proxy=true alias=meshnet:net=blue mtu=1450 master=mnbr-100 up`,
		sandboxes: map[string]string{
			"s2": `
eth1 veth alias=meshnet:net=blue:ep=a mac=02:6d:0a:01:00:02 mtu=1450 up addrs=10.1.0.2/24 default=10.1.0.1`,
		},
	},
	{
		name: "red with two endpoints sharing a MAC, blue without endpoints",
		nets: func(tb *testbed) []datapath.Network {
			return []datapath.Network{
				red([]datapath.RemoteEndpoint{
					{IP: ip("10.2.0.3"), MAC: sharedMAC, VTEP: ip("192.0.2.2")},
					{IP: ip("10.2.0.4"), MAC: sharedMAC, VTEP: ip("192.0.2.2")},
				}),
				blue(tb, nil),
			}
		},
		host: `
bridge mnbr-100 alias=meshnet:net=blue mtu=1450 mac=02:6d:0a:01:00:01 up addrs=10.1.0.1/24,fd00:1::1/64 forwarding=0
bridge mnbr-200 alias=meshnet:net=red mtu=1400 up forwarding=0
fdb mnvx-200 02:6d:aa:00:00:01 dst=192.0.2.2 permanent
neigh mnvx-200 10.2.0.3 02:6d:aa:00:00:01 permanent
neigh mnvx-200 10.2.0.4 02:6d:aa:00:00:01 permanent
rule6 pref=1000 iif=mnbr-100 table=0
vxlan mnvx-100 vni=100 port=4789 local=192.0.2.1 dev=eth0 learning=false proxy=true alias=meshnet:net=blue mtu=1450 master=mnbr-100 up
vxlan mnvx-200 vni=200 port=4789 local=192.0.2.1 dev=eth0 learning=false proxy=true alias=meshnet:net=red mtu=1400 master=mnbr-200 up`,
	},
	{
		name: "red with one of the endpoints sharing a MAC",
		nets: func(tb *testbed) []datapath.Network {
			return []datapath.Network{red([]datapath.RemoteEndpoint{
				{IP: ip("10.2.0.4"), MAC: sharedMAC, VTEP: ip("192.0.2.2")},
			})}
		},
		host: `
bridge mnbr-200 alias=meshnet:net=red mtu=1400 up forwarding=0
fdb mnvx-200 02:6d:aa:00:00:01 dst=192.0.2.2 permanent
neigh mnvx-200 10.2.0.4 02:6d:aa:00:00:01 permanent
vxlan mnvx-200 vni=200 port=4789 local=192.0.2.1 dev=eth0 learning=false proxy=true alias=meshnet:net=red mtu=1400 master=mnbr-200 up`,
	},
	{
		name: "blue with two local endpoints in one sandbox",
		nets: func(tb *testbed) []datapath.Network {
			return []datapath.Network{blue(tb, nil,
				local(tb, "a", "s1", "eth0", "10.1.0.2/24", "", true),
				local(tb, "b", "s1", "eth1", "10.1.0.5/24", "fd00:1::5/64", false))}
		},
		host: `
bridge mnbr-100 alias=meshnet:net=blue mtu=1450 mac=02:6d:0a:01:00:01 up addrs=10.1.0.1/24,fd00:1::1/64 forwarding=0
rule6 pref=1000 iif=mnbr-100 table=0
veth alias=meshnet:net=blue:ep=a mtu=1450 master=mnbr-100 up
veth alias=meshnet:net=blue:ep=b mtu=1450 master=mnbr-100 up
vxlan mnvx-100 vni=100 port=4789 local=192.0.2.1 dev=eth0 learning=false proxy=true alias=meshnet:net=blue mtu=1450 master=mnbr-100 up`,
		sandboxes: map[string]string{
			"s1": `
eth0 veth alias=meshnet:net=blue:ep=a mac=02:6d:0a:01:00:02 mtu=1450 up addrs=10.1.0.2/24 default=10.1.0.1
eth1 veth alias=meshnet:net=blue:ep=b mac=02:6d:0a:01:00:05 mtu=1450 up addrs=10.1.0.5/24,fd00:1::5/64`,
		},
	},
	{
		name: "local default bridge with two endpoints beside red",
		nets: func(tb *testbed) []datapath.Network {
			return []datapath.Network{
				bridgeNet("def", "mesh0", "172.17.0.1/16",
					local(tb, "a", "s1", "eth0", "172.17.0.2/16", "", true),
					local(tb, "b", "s2", "eth0", "172.17.0.3/16", "", false)),
				red(nil),
			}
		},
		host: `
bridge mesh0 alias=meshnet:net=def mtu=1500 mac=02:6d:ac:11:00:01 up addrs=172.17.0.1/16 forwarding=0
bridge mnbr-200 alias=meshnet:net=red mtu=1400 up forwarding=0
veth alias=meshnet:net=def:ep=a mtu=1500 master=mesh0 up
veth alias=meshnet:net=def:ep=b mtu=1500 master=mesh0 up
vxlan mnvx-200 vni=200 port=4789 local=192.0.2.1 dev=eth0 learning=false proxy=true alias=meshnet:net=red mtu=1400 master=mnbr-200 up`,
		sandboxes: map[string]string{
			"s1": `
eth0 veth alias=meshnet:net=def:ep=a mac=02:6d:ac:11:00:02 mtu=1500 up addrs=172.17.0.2/16 default=172.17.0.1`,
			"s2": `
eth0 veth alias=meshnet:net=def:ep=b mac=02:6d:ac:11:00:03 mtu=1500 up addrs=172.17.0.3/16`,
		},
	},
	{
		name: "local network on a renamed bridge without gateway, red on its own bridge name",
		nets: func(tb *testbed) []datapath.Network {
			def := bridgeNet("def", "br-0123456789ab", "", local(tb, "a", "s1", "eth0", "172.17.0.2/16", "", true))
			def.MTU = 9000
			r := red([]datapath.RemoteEndpoint{{IP: ip("10.2.0.3"), VTEP: ip("192.0.2.2")}})
			r.Bridge = "red0"
			return []datapath.Network{def, r}
		},
		host: `
bridge br-0123456789ab alias=meshnet:net=def mtu=9000 up forwarding=0
bridge red0 alias=meshnet:net=red mtu=1400 up forwarding=0
fdb mnvx-200 02:6d:0a:02:00:03 dst=192.0.2.2 permanent
neigh mnvx-200 10.2.0.3 02:6d:0a:02:00:03 permanent
veth alias=meshnet:net=def:ep=a mtu=9000 master=br-0123456789ab up
vxlan mnvx-200 vni=200 port=4789 local=192.0.2.1 dev=eth0 learning=false proxy=true alias=meshnet:net=red mtu=1400 master=red0 up`,
		sandboxes: map[string]string{
			"s1": `
eth0 veth alias=meshnet:net=def:ep=a mac=02:6d:ac:11:00:02 mtu=9000 up addrs=172.17.0.2/16`,
		},
	},
	{
		name: "blue forwarding beside an isolated local network with an IPv6 gateway",
		nets: func(tb *testbed) []datapath.Network {
			// eth2: no other state has it, so no interface changes network.
			b := blue(tb, nil, local(tb, "a", "s1", "eth2", "10.1.0.2/24", "fd00:1::2/64", true))
			b.Forwarding = true
			def := bridgeNet("def", "mesh0", "172.17.0.1/16", local(tb, "b", "s2", "eth2", "172.17.0.2/16", "fd00:17::2/64", true))
			def.Gateway6 = pfx("fd00:17::1/64")
			return []datapath.Network{b, def}
		},
		host: `
bridge mesh0 alias=meshnet:net=def mtu=1500 mac=02:6d:ac:11:00:01 up addrs=172.17.0.1/16,fd00:17::1/64 forwarding=0
bridge mnbr-100 alias=meshnet:net=blue mtu=1450 mac=02:6d:0a:01:00:01 up addrs=10.1.0.1/24,fd00:1::1/64 forwarding=1
rule6 pref=1000 iif=mesh0 table=0
veth alias=meshnet:net=blue:ep=a mtu=1450 master=mnbr-100 up
veth alias=meshnet:net=def:ep=b mtu=1500 master=mesh0 up
vxlan mnvx-100 vni=100 port=4789 local=192.0.2.1 dev=eth0 learning=false proxy=true alias=meshnet:net=blue mtu=1450 master=mnbr-100 up`,
		sandboxes: map[string]string{
			"s1": `
eth2 veth alias=meshnet:net=blue:ep=a mac=02:6d:0a:01:00:02 mtu=1450 up addrs=10.1.0.2/24,fd00:1::2/64 default=10.1.0.1 default=fd00:1::1`,
			"s2": `
eth2 veth alias=meshnet:net=def:ep=b mac=02:6d:ac:11:00:02 mtu=1500 up addrs=172.17.0.2/16,fd00:17::2/64 default=172.17.0.1 default=fd00:17::1`,
		},
	},
	{
		name: "the isolated local network renamed, red forwarding",
		nets: func(tb *testbed) []datapath.Network {
			def := bridgeNet("def", "mesh1", "172.17.0.1/16")
			def.Gateway6 = pfx("fd00:17::1/64")
			r := red(nil)
			r.Forwarding = true
			r.Gateway6 = pfx("fd00:2::1/64") // forwarding: no rule
			return []datapath.Network{def, r}
		},
		host: `
bridge mesh1 alias=meshnet:net=def mtu=1500 mac=02:6d:ac:11:00:01 up addrs=172.17.0.1/16,fd00:17::1/64 forwarding=0
bridge mnbr-200 alias=meshnet:net=red mtu=1400 up addrs=fd00:2::1/64 forwarding=1
rule6 pref=1000 iif=mesh1 table=0
vxlan mnvx-200 vni=200 port=4789 local=192.0.2.1 dev=eth0 learning=false proxy=true alias=meshnet:net=red mtu=1400 master=mnbr-200 up`,
	},
}

// TestStates replays the table in random order, twice over, checking the
// kernel's state after each step (tailscale's TestRouterStates pattern).
func TestStates(t *testing.T) {
	tb := newTestbed(t, "ovst", 1)
	tb.sandbox("s1")
	tb.sandbox("s2")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	order := append(rng.Perm(len(stateCases)), rng.Perm(len(stateCases))...)
	prev := "(start)"
	for _, i := range order {
		c := stateCases[i]
		if err := tb.dps[0].Apply(c.nets(tb)); err != nil {
			t.Fatalf("%s → %s: Apply: %v", prev, c.name, err)
		}
		if got := render(t, tb.hosts[0].NS); got != strings.TrimSpace(c.host) {
			t.Errorf("%s → %s: host state:\n%s\nwant:\n%s", prev, c.name, got, c.host)
		}
		for _, sb := range []string{"s1", "s2"} {
			if got := renderSandbox(t, tb.sandbox(sb)); got != strings.TrimSpace(c.sandboxes[sb]) {
				t.Errorf("%s → %s: sandbox %s:\n%s\nwant:\n%s", prev, c.name, sb, got, c.sandboxes[sb])
			}
		}
		prev = c.name
	}
}
