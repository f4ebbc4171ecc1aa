package datapath_test

import (
	"testing"

	"github.com/meshnet/meshnet/datapath"
)

// twoHostNet returns network id as seen from host i (0 or 1) of a testbed:
// host i's sandbox eps[i] = {name, address} is local, the other host's is
// remote when withRemote.
func twoHostNet(tb *testbed, id string, vni uint32, gw string, eps [2][2]string, i int, withRemote bool) datapath.Network {
	n := datapath.Network{ID: id, VNI: vni, VTEP: vteps[i].Addr()}
	if gw != "" {
		n.Gateway = pfx(gw)
	}
	n.Local = []datapath.LocalEndpoint{{
		ID: id + "-" + eps[i][0], Sandbox: tb.sandbox(eps[i][0]).Path(), IfName: "eth0", Addr: pfx(eps[i][1]),
		DefaultRoute: true,
	}}
	if withRemote {
		o := 1 - i
		n.Remote = []datapath.RemoteEndpoint{{IP: pfx(eps[o][1]).Addr(), VTEP: vteps[o].Addr()}}
	}
	return n
}

func TestTrafficCrossesVXLAN(t *testing.T) {
	tb := newTestbed(t, "ovtr", 2)
	eps := [2][2]string{{"s1", "10.42.0.2/24"}, {"s2", "10.42.0.3/24"}}
	apply := func(withRemote bool) {
		t.Helper()
		for i, dp := range tb.dps {
			mustApply(t, dp, twoHostNet(tb, "blue", 42, "10.42.0.1/24", eps, i, withRemote))
		}
	}
	apply(true)
	apply(true) // a second Apply changes nothing
	s1, s2 := tb.sandbox("s1"), tb.sandbox("s2")
	serve(t, s1, "s1", "10.42.0.2:7000")
	serve(t, s2, "s2", "10.42.0.3:7000")
	// The gateway address is on every host's bridge: each sandbox reaches
	// its own host through it.
	serve(t, tb.hosts[0].NS, "h1", "10.42.0.1:7001")
	serve(t, tb.hosts[1].NS, "h2", "10.42.0.1:7001")

	mustReach(t, s1, "10.42.0.3:7000", "s2")
	mustReach(t, s2, "10.42.0.2:7000", "s1")
	mustReach(t, s1, "10.42.0.1:7001", "h1")
	mustReach(t, s2, "10.42.0.1:7001", "h2")

	apply(false) // remove the peer entries
	mustNotReach(t, s1, "10.42.0.3:7000")
	mustNotReach(t, s2, "10.42.0.2:7000")

	apply(true) // and restore them
	mustReach(t, s1, "10.42.0.3:7000", "s2")
	mustReach(t, s2, "10.42.0.2:7000", "s1")
}

func TestNetworksAreIsolated(t *testing.T) {
	tb := newTestbed(t, "ovis", 2)
	// Both networks use the same subnet; a1/b1 even share an address and so
	// a MAC. Only VNIs keep them apart.
	a := [2][2]string{{"a1", "10.50.0.2/24"}, {"a2", "10.50.0.3/24"}}
	b := [2][2]string{{"b1", "10.50.0.2/24"}, {"b2", "10.50.0.4/24"}}
	for i, dp := range tb.dps {
		mustApply(t, dp, twoHostNet(tb, "net-a", 101, "", a, i, true), twoHostNet(tb, "net-b", 102, "", b, i, true))
	}
	for _, sb := range []string{"a1", "a2", "b1", "b2"} {
		serve(t, tb.sandbox(sb), sb, ":7000")
	}
	mustReach(t, tb.sandbox("a1"), "10.50.0.3:7000", "a2")
	mustReach(t, tb.sandbox("b1"), "10.50.0.4:7000", "b2")
	mustReach(t, tb.sandbox("b2"), "10.50.0.2:7000", "b1")
	mustReach(t, tb.sandbox("a2"), "10.50.0.2:7000", "a1")
	mustNotReach(t, tb.sandbox("a1"), "10.50.0.4:7000")
	mustNotReach(t, tb.sandbox("b1"), "10.50.0.3:7000")
	mustNotReach(t, tb.sandbox("a2"), "10.50.0.4:7000")
}
