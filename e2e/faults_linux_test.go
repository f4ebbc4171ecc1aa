package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/datapath"
	"github.com/meshnet/meshnet/testenv/cluster"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Faults: hosts that die, and hosts cut off from the others. The store is
// an etcd server of its own, so that it stays reachable from every host
// whatever happens to them.

// fdbDestinations are the VTEPs the FDB entries of h's meshnet VXLAN
// devices point at.
func fdbDestinations(t *testing.T, h *cluster.Host) []netip.Addr {
	t.Helper()
	nl, err := h.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	links, err := nl.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, l := range links {
		if l.Type() != "vxlan" || !datapath.OwnsAlias(l.Attrs().Alias) {
			continue
		}
		entries, err := nl.NeighList(l.Attrs().Index, unix.AF_BRIDGE)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if ip, ok := netip.AddrFromSlice(e.IP); ok && e.Flags&netlink.NTF_SELF != 0 && !ip.IsUnspecified() {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// nodesIn are the nodes network name has endpoints on, as h's inspect says.
func nodesIn(t *testing.T, h *cluster.Host, name string) []string {
	t.Helper()
	var nodes []string
	for _, e := range inspectNetwork(t, h, name).Containers {
		if !slices.Contains(nodes, e.Node) {
			nodes = append(nodes, e.Node)
		}
	}
	slices.Sort(nodes)
	return nodes
}

// addressLeases are the ips/ keys of the cluster store.
func addressLeases(t *testing.T, ctx context.Context, c *cluster.Cluster) []string {
	t.Helper()
	s, err := c.Store() // the cluster's, closed with it
	if err != nil {
		t.Fatal(err)
	}
	kvs, _, err := s.List(ctx, "ips/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range kvs {
		keys = append(keys, kv.Key)
	}
	return keys
}

// TestHostVanishes: a host whose agent is killed and whose cable is cut is
// purged from the others' FDB and neighbour entries and from network
// inspect; its leases stay until node-reclaim-after has passed. When it
// comes back within that time, it re-announces its endpoints and is
// reachable again with the same address; when it stays away longer, its
// leases are reclaimed.
func TestHostVanishes(t *testing.T) {
	const reclaimAfter = 10 * time.Second
	c := cluster.NewT(t, cluster.Options{Hosts: 3, Store: cluster.StoreEtcd, Tag: "flt",
		AgentArgs: []string{"--node-reclaim-after", reclaimAfter.String()}})
	ctx := testCtx(t)
	n1, n2, n3 := c.Host(0), c.Host(1), c.Host(2)
	ctl(t, n1, "network", "create", "-d", "overlay", "multi")
	for _, h := range []*cluster.Host{n2, n3} {
		waitListed(t, h, "multi")
	}
	s1, s2, s3 := c.Name("s1"), c.Name("s2"), c.Name("s3")
	p1 := openPeer(t, s1, createSandbox(t, n1, "multi", s1))
	p2 := openPeer(t, s2, createSandbox(t, n2, "multi", s2))
	ip3 := createSandbox(t, n3, "multi", s3)
	p3 := openPeer(t, s3, ip3)
	mustReach(t, p1, p3)
	mustReach(t, p2, p3)
	leases := addressLeases(t, ctx, c)
	vtep3 := n3.Addr.Addr()

	n3.Kill()
	if err := n3.SetCable(false); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	for _, h := range []*cluster.Host{n1, n2} {
		err := eventually(ctx, func() error {
			if slices.Contains(fdbDestinations(t, h), vtep3) {
				return fmt.Errorf("%s's FDB still points at %s's VTEP %s", h.Node, n3.Node, vtep3)
			}
			if nodes := nodesIn(t, h, "multi"); slices.Contains(nodes, n3.Node) {
				return fmt.Errorf("network inspect on %s still lists endpoints on %s: %v", h.Node, n3.Node, nodes)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s purged %s after %s", h.Node, n3.Node, time.Since(cut).Round(100*time.Millisecond))
	}
	if got := addressLeases(t, ctx, c); !slices.Equal(got, leases) {
		t.Errorf("leases %v within node-reclaim-after of %s's departure, want them kept: %v", got, n3.Node, leases)
	}

	// Back within node-reclaim-after: its sandbox is reachable again, at
	// the same address.
	if err := n3.SetCable(true); err != nil {
		t.Fatal(err)
	}
	if err := n3.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mustReach(t, p1, p3)
	mustReach(t, p2, p3)
	if got := nodesIn(t, n1, "multi"); !slices.Contains(got, n3.Node) {
		t.Errorf("network inspect on n1 after %s's return: nodes %v", n3.Node, got)
	}
	if got := addressLeases(t, ctx, c); !slices.Equal(got, leases) {
		t.Errorf("leases %v after %s's return, want %v", got, n3.Node, leases)
	}

	// Gone for longer than node-reclaim-after: its lease is given back.
	p3.close()
	n3.Kill()
	if err := n3.SetCable(false); err != nil {
		t.Fatal(err)
	}
	gone := time.Now()
	want := slices.DeleteFunc(slices.Clone(leases), func(k string) bool { return strings.HasSuffix(k, "/"+ip3.String()) })
	err := eventually(ctx, func() error {
		if got := addressLeases(t, ctx, c); !slices.Equal(got, want) {
			return fmt.Errorf("leases %v, want %v", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s's lease of %s not reclaimed: %v", n3.Node, ip3, err)
	}
	took := time.Since(gone)
	t.Logf("%s's lease reclaimed %s after it went (node-reclaim-after %s)", n3.Node, took.Round(time.Second), reclaimAfter)
	if took < reclaimAfter {
		t.Errorf("%s's lease reclaimed after %s, before node-reclaim-after (%s)", n3.Node, took, reclaimAfter)
	}
	if err := n3.SetCable(true); err != nil {
		t.Fatal(err)
	}
}

// TestPartitionHeals: a host cut off from the others (but not from the
// store) for 15 s catches up once the cut heals: sandboxes created on
// either side meanwhile reach each other, and the old ones still do.
func TestPartitionHeals(t *testing.T) {
	c := cluster.NewT(t, cluster.Options{Hosts: 3, Store: cluster.StoreEtcd, Tag: "prt"})
	ctx := testCtx(t)
	n1, n2, n3 := c.Host(0), c.Host(1), c.Host(2)
	ctl(t, n1, "network", "create", "-d", "overlay", "multi")
	for _, h := range []*cluster.Host{n2, n3} {
		waitListed(t, h, "multi")
	}
	a1, a3 := c.Name("a1"), c.Name("a3")
	pa1 := openPeer(t, a1, createSandbox(t, n1, "multi", a1))
	pa3 := openPeer(t, a3, createSandbox(t, n3, "multi", a3))
	mustReach(t, pa1, pa3)

	partition := func(on bool) {
		t.Helper()
		for _, h := range []*cluster.Host{n1, n2} {
			if err := h.Blackhole(n3.Addr.Addr(), on); err != nil {
				t.Fatal(err)
			}
			if err := n3.Blackhole(h.Addr.Addr(), on); err != nil {
				t.Fatal(err)
			}
		}
	}
	partition(true)
	cut := time.Now()
	b1, b3 := c.Name("b1"), c.Name("b3")
	pb1 := openPeer(t, b1, createSandbox(t, n1, "multi", b1))
	pb3 := openPeer(t, b3, createSandbox(t, n3, "multi", b3))
	if _, err := echo(ctx, pa1.ns, "tcp", pa3.addr(), time.Second); err == nil {
		t.Errorf("%s reaches %s across the partition", a1, a3)
	}
	time.Sleep(15*time.Second - time.Since(cut))
	partition(false)
	healed := time.Now()
	for _, pair := range [][2]*peer{{pb1, pb3}, {pb3, pb1}, {pa1, pb3}, {pb1, pa3}, {pa1, pa3}, {pa3, pa1}} {
		if err := eventually(ctx, func() error { return reachable(ctx, pair[0], pair[1]) }); err != nil {
			t.Fatalf("after the partition healed: %v", err)
		}
	}
	t.Logf("all sandboxes reach each other %s after the partition healed", time.Since(healed).Round(100*time.Millisecond))
}
