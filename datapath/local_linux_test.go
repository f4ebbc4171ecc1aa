package datapath_test

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/meshnet/meshnet/datapath"
)

// bridgeNet returns local network id (VNI 0) on the bridge called bridge,
// with gateway gw unless it is "".
func bridgeNet(id, bridge, gw string, locals ...datapath.LocalEndpoint) datapath.Network {
	n := datapath.Network{ID: id, Bridge: bridge, Local: locals}
	if gw != "" {
		n.Gateway = pfx(gw)
	}
	return n
}

// TestLocalNetwork checks the default bridge model on one host: two
// sandboxes talk across the bridge and to the gateway address on it, a
// deleted bridge is recreated, and teardown leaves nothing.
func TestLocalNetwork(t *testing.T) {
	tb := newTestbed(t, "ovlo", 1)
	dp := tb.dps[0]
	n := bridgeNet("def", "mesh0", "172.17.0.1/16",
		local(tb, "a", "s1", "eth0", "172.17.0.2/16", "", true),
		local(tb, "b", "s2", "eth0", "172.17.0.3/16", "", true))
	mustApply(t, dp, n)
	want := render(t, tb.hosts[0].NS)
	mustApply(t, dp, n) // a second Apply changes nothing
	if got := render(t, tb.hosts[0].NS); got != want {
		t.Errorf("after a second Apply:\n%s\nwant:\n%s", got, want)
	}
	for _, line := range []string{
		"bridge mesh0 alias=meshnet:net=def mtu=1500 mac=02:6d:ac:11:00:01 up addrs=172.17.0.1/16",
		"veth alias=meshnet:net=def:ep=a mtu=1500 master=mesh0 up",
		"veth alias=meshnet:net=def:ep=b mtu=1500 master=mesh0 up",
	} {
		if !strings.Contains(want, line) {
			t.Errorf("no %q in\n%s", line, want)
		}
	}
	if strings.Contains(want, "vxlan") || strings.Contains(want, "fdb ") || strings.Contains(want, "neigh ") {
		t.Errorf("a local network has VXLAN state:\n%s", want)
	}
	if got, wantSB := renderSandbox(t, tb.sandbox("s1")), "eth0 veth alias=meshnet:net=def:ep=a mac=02:6d:ac:11:00:02 mtu=1500 up addrs=172.17.0.2/16 default=172.17.0.1"; got != wantSB {
		t.Errorf("sandbox s1:\n%s\nwant:\n%s", got, wantSB)
	}

	s1, s2 := tb.sandbox("s1"), tb.sandbox("s2")
	serve(t, s1, "s1", "172.17.0.2:7000")
	serve(t, s2, "s2", "172.17.0.3:7000")
	serve(t, tb.hosts[0].NS, "h1", "172.17.0.1:7001")
	check := func() {
		t.Helper()
		mustReach(t, s1, "172.17.0.3:7000", "s2")
		mustReach(t, s2, "172.17.0.2:7000", "s1")
		mustReach(t, s1, "172.17.0.1:7001", "h1")
		mustReach(t, s2, "172.17.0.1:7001", "h1")
	}
	check()

	vandalise(t, tb, func(h *netlink.Handle) error { return delLink(h, "mesh0") })
	mustApply(t, dp, n)
	if got := render(t, tb.hosts[0].NS); got != want {
		t.Errorf("after repairing a deleted bridge:\n%s\nwant:\n%s", got, want)
	}
	check()

	mustApply(t, dp)
	if got := render(t, tb.hosts[0].NS); got != "" {
		t.Errorf("after teardown:\n%s", got)
	}
	for _, sb := range []string{"s1", "s2"} {
		if got := renderSandbox(t, tb.sandbox(sb)); got != "" {
			t.Errorf("sandbox %s after teardown:\n%s", sb, got)
		}
	}
}

// TestLocalBridgeRename checks a user bridge network named like Docker's
// ("br-" and 12 characters of the id) and that a new name replaces the old
// bridge.
func TestLocalBridgeRename(t *testing.T) {
	tb := newTestbed(t, "ovln", 1)
	eps := []datapath.LocalEndpoint{
		local(tb, "a", "s1", "eth0", "192.168.16.2/20", "fd00:16::2/64", true),
		local(tb, "b", "s2", "eth0", "192.168.16.3/20", "", false),
	}
	n := bridgeNet("0123456789abcdef", "br-0123456789ab", "192.168.16.1/20", eps...)
	n.Gateway6 = pfx("fd00:16::1/64")
	mustApply(t, tb.dps[0], n)
	got := render(t, tb.hosts[0].NS)
	if line := "bridge br-0123456789ab alias=meshnet:net=0123456789abcdef mtu=1500 mac=02:6d:c0:a8:10:01 up addrs=192.168.16.1/20,fd00:16::1/64"; !strings.Contains(got, line) {
		t.Errorf("no %q in\n%s", line, got)
	}
	serve(t, tb.sandbox("s2"), "s2", "192.168.16.3:7000")
	mustReach(t, tb.sandbox("s1"), "192.168.16.3:7000", "s2")

	n.Bridge = "br-renamed"
	mustApply(t, tb.dps[0], n)
	got = render(t, tb.hosts[0].NS)
	if strings.Contains(got, "br-0123456789ab") || !strings.Contains(got, "bridge br-renamed alias=meshnet:net=0123456789abcdef ") ||
		strings.Count(got, "master=br-renamed") != 2 {
		t.Errorf("after renaming the bridge:\n%s", got)
	}
	mustReach(t, tb.sandbox("s1"), "192.168.16.3:7000", "s2")
}

// TestLocalNetworkInvalid checks the desired states Apply rejects for local
// networks, without touching the kernel.
func TestLocalNetworkInvalid(t *testing.T) {
	tb := newTestbed(t, "ovli", 1)
	ep := local(tb, "a", "s1", "eth0", "172.17.0.2/16", "", true)
	withRemote := bridgeNet("def", "mesh0", "172.17.0.1/16", ep)
	withRemote.Remote = []datapath.RemoteEndpoint{{IP: ip("172.17.0.3"), VTEP: ip("192.0.2.2")}}
	cases := map[string][]datapath.Network{
		"remote endpoint": {withRemote},
		"no bridge name":  {bridgeNet("def", "", "172.17.0.1/16", ep)},
		"bad bridge name": {bridgeNet("def", "br%d", "172.17.0.1/16", ep)},
		// The first network claiming a device name gets it.
		"one bridge for two networks": {
			bridgeNet("other", "mesh0", "172.18.0.1/16"),
			bridgeNet("def", "mesh0", "172.17.0.1/16", ep),
		},
		"bridge named like a VXLAN device": {
			{ID: "blue", VNI: 100, VTEP: ip("192.0.2.1")},
			bridgeNet("def", "mnvx-100", "172.17.0.1/16", ep),
		},
	}
	for name, nets := range cases {
		err := tb.dps[0].Apply(nets)
		if !errors.Is(err, datapath.ErrInvalid) {
			t.Errorf("%s: Apply = %v, want ErrInvalid", name, err)
		}
		if got := render(t, tb.hosts[0].NS); strings.Contains(got, "meshnet:net=def") {
			t.Errorf("%s: network def was applied:\n%s", name, got)
		}
		mustApply(t, tb.dps[0])
	}
}

// TestForeignBridgeIsLeftAlone checks that an administrator's own bridge with
// the name a local network wants is reported and neither taken over nor
// deleted.
func TestForeignBridgeIsLeftAlone(t *testing.T) {
	tb := newTestbed(t, "ovfb", 1)
	h, err := tb.hosts[0].Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "mesh0"
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		t.Fatal(err)
	}
	br, err := h.LinkByName("mesh0")
	if err != nil {
		t.Fatal(err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("172.17.0.1"), Mask: net.CIDRMask(16, 32)}}
	if err := errors.Join(h.AddrAdd(br, addr), h.LinkSetUp(br)); err != nil {
		t.Fatal(err)
	}
	before := render(t, tb.hosts[0].NS)

	n := bridgeNet("def", "mesh0", "172.17.0.1/16", local(tb, "a", "s1", "eth0", "172.17.0.2/16", "", true))
	for _, apply := range []func() error{
		func() error { return tb.dps[0].Apply([]datapath.Network{n}) },
		func() error { return tb.dps[0].ApplyNetwork(n) },
	} {
		if err := apply(); !errors.Is(err, datapath.ErrForeignDevice) || !strings.Contains(err.Error(), "mesh0") {
			t.Errorf("Apply = %v, want ErrForeignDevice for mesh0", err)
		}
		if got := render(t, tb.hosts[0].NS); got != before {
			t.Errorf("host changed:\n%s\nwant:\n%s", got, before)
		}
		if got := renderSandbox(t, tb.sandbox("s1")); got != "" {
			t.Errorf("sandbox s1 was attached:\n%s", got)
		}
	}
	mustApply(t, tb.dps[0])
	if err := tb.dps[0].RemoveNetwork("def"); err != nil {
		t.Fatal(err)
	}
	if got := render(t, tb.hosts[0].NS); got != before {
		t.Errorf("teardown changed the foreign bridge:\n%s\nwant:\n%s", got, before)
	}
	if err := delLink(h, "mesh0"); err != nil {
		t.Fatal(err)
	}
}

// TestLocalAndOverlayAreIsolated runs a local network and an overlay
// network side by side on host 1, in the same subnet (l2 on the local
// network and o2 on host 2 even share an address): each reaches only its
// own members.
func TestLocalAndOverlayAreIsolated(t *testing.T) {
	tb := newTestbed(t, "ovlx", 2)
	o := [2][2]string{{"o1", "10.50.0.4/24"}, {"o2", "10.50.0.3/24"}}
	loc := bridgeNet("loc", "mesh0", "",
		local(tb, "l1", "l1", "eth0", "10.50.0.2/24", "", false),
		local(tb, "l2", "l2", "eth0", "10.50.0.3/24", "", false))
	mustApply(t, tb.dps[0], loc, twoHostNet(tb, "ovl", 103, "", o, 0, true))
	mustApply(t, tb.dps[1], twoHostNet(tb, "ovl", 103, "", o, 1, true))
	for _, sb := range []string{"l1", "l2", "o1", "o2"} {
		serve(t, tb.sandbox(sb), sb, ":7000")
	}
	mustReach(t, tb.sandbox("l1"), "10.50.0.3:7000", "l2")
	mustReach(t, tb.sandbox("o1"), "10.50.0.3:7000", "o2")
	mustReach(t, tb.sandbox("o2"), "10.50.0.4:7000", "o1")
	mustNotReach(t, tb.sandbox("l1"), "10.50.0.4:7000")
	mustNotReach(t, tb.sandbox("o1"), "10.50.0.2:7000")
	mustNotReach(t, tb.sandbox("o2"), "10.50.0.2:7000")
}
