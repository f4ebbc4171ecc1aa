package datapath_test

import (
	"errors"
	"io/fs"
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/meshnet/meshnet/datapath"
)

// driftBed is a two-host testbed running network blue with traffic checked
// between s1 (host 1) and s2 (host 2).
func driftBed(t *testing.T, tag string) (tb *testbed, apply func(), check func()) {
	tb = newTestbed(t, tag, 2)
	eps := [2][2]string{{"s1", "10.60.0.2/24"}, {"s2", "10.60.0.3/24"}}
	apply = func() {
		t.Helper()
		for i, dp := range tb.dps {
			mustApply(t, dp, twoHostNet(tb, "blue", 60, "10.60.0.1/24", eps, i, true))
		}
	}
	apply()
	serve(t, tb.sandbox("s2"), "s2", "10.60.0.3:7000")
	check = func() {
		t.Helper()
		mustReach(t, tb.sandbox("s1"), "10.60.0.3:7000", "s2")
	}
	return tb, apply, check
}

// vandalise runs fn with a netlink handle in host 1.
func vandalise(t *testing.T, tb *testbed, fn func(h *netlink.Handle) error) {
	t.Helper()
	h, err := tb.hosts[0].Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := fn(h); err != nil {
		t.Fatalf("changing state behind the datapath: %v", err)
	}
}

func TestDriftIsRepaired(t *testing.T) {
	cases := []struct {
		name string
		fn   func(h *netlink.Handle) error
	}{
		{"vxlan deleted", func(h *netlink.Handle) error { return delLink(h, "mnvx-60") }},
		{"bridge deleted", func(h *netlink.Handle) error { return delLink(h, "mnbr-60") }},
		{"entries vandalised", func(h *netlink.Handle) error {
			vx, err := h.LinkByName("mnvx-60")
			if err != nil {
				return err
			}
			i := vx.Attrs().Index
			fdb := func(mac, dst string) *netlink.Neigh {
				m, _ := net.ParseMAC(mac)
				return &netlink.Neigh{LinkIndex: i, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
					State: netlink.NUD_PERMANENT, HardwareAddr: m, IP: net.ParseIP(dst)}
			}
			nb := func(ip, mac string) *netlink.Neigh {
				m, _ := net.ParseMAC(mac)
				return &netlink.Neigh{LinkIndex: i, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
					HardwareAddr: m, IP: net.ParseIP(ip)}
			}
			return errors.Join(
				h.NeighSet(fdb("02:6d:0a:3c:00:03", "192.0.2.99")),    // wrong VTEP
				h.NeighAppend(fdb("00:00:00:00:00:00", "192.0.2.77")), // foreign flood entry
				h.NeighSet(nb("10.60.0.3", "02:00:00:00:00:99")),      // wrong MAC
				h.NeighSet(nb("10.60.0.200", "02:00:00:00:00:98")),    // foreign neighbour
				h.LinkSetMTU(vx, 1300),                                // wrong MTU
				h.LinkSetNoMaster(vx),                                 // detached
			)
		}},
		{"bridge and veth changed", func(h *netlink.Handle) error {
			br, err := h.LinkByName("mnbr-60")
			if err != nil {
				return err
			}
			addrs, err := h.AddrList(br, netlink.FAMILY_V4)
			if err != nil || len(addrs) == 0 {
				return errors.Join(err, errors.New("no gateway address"))
			}
			veth := findByAliasPrefix(h, "meshnet:net=blue:ep=")
			if veth == nil {
				return errors.New("no veth")
			}
			return errors.Join(h.AddrDel(br, &addrs[0]), h.LinkSetDown(br), h.LinkSetMTU(br, 1200),
				h.LinkSetNoMaster(veth), h.LinkSetDown(veth))
		}},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			tb, apply, check := driftBed(t, "ovdr")
			want := render(t, tb.hosts[0].NS)
			check()
			vandalise(t, tb, c.fn)
			if got := render(t, tb.hosts[0].NS); got == want {
				t.Fatalf("vandalism changed nothing")
			}
			apply()
			if got := render(t, tb.hosts[0].NS); got != want {
				t.Errorf("after repair:\n%s\nwant:\n%s", got, want)
			}
			check()
		})
	}
}

func TestDriftInSandboxIsRepaired(t *testing.T) {
	tb, apply, check := driftBed(t, "ovds")
	want := renderSandbox(t, tb.sandbox("s1"))
	h, err := tb.sandbox("s1").Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := h.AddrList(eth0, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 {
		t.Fatalf("addresses %v, %v", addrs, err)
	}
	extra := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.99.0.1"), Mask: net.CIDRMask(24, 32)}}
	if err := errors.Join(h.AddrDel(eth0, &addrs[0]), h.AddrAdd(eth0, extra), h.LinkSetMTU(eth0, 1000)); err != nil {
		t.Fatal(err)
	}
	if renderSandbox(t, tb.sandbox("s1")) == want {
		t.Fatal("vandalism changed nothing")
	}
	apply()
	if got := renderSandbox(t, tb.sandbox("s1")); got != want {
		t.Errorf("after repair:\n%s\nwant:\n%s", got, want)
	}
	check()
}

func TestVXLANParametersChangeRecreatesDevice(t *testing.T) {
	tb := newTestbed(t, "ovpc", 1)
	n := datapath.Network{ID: "blue", VNI: 7, VTEP: ip("192.0.2.1"),
		Remote: []datapath.RemoteEndpoint{{IP: ip("10.7.0.3"), VTEP: ip("192.0.2.2")}}}
	mustApply(t, tb.dps[0], n)
	n.Port = 4790
	mustApply(t, tb.dps[0], n)
	got := render(t, tb.hosts[0].NS)
	for _, line := range []string{"port=4790", "fdb mnvx-7 02:6d:0a:07:00:03 dst=192.0.2.2 permanent", "neigh mnvx-7 10.7.0.3"} {
		if !strings.Contains(got, line) {
			t.Errorf("state lacks %q:\n%s", line, got)
		}
	}
}

func TestForeignDevicesAreLeftAlone(t *testing.T) {
	tb := newTestbed(t, "ovfd", 1)
	dp := tb.dps[0]
	h, err := tb.hosts[0].Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// A veth with our VXLAN name, and a bridge with our bridge name but no
	// alias.
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "mnvx-300"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "foreign0"}); err != nil {
		t.Fatal(err)
	}
	attrs = netlink.NewLinkAttrs()
	attrs.Name = "mnbr-301"
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		t.Fatal(err)
	}
	before := render(t, tb.hosts[0].NS)
	err = dp.Apply([]datapath.Network{
		{ID: "one", VNI: 300, VTEP: ip("192.0.2.1")},
		{ID: "two", VNI: 301, VTEP: ip("192.0.2.1")},
	})
	if !errors.Is(err, datapath.ErrForeignDevice) || !strings.Contains(err.Error(), "mnvx-300") || !strings.Contains(err.Error(), "mnbr-301") {
		t.Fatalf("Apply = %v, want ErrForeignDevice for mnvx-300 and mnbr-301", err)
	}
	mustApply(t, dp) // tears down what was ours (bridge mnbr-300)
	if got := render(t, tb.hosts[0].NS); got != before {
		t.Errorf("foreign devices changed:\n%s\nwant:\n%s", got, before)
	}
	if err := errors.Join(delLink(h, "mnvx-300"), delLink(h, "mnbr-301")); err != nil {
		t.Fatal(err)
	}
}

func TestPartialFailureIsFinishedLater(t *testing.T) {
	tb := newTestbed(t, "ovpf", 1)
	missing := tb.ul.Prefix + "-late"
	n := datapath.Network{ID: "blue", VNI: 9, VTEP: ip("192.0.2.1"), Gateway: pfx("10.9.0.1/24"),
		Remote: []datapath.RemoteEndpoint{
			{IP: ip("10.9.0.3"), VTEP: ip("192.0.2.2")},
			{IP: ip("10.9.0.4"), VTEP: ip("2001:db8::1")}, // wrong family
			{IP: ip("10.9.0.5"), MAC: sharedMAC, VTEP: ip("192.0.2.2")},
			{IP: ip("10.9.0.6"), MAC: sharedMAC, VTEP: ip("192.0.2.3")}, // conflict
		},
		Local: []datapath.LocalEndpoint{
			local(tb, "a", "s1", "eth0", "10.9.0.2/24", "", true),
			{ID: "b", Sandbox: "/run/netns/" + missing, IfName: "eth0", Addr: pfx("10.9.0.7/24")},
		},
	}
	err := tb.dps[0].Apply([]datapath.Network{n})
	for _, want := range []error{datapath.ErrInvalid, datapath.ErrConflict, fs.ErrNotExist} {
		if !errors.Is(err, want) {
			t.Errorf("Apply = %v; want it to wrap %v", err, want)
		}
	}
	got := render(t, tb.hosts[0].NS)
	for _, line := range []string{"neigh mnvx-9 10.9.0.3 ", "neigh mnvx-9 10.9.0.5 ", "veth alias=meshnet:net=blue:ep=a "} {
		if !strings.Contains(got, line) {
			t.Errorf("the rest was not applied: no %q in\n%s", line, got)
		}
	}

	tb.sandbox("late")
	n.Remote[1].VTEP = ip("192.0.2.4")
	n.Remote = n.Remote[:3]
	mustApply(t, tb.dps[0], n)
	got = render(t, tb.hosts[0].NS)
	for _, line := range []string{"neigh mnvx-9 10.9.0.4 ", "veth alias=meshnet:net=blue:ep=b "} {
		if !strings.Contains(got, line) {
			t.Errorf("the next Apply did not finish: no %q in\n%s", line, got)
		}
	}
}

func TestRemoveNetworkRemovesOnlyIt(t *testing.T) {
	tb := newTestbed(t, "ovrm", 1)
	mustApply(t, tb.dps[0], blue(tb, []datapath.RemoteEndpoint{{IP: ip("10.1.0.3"), VTEP: ip("192.0.2.2")}},
		local(tb, "a", "s1", "eth0", "10.1.0.2/24", "", true)), red(nil))
	if err := tb.dps[0].RemoveNetwork("blue"); err != nil {
		t.Fatal(err)
	}
	got := render(t, tb.hosts[0].NS)
	if strings.Contains(got, "blue") || !strings.Contains(got, "bridge mnbr-200") || !strings.Contains(got, "vxlan mnvx-200") {
		t.Errorf("after RemoveNetwork(blue):\n%s", got)
	}
	if sb := renderSandbox(t, tb.sandbox("s1")); sb != "" {
		t.Errorf("sandbox after RemoveNetwork(blue):\n%s", sb)
	}
	if err := tb.dps[0].RemoveNetwork("blue"); err != nil {
		t.Errorf("removing it again: %v", err)
	}
}

func delLink(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	return h.LinkDel(l)
}

func findByAliasPrefix(h *netlink.Handle, prefix string) netlink.Link {
	links, _ := h.LinkList()
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, prefix) {
			return l
		}
	}
	return nil
}
