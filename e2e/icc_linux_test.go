package e2e

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/testenv/cluster"
	"github.com/meshnet/meshnet/testenv/nshost"
	"github.com/vishvananda/netlink"
)

// A bridge network with icc off keeps its sandboxes from talking to each
// other, but for a --link'ed pair on the linked sandbox's exposed ports
// (and their answers); --link also writes ALIAS and NAME into the linking
// sandbox's /etc/hosts. A network with icc on is unaffected, and the
// sandboxes still reach their gateway.
func TestICCAndLinks(t *testing.T) {
	c := newCluster(t, cluster.StoreEmbedded, 1)
	ctx := testCtx(t)
	n1 := c.Host(0)
	ctl(t, n1, "network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "quiet")
	ctl(t, n1, "network", "create", "loud")
	db, app, other := c.Name("db"), c.Name("app"), c.Name("oth")
	ctl(t, n1, "sandbox", "create", "--net", "quiet", "--expose", "5432", db)
	ipDB := sandboxIP(t, n1, db, "quiet")
	ctl(t, n1, "sandbox", "create", "--net", "quiet", "--link", db+":database", app)
	ipApp := sandboxIP(t, n1, app, "quiet")
	createSandbox(t, n1, "quiet", other)
	l1, l2 := c.Name("l1"), c.Name("l2")
	ipL2 := createSandbox(t, n1, "loud", l2)
	createSandbox(t, n1, "loud", l1)

	open := func(name string) *nshost.NS {
		ns, err := nshost.OpenNS(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		return ns
	}
	for _, s := range []string{db, app, l2} {
		ns := open(s)
		serveWhoAmIOn(t, ns, 5432)
		serveWhoAmIOn(t, ns, 22)
	}
	reach := func(from string, to netip.Addr, port uint16) bool {
		_, err := open(from).AskWhoAmI(ctx, netip.AddrPortFrom(to, port).String())
		return err == nil
	}
	for _, tc := range []struct {
		what string
		from string
		to   netip.Addr
		port uint16
		ok   bool
	}{
		{"linked, to the exposed port", app, ipDB, 5432, true},
		{"linked, to a port not exposed", app, ipDB, 22, false},
		{"not linked", other, ipDB, 5432, false},
		{"the linked one back to the linking one", db, ipApp, 5432, false},
		{"icc on", l1, ipL2, 22, true},
	} {
		if got := reach(tc.from, tc.to, tc.port); got != tc.ok {
			t.Errorf("%s (%s → %s:%d): reached %v, want %v", tc.what, tc.from, tc.to, tc.port, got, tc.ok)
		}
	}
	gw := netip.MustParseAddr(inspectNetwork(t, n1, "quiet").IPAM.Config[0].Gateway)
	if _, err := open(other).Ping(ctx, gw, 1, 0, guard); err != nil {
		t.Errorf("a sandbox of a network with icc off does not reach its gateway: %v", err)
	}
	// Two sandboxes that route each other's address through the gateway
	// get no further with icc off; with icc on, the same detour works.
	routeVia := func(from string, to netip.Addr, network string) {
		h, err := open(from).Netlink()
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		eth, err := h.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		via := net.ParseIP(inspectNetwork(t, n1, network).IPAM.Config[0].Gateway)
		dst := &net.IPNet{IP: to.AsSlice(), Mask: net.CIDRMask(32, 32)}
		if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Dst: dst, Gw: via}); err != nil {
			t.Fatal(err)
		}
	}
	ipOther := sandboxIP(t, n1, other, "quiet")
	ipL1 := sandboxIP(t, n1, l1, "loud")
	routeVia(other, ipDB, "quiet")
	routeVia(db, ipOther, "quiet")
	routeVia(l1, ipL2, "loud")
	routeVia(l2, ipL1, "loud")
	if reach(other, ipDB, 5432) {
		t.Error("icc off, routed through the gateway: reached")
	}
	if !reach(l1, ipL2, 22) {
		t.Error("icc on, routed through the gateway: not reached")
	}
	hosts, err := os.ReadFile("/etc/netns/" + app + "/hosts")
	if err != nil || !strings.Contains(string(hosts), ipDB.String()+"\tdatabase "+db) {
		t.Errorf("/etc/netns/%s/hosts: %q (%v), want %s with database and %s", app, hosts, err, ipDB, db)
	}
	args := []string{"sandbox", "create", "--net", "loud", "--link", db, c.Name("x")}
	if line := refused(t, n1, n1.AgentCtl(args...), args...); !strings.Contains(line, "not on the same network") {
		t.Errorf("a link across networks: %q", line)
	}
}
