package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/check"
)

// TestDirectFanOut checks that local writes reach every member straight
// from their writer: with gossip rounds and push/pull slowed to an hour,
// a burst of puts and a delete still arrive everywhere.
func TestDirectFanOut(t *testing.T) {
	h := newHarness(t)
	slow := func(c *Config) {
		c.Timing = LANTiming()
		c.Timing.GossipInterval = time.Hour
		c.Timing.PushPullInterval = time.Hour
	}
	nodes := make([]*testNode, 5)
	for i := range nodes {
		nodes[i] = h.start(fmt.Sprintf("n%02d", i), slow)
		if i > 0 {
			h.join(nodes[i], nodes[0]) // the join's push/pull happens now, with an empty table
		}
	}
	h.waitMembers(nodes, len(nodes))

	const total = 300 // several packets' worth
	for i := range total {
		if err := nodes[3].Put(ep("net", fmt.Sprintf("e%03d", i), i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nodes[3].Delete("net", "e007"); err != nil {
		t.Fatal(err)
	}
	check.Eventually(t, 30*time.Second, func() error {
		for _, n := range nodes {
			if got := len(n.Endpoints("net")); got != total-1 {
				return fmt.Errorf("%s has %d endpoints, want %d", n.Name(), got, total-1)
			}
		}
		return nil
	})
}
