package e2e

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/cluster"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// Sandboxes keep talking while an agent restarts: a UDP probe every 10 ms
// runs throughout (its longest gap is logged, not asserted), traffic works
// while the agent is down, an established TCP connection survives, and
// new connections work after the restart.
func TestAgentRestartKeepsConnectivity(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := newCluster(t, store, 2)
		ctx := testCtx(t)
		n1, n2 := c.Host(0), c.Host(1)
		ctl(t, n1, "network", "create", "-d", "overlay", "multi")
		waitListed(t, n2, "multi")
		c1, c2 := c.Name("c1"), c.Name("c2")
		ip1 := createSandbox(t, n1, "multi", c1)
		ip2 := createSandbox(t, n2, "multi", c2)
		p1, p2 := openPeer(t, c1, ip1), openPeer(t, c2, ip2)
		mustReach(t, p1, p2)
		if t.Failed() {
			t.FailNow()
		}

		established, err := p1.ns.Dial(ctx, "tcp", p2.addr())
		if err != nil {
			t.Fatal(err)
		}
		defer established.Close()
		roundTrip := func(when string) {
			t.Helper()
			rctx, cancel := context.WithTimeout(ctx, guard)
			defer cancel()
			if _, err := nshost.RoundTrip(rctx, established, []byte("still there "+when)); err != nil {
				t.Fatalf("established TCP connection c1 → c2 %s: %v", when, err)
			}
		}
		roundTrip("before the restarts")

		pr, err := startProbe(ctx, p1.ns, p2.addr(), 10*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Stop()
		time.Sleep(time.Second) // a baseline before the first restart

		for _, h := range []*cluster.Host{n2, n1} {
			begin := pr.Mark()
			if err := h.Stop(); err != nil {
				t.Errorf("stopping %s: %v", h.Node, err)
			}
			stopped := time.Now()
			stopTook := stopped.Sub(begin.at)
			// The datapath outlives its agent.
			if err := eventually(ctx, func() error { return reachable(ctx, p1, p2) }); err != nil {
				t.Errorf("c1 → c2 while the agent of %s is stopped: %v", h.Node, err)
			}
			if err := eventually(ctx, func() error { return reachable(ctx, p2, p1) }); err != nil {
				t.Errorf("c2 → c1 while the agent of %s is stopped: %v", h.Node, err)
			}
			roundTrip("while the agent of " + h.Node + " is stopped")
			time.Sleep(time.Second) // probe a while with the agent down
			down := time.Since(stopped)
			if err := h.Start(ctx); err != nil {
				t.Fatalf("restarting %s: %v", h.Node, err)
			}
			started := time.Now()
			startTook := started.Sub(stopped) - down
			mustReach(t, p1, p2)
			roundTrip("after the agent of " + h.Node + " restarted")
			time.Sleep(2 * time.Second) // probe through the agent's reconciliation
			w := pr.Between(begin, pr.Mark())
			t.Logf("restart of %s (%s store): SIGTERM to exit %s, down %s, start to GET /info %s, probed %s more; "+
				"probe every 10ms: %d/%d answered, longest gap %s",
				h.Node, store, stopTook.Round(time.Millisecond), down.Round(time.Millisecond),
				startTook.Round(time.Millisecond), time.Since(started).Round(time.Millisecond),
				w.Answered, w.Sent, w.LongestGap.Round(time.Millisecond))
			if !w.AnsweredAfter {
				t.Errorf("the probe got no answers after the restart of %s", h.Node)
			}
		}

		// The sandboxes kept their addresses and endpoints.
		for _, s := range []struct {
			h    *cluster.Host
			name string
			ip   netip.Addr
		}{{n1, c1, ip1}, {n2, c2, ip2}} {
			if got := sandboxIP(t, s.h, s.name, "multi"); got != s.ip {
				t.Errorf("%s has address %s after the restarts, had %s", s.name, got, s.ip)
			}
		}
		roundTrip("at the end")
	})
}
