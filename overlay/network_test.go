package overlay

import (
	"errors"
	"net/netip"
	"testing"
)

func TestMACFromIPv4(t *testing.T) {
	if got := MACFromIPv4(netip.MustParseAddr("10.1.2.3")).String(); got != "02:6d:0a:01:02:03" {
		t.Errorf("MACFromIPv4(10.1.2.3) = %s", got)
	}
	if got := MACFromIPv4(netip.MustParseAddr("::ffff:10.1.2.3")).String(); got != "02:6d:0a:01:02:03" {
		t.Errorf("MACFromIPv4(::ffff:10.1.2.3) = %s", got)
	}
	if got := MACFromIPv4(netip.MustParseAddr("fd00::1")); got != nil {
		t.Errorf("MACFromIPv4(fd00::1) = %s, want nil", got)
	}
}

func TestNamesFitAndDiffer(t *testing.T) {
	seen := map[string]string{}
	add := func(name, what string) {
		t.Helper()
		if len(name) > 15 {
			t.Errorf("%s: %q is longer than IFNAMSIZ-1", what, name)
		}
		if other, dup := seen[name]; dup {
			t.Errorf("%s and %s share the name %q", what, other, name)
		}
		seen[name] = what
	}
	for _, vni := range []uint32{1, 9, 10, 4096, maxVNI} {
		add(BridgeName(vni), "bridge")
		add(VXLANName(vni), "vxlan")
	}
	for _, ep := range []string{"a", "b", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"} {
		add(VethName("net1", ep), "veth net1/"+ep)
		add(VethName("net2", ep), "veth net2/"+ep)
	}
}

func TestAliasRoundTrip(t *testing.T) {
	if n, e, ok := parseAlias(networkAlias("blue")); !ok || n != "blue" || e != "" {
		t.Errorf("network alias parsed as %q %q %v", n, e, ok)
	}
	if n, e, ok := parseAlias(endpointAlias("blue", "ep:1")); !ok || n != "blue" || e != "ep:1" {
		t.Errorf("endpoint alias parsed as %q %q %v", n, e, ok)
	}
	for _, foreign := range []string{"", "docker0", "meshnet:", "meshnet:net="} {
		if _, _, ok := parseAlias(foreign); ok {
			t.Errorf("parseAlias(%q) claims it", foreign)
		}
	}
}

func TestValidate(t *testing.T) {
	good := Network{ID: "n", VNI: 1, VTEP: netip.MustParseAddr("192.0.2.1")}
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	bad := []Network{
		{VNI: 1, VTEP: good.VTEP},
		{ID: "a:b", VNI: 1, VTEP: good.VTEP},
		{ID: "n", VTEP: good.VTEP},
		{ID: "n", VNI: maxVNI + 1, VTEP: good.VTEP},
		{ID: "n", VNI: 1},
		{ID: "n", VNI: 1, VTEP: good.VTEP, MTU: 20},
		{ID: "n", VNI: 1, VTEP: good.VTEP, Gateway: netip.MustParsePrefix("fd00::1/64")},
	}
	for _, n := range bad {
		if err := n.validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("validate(%+v) = %v, want ErrInvalid", n, err)
		}
	}
	ep := LocalEndpoint{ID: "e", Sandbox: "/run/netns/x", IfName: "eth0", Addr: netip.MustParsePrefix("10.0.0.2/24")}
	if err := ep.validate(); err != nil {
		t.Fatal(err)
	}
	ep.IfName = "a/b"
	if err := ep.validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("interface name a/b accepted: %v", err)
	}
}
