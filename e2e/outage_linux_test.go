package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// While the cluster store is down, sandboxes keep talking, an agent
// restarts, and global operations fail at once with a clear message;
// once the store is back, everything works again. For the embedded store
// the outage is n1's agent, which serves it.
func TestStoreOutage(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := newCluster(t, store, 2)
		ctx := testCtx(t)
		n1, n2 := c.Host(0), c.Host(1)
		ctl(t, n1, "network", "create", "-d", "overlay", "multi")
		waitListed(t, n2, "multi")
		c1, c2, c3 := c.Name("c1"), c.Name("c2"), c.Name("c3")
		p1 := openPeer(t, c1, createSandbox(t, n1, "multi", c1))
		p2 := openPeer(t, c2, createSandbox(t, n2, "multi", c2))
		mustReach(t, p1, p2)

		if err := c.StopStore(); err != nil {
			t.Fatalf("stopping the store: %v", err)
		}
		t.Logf("%s store stopped", store)

		// The first global operation after the store died fails about as
		// fast as the later ones: the agent notices the outage within a
		// second and cuts the operation's store calls short.
		for i, name := range []string{"during", "during2"} {
			args := []string{"network", "create", "-d", "overlay", name}
			start := time.Now()
			r := n2.AgentCtl(args...)
			took := time.Since(start)
			line := refused(t, n2, r, args...)
			t.Logf("network create %d during the outage: %q after %s", i+1, line, took.Round(time.Millisecond))
			if !strings.Contains(strings.ToLower(line), "store") {
				t.Errorf("network create during the outage says %q: it should say the cluster store is unreachable", line)
			}
			// A bound far above the second it takes, and far below the
			// call timeout (5 s) it took when it waited for that.
			if took > 3*time.Second {
				t.Errorf("network create %d during the outage took %s to fail", i+1, took.Round(time.Millisecond))
			}
		}
		mustReach(t, p1, p2)
		if info, err := n2.Info(ctx); err != nil || info.StoreStatus == "ok" {
			t.Errorf("GET /info on n2 during the outage: store status %q, %v; want why the store is not usable", info.StoreStatus, err)
		}

		// An agent starts while its store is down, and its sandbox keeps
		// talking.
		if err := n2.Restart(ctx); err != nil {
			t.Errorf("restarting n2 during the outage: %v", err)
		}
		mustReach(t, p1, p2)
		if findNetwork(networkLS(t, n2), "multi") == nil {
			t.Errorf("network ls on n2 during the outage, after its restart, does not show multi")
		}

		if err := c.StartStore(ctx); err != nil {
			t.Fatalf("starting the store again: %v", err)
		}
		t.Logf("%s store started again", store)
		for _, h := range c.Hosts() {
			if err := h.WaitStore(ctx); err != nil {
				t.Errorf("after the outage: %v", err)
			}
		}
		err := eventually(ctx, func() error {
			if r := n2.AgentCtl("network", "create", "-d", "overlay", "after"); r.Code != 0 {
				return fmt.Errorf("%s", r)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("network create after the outage: %v", err)
		}
		if got := inspectNetwork(t, n1, "multi"); got.ID != inspectNetwork(t, n2, "multi").ID {
			t.Errorf("n1 and n2 disagree on multi after the outage")
		}
		p3 := openPeer(t, c3, createSandbox(t, n2, "multi", c3))
		mustReach(t, p1, p3)
		mustReach(t, p1, p2)
		lag := waitListed(t, n1, "after")
		t.Logf("network after, created on n2 after the outage, listed on n1 %s later", lag.Round(time.Millisecond))
		a1, a2 := c.Name("a1"), c.Name("a2")
		pa1 := openPeer(t, a1, createSandbox(t, n1, "after", a1))
		pa2 := openPeer(t, a2, createSandbox(t, n2, "after", a2))
		mustReach(t, pa1, pa2)
	})
}
