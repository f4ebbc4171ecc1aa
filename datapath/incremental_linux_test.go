package datapath_test

import (
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/meshnet/meshnet/datapath"
)

// TestUpdateNetworkWritesOnlyChanges checks UpdateNetwork's bargain: it
// programs what changed in the desired state (endpoints and entries added
// and removed), trusts what it applied before (drift goes unseen until the
// next ApplyNetwork repairs it) and falls back to a full apply when its
// devices are gone.
func TestUpdateNetworkWritesOnlyChanges(t *testing.T) {
	tb, _, check := driftBed(t, "ovup")
	eps := [2][2]string{{"s1", "10.60.0.2/24"}, {"s2", "10.60.0.3/24"}}
	dp := tb.dps[0]
	base := twoHostNet(tb, "blue", 60, "10.60.0.1/24", eps, 0, true)
	want := render(t, tb.hosts[0].NS)
	wantS1 := renderSandbox(t, tb.sandbox("s1"))

	// Drift on host 1 and inside s1, behind the datapath's back.
	s1h, err := tb.sandbox("s1").Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer s1h.Close()
	eth0, err := s1h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s1h.LinkSetMTU(eth0, 1000); err != nil {
		t.Fatal(err)
	}
	vandalise(t, tb, func(h *netlink.Handle) error {
		vx, err := h.LinkByName("mnvx-60")
		if err != nil {
			return err
		}
		m, _ := net.ParseMAC("02:00:00:00:00:99")
		return h.NeighSet(&netlink.Neigh{LinkIndex: vx.Attrs().Index, Family: unix.AF_INET,
			State: netlink.NUD_PERMANENT, HardwareAddr: m, IP: net.ParseIP("10.60.0.3")})
	})
	drifted, driftedS1 := render(t, tb.hosts[0].NS), renderSandbox(t, tb.sandbox("s1"))

	// An update adding a remote endpoint and a local one writes them and
	// nothing else.
	grown := base
	grown.Remote = append(append([]datapath.RemoteEndpoint(nil), base.Remote...),
		datapath.RemoteEndpoint{IP: ip("10.60.0.9"), VTEP: vteps[1].Addr()})
	grown.Local = append(append([]datapath.LocalEndpoint(nil), base.Local...), datapath.LocalEndpoint{
		ID: "blue-s3", Sandbox: tb.sandbox("s3").Path(), IfName: "eth0", Addr: pfx("10.60.0.4/24"), DefaultRoute: true})
	if err := dp.UpdateNetwork(grown); err != nil {
		t.Fatal(err)
	}
	got := render(t, tb.hosts[0].NS)
	if !strings.Contains(got, "10.60.0.9") {
		t.Errorf("after the update, no entry for the new remote 10.60.0.9:\n%s", got)
	}
	if !strings.Contains(got, "02:00:00:00:00:99") {
		t.Errorf("the update re-read the entries it had programmed (the drifted neighbour is gone):\n%s", got)
	}
	if renderSandbox(t, tb.sandbox("s1")) != driftedS1 {
		t.Error("the update entered s1, whose endpoint did not change")
	}
	if renderSandbox(t, tb.sandbox("s3")) == "" {
		t.Error("the update did not program the new endpoint in s3")
	}

	// Shrinking back removes exactly what was added.
	if err := dp.UpdateNetwork(base); err != nil {
		t.Fatal(err)
	}
	if got := render(t, tb.hosts[0].NS); got != drifted {
		t.Errorf("after the update back:\n%s\nwant (the drifted state):\n%s", got, drifted)
	}

	// The full apply repairs the drift.
	if err := dp.ApplyNetwork(base); err != nil {
		t.Fatal(err)
	}
	if got := render(t, tb.hosts[0].NS); got != want {
		t.Errorf("after ApplyNetwork:\n%s\nwant:\n%s", got, want)
	}
	if got := renderSandbox(t, tb.sandbox("s1")); got != wantS1 {
		t.Errorf("s1 after ApplyNetwork:\n%s\nwant:\n%s", got, wantS1)
	}

	// Endpoints added by updates carry traffic.
	if err := dp.UpdateNetwork(grown); err != nil {
		t.Fatal(err)
	}
	if err := tb.dps[1].UpdateNetwork(withRemote(twoHostNet(tb, "blue", 60, "10.60.0.1/24", eps, 1, true),
		datapath.RemoteEndpoint{IP: ip("10.60.0.4"), VTEP: vteps[0].Addr()})); err != nil {
		t.Fatal(err)
	}
	serve(t, tb.sandbox("s2"), "s2b", "10.60.0.3:7001")
	mustReach(t, tb.sandbox("s3"), "10.60.0.3:7001", "s2b")
	if err := dp.UpdateNetwork(base); err != nil {
		t.Fatal(err)
	}

	// Devices gone: the update notices and applies in full.
	vandalise(t, tb, func(h *netlink.Handle) error { return delLink(h, "mnvx-60") })
	if err := dp.UpdateNetwork(base); err != nil {
		t.Fatal(err)
	}
	if got := render(t, tb.hosts[0].NS); got != want {
		t.Errorf("after an update with the VXLAN device gone:\n%s\nwant:\n%s", got, want)
	}
	check()
}

func withRemote(n datapath.Network, r ...datapath.RemoteEndpoint) datapath.Network {
	n.Remote = append(append([]datapath.RemoteEndpoint(nil), n.Remote...), r...)
	return n
}
