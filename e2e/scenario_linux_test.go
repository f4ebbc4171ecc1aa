package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/testenv/cluster"
)

// The scenario: an overlay network created on n1 is seen at once
// on n2; sandboxes on both talk over TCP, UDP and ICMP; a second overlay
// network is isolated; the network cannot be removed while in use, and
// leaves nothing behind once removed.
func TestOverlayScenario(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := newCluster(t, store, 2)
		ctx := testCtx(t)
		n1, n2 := c.Host(0), c.Host(1)

		// 1. create on n1, seen on n2 at once.
		ctl(t, n1, "network", "create", "-d", "overlay", "multi")
		multi := inspectNetwork(t, n1, "multi")
		if multi.Driver != api.DriverOverlay || multi.Scope != api.ScopeGlobal {
			t.Errorf("multi: driver %q scope %q, want overlay global", multi.Driver, multi.Scope)
		}
		if multi.VNI < 4096 || multi.VNI > 16777215 {
			t.Errorf("multi: VNI %d outside the default range 4096-16777215", multi.VNI)
		}
		subnet := subnetOf(t, multi)
		// "At once": the very next command, with no waiting; a watch-fed
		// view that lags is reported, and the test goes on once it shows.
		listed := findNetwork(networkLS(t, n2), "multi")
		if listed == nil {
			t.Errorf("network ls on n2 right after the create on n1 does not show multi")
			err := eventually(ctx, func() error {
				if listed = findNetwork(networkLS(t, n2), "multi"); listed == nil {
					return fmt.Errorf("not listed")
				}
				return nil
			})
			if err != nil {
				t.Fatalf("network ls on n2 does not show multi within %s", guard)
			}
		}
		if listed.ID != multi.ID {
			t.Errorf("network ls on n2 shows multi with id %s, n1 created %s", listed.ID, multi.ID)
		}
		onN2 := inspectNetwork(t, n2, "multi")
		if onN2.ID != multi.ID || onN2.VNI != multi.VNI || subnetOf(t, onN2) != subnet {
			t.Errorf("n2 sees %s, n1 created %s", describe(onN2), describe(multi))
		}

		// 2. a sandbox on each host; they talk both ways.
		c1, c2 := c.Name("c1"), c.Name("c2")
		ip1 := createSandbox(t, n1, "multi", c1)
		ip2 := createSandbox(t, n2, "multi", c2)
		if ip1 == ip2 || !subnet.Contains(ip1) || !subnet.Contains(ip2) {
			t.Errorf("sandbox addresses %s and %s: want two distinct addresses of %s", ip1, ip2, subnet)
		}
		t.Logf("multi: %s VNI %d; c1 %s on n1, c2 %s on n2", subnet, multi.VNI, ip1, ip2)
		p1, p2 := openPeer(t, c1, ip1), openPeer(t, c2, ip2)
		mustReach(t, p1, p2)
		want := map[string]string{c1: "n1/" + ip1.String(), c2: "n2/" + ip2.String()}
		for _, h := range []*cluster.Host{n1, n2} {
			var got map[string]string
			err := eventually(ctx, func() error {
				got = endpoints(inspectNetwork(t, h, "multi"))
				if fmt.Sprint(got) != fmt.Sprint(want) {
					return fmt.Errorf("endpoints %v", got)
				}
				return nil
			})
			if err != nil {
				t.Errorf("network inspect multi on %s lists endpoints %v, want %v (name: node/ip)", h.Node, got, want)
			}
		}

		// 3. a second overlay network is isolated from the first.
		ctl(t, n2, "network", "create", "-d", "overlay", "other")
		waitListed(t, n1, "other") // "at once" is checked above
		d1, d2 := c.Name("d1"), c.Name("d2")
		pd1 := openPeer(t, d1, createSandbox(t, n1, "other", d1))
		pd2 := openPeer(t, d2, createSandbox(t, n2, "other", d2))
		mustReach(t, pd1, pd2)
		mustNotReach(t, pd1, p2)
		mustNotReach(t, pd2, p1)
		mustNotReach(t, p1, pd2)
		mustNotReach(t, pd1, p1) // same host, other network

		// Removal is refused while endpoints exist, on either host.
		for _, h := range []*cluster.Host{n1, n2} {
			args := []string{"network", "rm", "multi"}
			line := refused(t, h, h.AgentCtl(args...), args...)
			t.Logf("network rm multi in use, on %s: %q", h.Node, line)
		}
		if inspectNetwork(t, n1, "multi").ID != multi.ID {
			t.Fatal("multi changed after a refused rm")
		}
		mustReach(t, p1, p2)

		// After sandbox rm, network rm works and leaves nothing behind.
		for _, p := range []*peer{p1, p2, pd1, pd2} {
			p.close()
		}
		ctl(t, n1, "sandbox", "rm", c1)
		ctl(t, n2, "sandbox", "rm", c2)
		for _, name := range []string{c1, c2} {
			if _, err := os.Stat("/run/netns/" + name); !os.IsNotExist(err) {
				t.Errorf("/run/netns/%s still there after sandbox rm (%v)", name, err)
			}
		}
		ctl(t, n1, "network", "rm", "multi")
		kv, err := c.Store()
		if err != nil {
			t.Fatal(err)
		}
		if left, err := storeLeft(ctx, kv, multi.ID, "multi"); err != nil || len(left) > 0 {
			t.Errorf("store keys of multi after network rm: %v %v", left, err)
		}
		for _, h := range []*cluster.Host{n1, n2} {
			err := eventually(ctx, func() error {
				for _, n := range networkLS(t, h) {
					if n.Name == "multi" || n.ID == multi.ID {
						return fmt.Errorf("still listed")
					}
				}
				return nil
			})
			if err != nil {
				t.Errorf("network ls on %s still shows multi after network rm", h.Node)
			}
		}
		for _, h := range []*cluster.Host{n1, n2} {
			var left []string
			err := eventually(ctx, func() error {
				var err error
				if left, err = networkLeft(h, multi.VNI, subnet); err == nil && len(left) > 0 {
					err = fmt.Errorf("%d left", len(left))
				}
				return err
			})
			if err != nil {
				t.Errorf("%s after network rm multi (%v):\n  %s", h.Node, err, strings.Join(left, "\n  "))
			}
		}
		ctl(t, n1, "sandbox", "rm", d1)
		ctl(t, n2, "sandbox", "rm", d2)
		ctl(t, n2, "network", "rm", "other")
		for _, h := range []*cluster.Host{n1, n2} {
			var left []string
			err := eventually(ctx, func() error {
				var err error
				if left, err = datapathLeft(h); err == nil && len(left) > 0 {
					err = fmt.Errorf("%d left", len(left))
				}
				return err
			})
			if err != nil {
				t.Errorf("%s after every sandbox and network is removed (%v):\n  %s", h.Node, err, strings.Join(left, "\n  "))
			}
		}
	})
}

// findNetwork returns the network of that name in a listing, or nil.
func findNetwork(nets []api.Network, name string) *api.Network {
	for i := range nets {
		if nets[i].Name == name {
			return &nets[i]
		}
	}
	return nil
}

// endpoints maps a network's endpoints' sandbox names to NODE/IP.
func endpoints(n api.Network) map[string]string {
	m := map[string]string{}
	for _, ep := range n.Containers {
		ip, _, _ := strings.Cut(ep.IPv4Address, "/")
		m[ep.Name] = ep.Node + "/" + ip
	}
	return m
}
