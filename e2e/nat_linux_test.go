package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables"

	"github.com/meshnet/meshnet/firewall"
	"github.com/meshnet/meshnet/testenv/cluster"
	"github.com/meshnet/meshnet/testenv/nshost"
)

const whoAmIPort = 7070

// serveWhoAmI answers every TCP connection to ns on whoAmIPort with the
// address it came from, until the test ends.
func serveWhoAmI(t *testing.T, ns *nshost.NS) { serveWhoAmIOn(t, ns, whoAmIPort) }

// serveWhoAmIOn is serveWhoAmI on another port.
func serveWhoAmIOn(t *testing.T, ns *nshost.NS, port int) {
	t.Helper()
	s, err := ns.ServeWhoAmI(fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
}

// seenFrom connects from sandbox name to addr's who-am-I server and
// returns the source address the server saw.
func seenFrom(ctx context.Context, name string, addr netip.Addr) (string, error) {
	ns, err := nshost.OpenNS(name)
	if err != nil {
		return "", err
	}
	defer ns.Close()
	return whoAmI(ctx, ns, netip.AddrPortFrom(addr, whoAmIPort))
}

// whoAmI connects from ns to a who-am-I server and returns the source
// address it saw.
func whoAmI(ctx context.Context, ns *nshost.NS, to netip.AddrPort) (string, error) {
	return ns.AskWhoAmI(ctx, to.String())
}

// tableOn reports whether meshnet's nftables table exists on host h.
func tableOn(t *testing.T, h *cluster.Host) bool {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(h.Handle())))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == firewall.TableName {
			return true
		}
	}
	return false
}

// Sandboxes on bridge and overlay networks reach the outside through
// their own host, masqueraded to its address; internal networks reach
// nothing outside; networks are isolated from each other, bridge from
// bridge and bridge from overlay; and the table goes with the last
// network.
func TestEgressAndIsolation(t *testing.T) {
	c := newCluster(t, cluster.StoreEmbedded, 2)
	ctx := testCtx(t)
	n1, n2 := c.Host(0), c.Host(1)
	out, err := c.AddOutside()
	if err != nil {
		t.Fatal(err)
	}
	serveWhoAmI(t, out.NS)
	ctl(t, n1, "network", "create", "b1")
	ctl(t, n1, "network", "create", "b2")
	ctl(t, n1, "network", "create", "--internal", "bi")
	ctl(t, n1, "network", "create", "-d", "overlay", "ov")
	waitListed(t, n2, "ov")
	s1, s2, si, so1, so2 := c.Name("s1"), c.Name("s2"), c.Name("si"), c.Name("so1"), c.Name("so2")
	createSandbox(t, n1, "b1", s1)
	ip2 := createSandbox(t, n1, "b2", s2)
	ipi := createSandbox(t, n1, "bi", si)
	ipo1 := createSandbox(t, n1, "ov", so1)
	ipo2 := createSandbox(t, n2, "ov", so2)
	if !tableOn(t, n1) || !tableOn(t, n2) {
		t.Errorf("meshnet's table: on n1 %v, on n2 %v", tableOn(t, n1), tableOn(t, n2))
	}

	for _, tc := range []struct {
		sandbox string
		host    *cluster.Host
	}{{s1, n1}, {s2, n1}, {so1, n1}, {so2, n2}} {
		var seen string
		err := eventually(ctx, func() error {
			var err error
			seen, err = seenFrom(ctx, tc.sandbox, cluster.OutsideAddr)
			return err
		})
		if err != nil || seen != tc.host.Addr.Addr().String() {
			t.Errorf("outside sees %s's connection from %q (%v), want its host's %s", tc.sandbox, seen, err, tc.host.Addr.Addr())
		}
	}
	if seen, err := seenFrom(ctx, si, cluster.OutsideAddr); err == nil {
		t.Errorf("a sandbox of an internal network reached the outside (seen as %s)", seen)
	}

	// Isolation: each sandbox serves who-am-I; only the overlay pair talk.
	for _, name := range []string{s2, si, so1, so2} {
		ns, err := nshost.OpenNS(name)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		serveWhoAmI(t, ns)
	}
	for _, tc := range []struct {
		from string
		to   netip.Addr
		ok   bool
	}{
		{s1, ip2, false}, {s1, ipi, false}, {s1, ipo1, false}, {so1, ip2, false}, {si, ipo1, false},
		{so1, ipo2, true}, {so2, ipo1, true},
	} {
		_, err := seenFrom(ctx, tc.from, tc.to)
		if tc.ok && err != nil {
			err = eventually(ctx, func() error { _, err := seenFrom(ctx, tc.from, tc.to); return err })
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s → %s: reached %v, want %v (%v)", tc.from, tc.to, err == nil, tc.ok, err)
		}
	}

	for _, s := range []string{s1, s2, si, so1} {
		ctl(t, n1, "sandbox", "rm", s)
	}
	ctl(t, n2, "sandbox", "rm", so2)
	for _, n := range []string{"b1", "b2", "bi", "ov"} {
		ctl(t, n1, "network", "rm", n)
	}
	if tableOn(t, n1) || tableOn(t, n2) {
		t.Errorf("meshnet's table left after the last network: on n1 %v, on n2 %v", tableOn(t, n1), tableOn(t, n2))
	}
}

// With iptables: false the agent writes no rules at all, says so at
// start, and removes the table an earlier run left.
func TestIPTablesFalse(t *testing.T) {
	c := newCluster(t, cluster.StoreEmbedded, 1)
	n1 := c.Host(0)
	ctl(t, n1, "network", "create", "b1")
	createSandbox(t, n1, "b1", c.Name("s1"))
	if !tableOn(t, n1) {
		t.Fatal("no table with iptables: true")
	}
	if err := n1.Stop(); err != nil {
		t.Fatal(err)
	}
	cfg := readFile(t, n1.ConfigPath())
	writeFileT(t, n1.ConfigPath(), cfg+"iptables: false\n")
	if err := n1.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if tableOn(t, n1) {
		t.Error("the table is still there with iptables: false")
	}
	if log := readFile(t, n1.LogPath); !strings.Contains(log, "iptables: false: meshnet writes no packet-filter or NAT rules") {
		t.Error("the agent does not say that it writes no rules")
	}
	createSandbox(t, n1, "b1", c.Name("s2"))
	if tableOn(t, n1) {
		t.Error("a table was made with iptables: false")
	}
}
