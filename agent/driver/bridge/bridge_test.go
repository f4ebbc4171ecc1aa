package bridge

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/datapath"
)

const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func subnet(t *testing.T, cidr string) []ipam.SubnetConfig {
	t.Helper()
	sc, err := ipam.SubnetConfig{Subnet: netip.MustParsePrefix(cidr)}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	return []ipam.SubnetConfig{sc}
}

func TestConfigure(t *testing.T) {
	other := &driver.Network{ID: "other", Name: "taken", Driver: Name, Bridge: "br-taken"}
	for _, c := range []struct {
		name    string
		options map[string]string
		mtu     int
		bridge  string
		err     string
	}{
		{name: "defaults", bridge: "br-0123456789ab"},
		{name: "docker names", options: map[string]string{driver.OptMTU: "1400", OptBridgeName: "br-mine"}, mtu: 1400, bridge: "br-mine"},
		{name: "short names", options: map[string]string{"mtu": "9000", "bridge": "lan0"}, mtu: 9000, bridge: "lan0"},
		{name: "unknown option", options: map[string]string{"vni": "7"}, err: `option "vni" is not known to the bridge driver (it knows com.docker.network.driver.mtu, mtu, com.docker.network.bridge.name, bridge, com.docker.network.bridge.enable_icc)`},
		{name: "mtu not a number", options: map[string]string{"mtu": "big"}, err: `invalid MTU "big": give a number from 576 to 65535`},
		{name: "mtu too small", options: map[string]string{"mtu": "100"}, err: `invalid MTU "100"`},
		{name: "bridge name too long", options: map[string]string{"bridge": "a-very-long-bridge"}, err: `invalid bridge name "a-very-long-bridge"`},
		{name: "bridge name with slash", options: map[string]string{"bridge": "a/b"}, err: `invalid bridge name "a/b"`},
		{name: "bridge taken", options: map[string]string{"bridge": "br-taken"}, err: "bridge br-taken is already used by network taken"},
		{name: "icc off", options: map[string]string{OptICC: "false"}, bridge: "br-0123456789ab"},
		{name: "icc neither true nor false", options: map[string]string{OptICC: "no"}, err: `invalid com.docker.network.bridge.enable_icc "no"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := &driver.Network{ID: id, Name: "n", Driver: Name, Options: c.options}
			err := New(Config{}).Configure(n, []*driver.Network{other})
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, driver.ErrInvalid) {
					t.Fatalf("got %v, want ErrInvalid with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.MTU != c.mtu || n.Bridge != c.bridge {
				t.Fatalf("mtu %d bridge %q, want %d %q", n.MTU, n.Bridge, c.mtu, c.bridge)
			}
		})
	}
}

func TestRender(t *testing.T) {
	sub := subnet(t, "10.9.0.0/24")
	ep := datapath.LocalEndpoint{ID: "e1", Sandbox: "/run/netns/s1", IfName: "eth0",
		Addr: netip.MustParsePrefix("10.9.0.2/24"), DefaultRoute: true}
	for _, c := range []struct {
		name string
		view driver.View
		want datapath.Network
		ok   bool
	}{
		{name: "user network without endpoints has no bridge",
			view: driver.View{Network: &driver.Network{ID: id, Bridge: "br-x", Subnets: sub}}},
		{name: "default bridge exists without endpoints",
			view: driver.View{Network: &driver.Network{ID: id, Bridge: "mesh0", Subnets: sub, Predefined: true, MTU: 1450}},
			want: datapath.Network{ID: id, Bridge: "mesh0", MTU: 1450, Forwarding: true, RouteLocalnet: true, Gateway: netip.MustParsePrefix("10.9.0.1/24")}, ok: true},
		{name: "internal: not routed",
			view: driver.View{Network: &driver.Network{ID: id, Bridge: "br-x", Subnets: sub, Internal: true}, Local: []datapath.LocalEndpoint{ep}},
			want: datapath.Network{ID: id, Bridge: "br-x", MTU: datapath.DefaultLocalMTU, Gateway: netip.MustParsePrefix("10.9.0.1/24"),
				Local: []datapath.LocalEndpoint{ep}}, ok: true},
		{name: "user network with an endpoint, default MTU, routed",
			view: driver.View{Network: &driver.Network{ID: id, Bridge: "br-x", Subnets: sub}, Local: []datapath.LocalEndpoint{ep},
				Remote: []datapath.RemoteEndpoint{{IP: netip.MustParseAddr("10.9.0.9"), VTEP: netip.MustParseAddr("192.0.2.2")}}},
			want: datapath.Network{ID: id, Bridge: "br-x", MTU: datapath.DefaultLocalMTU, Forwarding: true, RouteLocalnet: true, Gateway: netip.MustParsePrefix("10.9.0.1/24"),
				Local: []datapath.LocalEndpoint{ep}}, ok: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := New(Config{}).Render(c.view)
			if ok != c.ok || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, %v\nwant %+v, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

func TestCapabilities(t *testing.T) {
	d := New(Config{})
	sub := subnet(t, "10.9.0.0/24")
	if !d.DefaultRoute(&driver.Network{Subnets: sub}) || d.DefaultRoute(&driver.Network{Subnets: sub, Internal: true}) ||
		d.DefaultRoute(&driver.Network{}) {
		t.Error("DefaultRoute: want it through a gateway of a non-internal network only")
	}
	if d.ICC(&driver.Network{Options: map[string]string{OptICC: "false"}}) || !d.ICC(&driver.Network{}) {
		t.Error("ICC: off only with enable_icc=false")
	}
	if nets, _ := New(Config{DefaultBridge: "mesh0", NoICC: true, BIP: netip.MustParsePrefix("10.9.0.1/24")}).Predefined(nil); d.ICC(nets[0]) {
		t.Error("icc: false does not reach the default bridge")
	}
	if d.Discoverable(&driver.Network{Predefined: true}) || !d.Discoverable(&driver.Network{}) {
		t.Error("Discoverable: user-defined bridge networks only")
	}
	if c := d.Capabilities(); c.Scope != driver.ScopeLocal || !c.Interfaces || c.VNI || c.DefaultRank == 0 {
		t.Errorf("capabilities %+v", c)
	}
}

func TestPredefined(t *testing.T) {
	routes := func(p ...string) func() []netip.Prefix {
		return func() []netip.Prefix {
			var out []netip.Prefix
			for _, s := range p {
				out = append(out, netip.MustParsePrefix(s))
			}
			return out
		}
	}
	old := &driver.Network{ID: "kept", Name: NetworkName, Bridge: "mesh0", Subnets: subnet(t, "172.20.0.0/16"), Predefined: true}
	for _, c := range []struct {
		name   string
		cfg    Config
		old    *driver.Network
		subnet string // "" for no network
		id     string
	}{
		{name: "disabled", cfg: Config{DefaultBridge: Disabled}},
		{name: "first free of 172.17-31", cfg: Config{DefaultBridge: "mesh0", HostRoutes: routes("172.17.0.0/16", "172.18.5.0/24")}, subnet: "172.19.0.0/16"},
		{name: "configured bip", cfg: Config{DefaultBridge: "mesh0", BIP: netip.MustParsePrefix("192.0.2.1/24")}, subnet: "192.0.2.0/24"},
		{name: "keeps its subnet and id", cfg: Config{DefaultBridge: "mesh0"}, old: old, subnet: "172.20.0.0/16", id: "kept"},
		{name: "bip beats the old subnet", cfg: Config{DefaultBridge: "mesh0", BIP: netip.MustParsePrefix("10.1.0.1/16")}, old: old, subnet: "10.1.0.0/16", id: "kept"},
		{name: "another device starts afresh", cfg: Config{DefaultBridge: "mesh1"}, old: old, subnet: "172.17.0.0/16", id: "kept"},
	} {
		t.Run(c.name, func(t *testing.T) {
			nets, err := New(c.cfg).Predefined(map[string]*driver.Network{NetworkName: c.old})
			if err != nil {
				t.Fatal(err)
			}
			if c.subnet == "" {
				if len(nets) != 0 {
					t.Fatalf("got %+v, want none", nets)
				}
				return
			}
			if len(nets) != 1 {
				t.Fatalf("got %d networks", len(nets))
			}
			n := nets[0]
			if n.Subnets[0].Subnet.String() != c.subnet || n.ID != c.id || n.Bridge != c.cfg.DefaultBridge || !n.Predefined || n.Name != NetworkName {
				t.Fatalf("got %+v, want subnet %s id %q", n, c.subnet, c.id)
			}
		})
	}
	all := routes("172.16.0.0/12")
	if _, err := New(Config{DefaultBridge: "mesh0", HostRoutes: all}).Predefined(nil); err == nil {
		t.Error("every 172.17-31 /16 routed: no error")
	}
}
