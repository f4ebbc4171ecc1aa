package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/meshnet/meshnet/agent/api"
)

// A host that joins a running cluster sees its networks, and its
// sandbox reaches the sandboxes already there, and they reach it.
func TestHostJoinsLater(t *testing.T) {
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

		n3, err := c.AddHost(ctx)
		if err != nil {
			t.Fatal(err)
		}
		multi := inspectNetwork(t, n1, "multi")
		// A new host knows the cluster's networks as soon as it is up.
		if findNetwork(networkLS(t, n3), "multi") == nil {
			t.Errorf("network ls on n3, as soon as its agent is up, does not show multi")
			t.Logf("network ls on n3 shows multi %s later", waitListed(t, n3, "multi").Round(time.Millisecond))
		}
		if got := inspectNetwork(t, n3, "multi"); got.ID != multi.ID || got.VNI != multi.VNI {
			t.Errorf("n3 sees %s, n1 has %s", describe(got), describe(multi))
		}
		p3 := openPeer(t, c3, createSandbox(t, n3, "multi", c3))
		mustReach(t, p3, p1)
		mustReach(t, p3, p2)
		mustReach(t, p1, p2)

		err = eventually(ctx, func() error {
			out := ctl(t, n1, "node", "ls", "--format", "json")
			nodes, err := decodeList[api.Node](out)
			if err != nil {
				return fmt.Errorf("decoding %q: %w", out, err)
			}
			var names []string
			for _, n := range nodes {
				names = append(names, n.Name+"="+n.State)
			}
			if !slices.Contains(names, "n3=alive") {
				return fmt.Errorf("nodes %v", names)
			}
			return nil
		})
		if err != nil {
			t.Errorf("node ls on n1 does not show n3 alive: %v", err)
		}
	})
}
