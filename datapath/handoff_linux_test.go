package datapath_test

import (
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/meshnet/meshnet/datapath"
)

// moveIn does what Docker does with a remote driver's interface: it moves
// the link named src from the host into the sandbox, renames it to dst,
// and sets its address, its state and a default route.
func moveIn(t *testing.T, tb *testbed, sandbox, src, dst, addr, gw string) {
	t.Helper()
	h, err := tb.hosts[0].Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(src)
	if err != nil {
		t.Fatalf("the handed-off interface %s is not in the host namespace: %v", src, err)
	}
	sb := tb.sandbox(sandbox)
	if err := h.LinkSetNsFd(l, int(sb.Handle())); err != nil {
		t.Fatal(err)
	}
	sh, err := sb.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	if l, err = sh.LinkByName(src); err == nil {
		err = sh.LinkSetName(l, dst)
	}
	if err == nil {
		l, err = sh.LinkByName(dst)
	}
	if err == nil {
		err = sh.AddrAdd(l, &netlink.Addr{IPNet: netPrefix(addr)})
	}
	if err == nil {
		err = sh.LinkSetUp(l)
	}
	if err == nil {
		err = sh.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP(gw)})
	}
	if err != nil {
		t.Fatal(err)
	}
}

func netPrefix(s string) *net.IPNet {
	ip, n, _ := net.ParseCIDR(s)
	n.IP = ip
	return n
}

// TestHandoff: an endpoint whose sandbox end the runtime moves (Docker's
// remote drivers) is made in the host namespace; once moved, it talks to a
// sandbox the datapath plumbs itself, and applying again, in full or as an
// update, never touches it; removing the endpoint deletes the pair.
func TestHandoff(t *testing.T) {
	tb := newTestbed(t, "ovho", 1)
	dp := tb.dps[0]
	handed := datapath.LocalEndpoint{ID: "d", IfName: "mnho-d", Addr: pfx("172.18.0.3/16"), Handoff: true, DefaultRoute: true}
	n := bridgeNet("ho", "mnho0", "172.18.0.1/16", local(tb, "a", "s1", "eth0", "172.18.0.2/16", "", true), handed)
	mustApply(t, dp, n)
	host := render(t, tb.hosts[0].NS)
	for _, line := range []string{"veth alias=meshnet:net=ho:ep=d mtu=1500 master=mnho0 up", "veth alias=meshnet:net=ho:ep=d mtu=1500 down"} {
		if !strings.Contains(host, line) {
			t.Errorf("no %q in\n%s", line, host)
		}
	}
	moveIn(t, tb, "s2", "mnho-d", "eth0", "172.18.0.3/16", "172.18.0.1")
	want := renderSandbox(t, tb.sandbox("s2"))
	if !strings.Contains(want, "eth0 veth alias=meshnet:net=ho:ep=d mac=02:6d:ac:12:00:03") {
		t.Errorf("sandbox s2 after the move:\n%s", want)
	}
	serve(t, tb.sandbox("s1"), "s1", "172.18.0.2:7000")
	serve(t, tb.sandbox("s2"), "s2", "172.18.0.3:7000")
	mustReach(t, tb.sandbox("s2"), "172.18.0.2:7000", "s1")
	mustReach(t, tb.sandbox("s1"), "172.18.0.3:7000", "s2")

	mustApply(t, dp, n)
	if err := dp.UpdateNetwork(n); err != nil {
		t.Fatal(err)
	}
	if got := renderSandbox(t, tb.sandbox("s2")); got != want {
		t.Errorf("sandbox s2 after applying again:\n%s\nwant:\n%s", got, want)
	}
	mustReach(t, tb.sandbox("s1"), "172.18.0.3:7000", "s2")

	n.Local = n.Local[:1]
	mustApply(t, dp, n)
	if got := renderSandbox(t, tb.sandbox("s2")); got != "" {
		t.Errorf("sandbox s2 after the endpoint went:\n%s", got)
	}
	mustApply(t, dp)
}
