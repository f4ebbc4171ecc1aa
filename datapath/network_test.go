package datapath

import (
	"bytes"
	"errors"
	"net"
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
	remote := []RemoteEndpoint{{IP: netip.MustParseAddr("10.0.0.3"), VTEP: netip.MustParseAddr("192.0.2.2")}}
	for _, n := range []Network{
		{ID: "n", Bridge: "mesh0"}, // local: no VTEP needed
		{ID: "n", Bridge: "br-0123456789ab", VTEP: good.VTEP, Port: 4790},
		{ID: "n", VNI: 1, VTEP: good.VTEP, Bridge: "blue0", Remote: remote},
	} {
		if err := n.validate(); err != nil {
			t.Errorf("validate(%+v) = %v", n, err)
		}
	}
	bad = []Network{
		{ID: "n"}, // local without a bridge name
		{ID: "n", Bridge: "mesh0", Remote: remote}, // local with remote endpoints
		{ID: "n", Bridge: "0123456789abcdef"},      // 16 bytes
		{ID: "n", Bridge: "br%d"},                  // a pattern to the kernel
		{ID: "n", VNI: 1, VTEP: good.VTEP, Bridge: "a/b"},
	}
	for _, name := range []string{".", "..", "a b", "a:b", "a\tb", "a\x00"} {
		bad = append(bad, Network{ID: "n", Bridge: name})
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

func TestValidateRemoteVTEP(t *testing.T) {
	local := Network{ID: "n", VNI: 1, VTEP: netip.MustParseAddr("::ffff:192.0.2.1")}
	if err := local.validate(); err != nil {
		t.Fatalf("IPv4-mapped local VTEP: %v", err)
	}
	ep := func(vtep string) RemoteEndpoint {
		return RemoteEndpoint{IP: netip.MustParseAddr("10.0.0.3"), VTEP: netip.MustParseAddr(vtep)}
	}
	for _, vtep := range []string{"192.0.2.2", "::ffff:192.0.2.2"} {
		e := ep(vtep)
		if err := e.validate(local.vtep()); err != nil {
			t.Errorf("remote VTEP %s: %v", vtep, err)
		}
	}
	for _, vtep := range []string{"0.0.0.0", "::ffff:0.0.0.0", "239.1.1.1", "192.0.2.1", "::ffff:192.0.2.1", "2001:db8::2"} {
		e := ep(vtep)
		if err := e.validate(local.vtep()); !errors.Is(err, ErrInvalid) {
			t.Errorf("remote VTEP %s accepted: %v", vtep, err)
		}
	}
	six := netip.MustParseAddr("2001:db8::1")
	for _, vtep := range []string{"::", "ff02::1", "2001:db8::1"} {
		e := ep(vtep)
		if err := e.validate(six); !errors.Is(err, ErrInvalid) {
			t.Errorf("remote VTEP %s for local %s accepted: %v", vtep, six, err)
		}
	}
}

func TestEncapOverhead(t *testing.T) {
	for vtep, want := range map[string]int{"192.0.2.1": 50, "::ffff:192.0.2.1": 50, "2001:db8::1": 70} {
		n := Network{VTEP: netip.MustParseAddr(vtep)}
		if got := n.encapOverhead(); got != want {
			t.Errorf("encapOverhead with VTEP %s = %d, want %d", vtep, got, want)
		}
		if got := EncapOverheadFor(n.VTEP); got != want {
			t.Errorf("EncapOverheadFor(%s) = %d, want %d", vtep, got, want)
		}
	}
}

func TestEmptyMACIsDerived(t *testing.T) {
	derived := MACFromIPv4(netip.MustParseAddr("10.0.0.3"))
	r := RemoteEndpoint{IP: netip.MustParseAddr("10.0.0.3"), MAC: net.HardwareAddr{}, VTEP: netip.MustParseAddr("192.0.2.2")}
	if err := r.validate(netip.MustParseAddr("192.0.2.1")); err != nil {
		t.Errorf("remote endpoint with empty MAC: %v", err)
	}
	if !bytes.Equal(r.mac(), derived) {
		t.Errorf("remote endpoint with empty MAC has MAC %s, want %s", r.mac(), derived)
	}
	l := LocalEndpoint{ID: "e", Sandbox: "/run/netns/x", IfName: "eth0", Addr: netip.MustParsePrefix("10.0.0.3/24"), MAC: net.HardwareAddr{}}
	if err := l.validate(); err != nil {
		t.Errorf("local endpoint with empty MAC: %v", err)
	}
	if !bytes.Equal(l.mac(), derived) {
		t.Errorf("local endpoint with empty MAC has MAC %s, want %s", l.mac(), derived)
	}
	eui64 := net.HardwareAddr{0x02, 0, 0, 0, 0, 0, 0, 1}
	r.MAC, l.MAC = eui64, eui64
	if err := r.validate(netip.MustParseAddr("192.0.2.1")); !errors.Is(err, ErrInvalid) {
		t.Errorf("remote endpoint with 8-byte MAC accepted: %v", err)
	}
	if err := l.validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("local endpoint with 8-byte MAC accepted: %v", err)
	}
}
