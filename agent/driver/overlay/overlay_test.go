package overlay

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

var (
	vtep4 = netip.MustParseAddr("192.0.2.1")
	vtep6 = netip.MustParseAddr("2001:db8::1")
)

func TestConfigure(t *testing.T) {
	for _, c := range []struct {
		name    string
		host    Host
		options map[string]string
		mtu     int
		vni     uint32
		err     string
	}{
		{name: "defaults", host: Host{VTEP: vtep4, UnderlayMTU: 1500}},
		{name: "mtu and vni", host: Host{VTEP: vtep4, UnderlayMTU: 1500}, options: map[string]string{"mtu": "1450", OptVNI: "77"}, mtu: 1450, vni: 77},
		{name: "mtu above the IPv4 underlay's room", host: Host{VTEP: vtep4, UnderlayMTU: 1500}, options: map[string]string{driver.OptMTU: "1451"},
			err: "MTU 1451 is too large for an overlay network: the underlay MTU 1500 leaves at most 1450 after the VXLAN header"},
		{name: "an IPv6 underlay leaves less", host: Host{VTEP: vtep6, UnderlayMTU: 1500}, options: map[string]string{"mtu": "1450"},
			err: "leaves at most 1430"},
		{name: "unknown underlay MTU", host: Host{VTEP: vtep4}, options: map[string]string{"mtu": "9000"}, mtu: 9000},
		{name: "vni zero", host: Host{VTEP: vtep4}, options: map[string]string{"vni": "0"}, err: `invalid VNI "0"`},
		{name: "vni too large", host: Host{VTEP: vtep4}, options: map[string]string{"vni": "16777216"}, err: "invalid VNI"},
		{name: "vni list", host: Host{VTEP: vtep4}, options: map[string]string{"vni": "7,8"}, err: `invalid VNI "7,8"`},
		{name: "bridge option", host: Host{VTEP: vtep4}, options: map[string]string{"bridge": "x"}, err: `option "bridge" is not known to the overlay driver`},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := &driver.Network{ID: "n1", Driver: Name, Options: c.options}
			err := New(c.host).Configure(n, nil)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, driver.ErrInvalid) {
					t.Fatalf("got %v, want ErrInvalid with %q", err, c.err)
				}
				return
			}
			if err != nil || n.MTU != c.mtu || n.VNI != c.vni {
				t.Fatalf("got %v, mtu %d vni %d; want mtu %d vni %d", err, n.MTU, n.VNI, c.mtu, c.vni)
			}
		})
	}
}

func TestRender(t *testing.T) {
	sc, err := ipam.SubnetConfig{Subnet: netip.MustParsePrefix("10.0.3.0/24")}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	net := &driver.Network{ID: "n1", VNI: 4100, Subnets: []ipam.SubnetConfig{sc}}
	local := []datapath.LocalEndpoint{{ID: "e1", Sandbox: "/run/netns/a", IfName: "eth0", Addr: netip.MustParsePrefix("10.0.3.2/24")}}
	remote := []datapath.RemoteEndpoint{{IP: netip.MustParseAddr("10.0.3.3"), VTEP: netip.MustParseAddr("192.0.2.2")}}
	gw := netip.MustParsePrefix("10.0.3.1/24")
	host := Host{VTEP: vtep4, Port: 4789, UnderlayMTU: 9000}
	for _, c := range []struct {
		name string
		host Host
		view driver.View
		want datapath.Network
		ok   bool
	}{
		{name: "no local endpoint: nothing on this host", host: host, view: driver.View{Network: net, Remote: remote}},
		{name: "endpoints here and there", host: host, view: driver.View{Network: net, Local: local, Remote: remote}, ok: true,
			want: datapath.Network{ID: "n1", VNI: 4100, Forwarding: true, RouteLocalnet: true, VTEP: vtep4, Port: 4789, MTU: 8950, Gateway: gw, Local: local, Remote: remote}},
		{name: "the user's MTU", host: host, view: driver.View{Network: &driver.Network{ID: "n1", VNI: 4100, MTU: 1400, Subnets: net.Subnets}, Local: local}, ok: true,
			want: datapath.Network{ID: "n1", VNI: 4100, Forwarding: true, RouteLocalnet: true, VTEP: vtep4, Port: 4789, MTU: 1400, Gateway: gw, Local: local}},
		{name: "IPv6 underlay overhead", host: Host{VTEP: vtep6, Port: 4789, UnderlayMTU: 1500}, view: driver.View{Network: net, Local: local}, ok: true,
			want: datapath.Network{ID: "n1", VNI: 4100, Forwarding: true, RouteLocalnet: true, VTEP: vtep6, Port: 4789, MTU: 1430, Gateway: gw, Local: local}},
		{name: "internal: not routed", host: host, view: driver.View{Network: &driver.Network{ID: "n1", VNI: 4100, Internal: true, Subnets: net.Subnets}, Local: local}, ok: true,
			want: datapath.Network{ID: "n1", VNI: 4100, VTEP: vtep4, Port: 4789, MTU: 8950, Gateway: gw, Local: local}},
		{name: "unknown underlay MTU is left to the datapath", host: Host{VTEP: vtep4}, view: driver.View{Network: net, Local: local}, ok: true,
			want: datapath.Network{ID: "n1", VNI: 4100, Forwarding: true, RouteLocalnet: true, VTEP: vtep4, Gateway: gw, Local: local}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := New(c.host).Render(c.view)
			if ok != c.ok || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, %v\nwant %+v, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

func TestCapabilities(t *testing.T) {
	d := New(Host{VTEP: vtep4})
	if c := d.Capabilities(); c.Scope != driver.ScopeGlobal || !c.VNI || !c.Interfaces || c.Singleton || c.Exclusive {
		t.Errorf("capabilities %+v", c)
	}
	sc, _ := ipam.SubnetConfig{Subnet: netip.MustParsePrefix("10.0.3.0/24")}.Normalize()
	if !d.DefaultRoute(&driver.Network{Subnets: []ipam.SubnetConfig{sc}}) || d.DefaultRoute(&driver.Network{Subnets: []ipam.SubnetConfig{sc}, Internal: true}) {
		t.Error("DefaultRoute: through the gateway unless internal")
	}
}
