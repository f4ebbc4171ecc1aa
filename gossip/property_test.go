package gossip

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var propertySeed = flag.Uint64("gossip.seed", 0, "seed for TestPropertyConvergence (0: time-based)")

// TestPropertyConvergence replays a random interleaving of puts, deletes,
// partitions and heals on five nodes (each writing its own endpoints, as
// only an endpoint's node may), then lets traffic flow: every node must
// end with the same table, and every record must belong to a live member.
// The seed is printed so that a failure can be replayed with -gossip.seed.
func TestPropertyConvergence(t *testing.T) {
	seed := *propertySeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay: go test -run TestPropertyConvergence -gossip.seed=%d ./gossip/)", seed, seed)
	defer func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d", seed)
		}
	}()
	rng := rand.New(rand.NewPCG(seed, 0))

	h := newHarness(t)
	nodes := h.startCluster(5)
	keys := []string{"a", "b", "c", "d", "e", "f"}
	networks := []string{"red", "blue"}
	for step := range 60 {
		switch op := rng.IntN(20); {
		case op < 11:
			n := nodes[rng.IntN(len(nodes))]
			if err := n.Put(ep(networks[rng.IntN(2)], n.Name()+"-"+keys[rng.IntN(len(keys))], step)); err != nil {
				t.Fatal(err)
			}
		case op < 17:
			n := nodes[rng.IntN(len(nodes))]
			if err := n.Delete(networks[rng.IntN(2)], n.Name()+"-"+keys[rng.IntN(len(keys))]); err != nil {
				t.Fatal(err)
			}
		case op < 19:
			perm := rng.Perm(len(nodes))
			cut := 1 + rng.IntN(len(nodes)-1)
			var a, b []string
			for i, p := range perm {
				if i < cut {
					a = append(a, nodes[p].Addr())
				} else {
					b = append(b, nodes[p].Addr())
				}
			}
			h.net.partition(a, b)
		default:
			h.net.heal()
		}
		// Let some steps overlap and others settle, so that partitions
		// last long enough for failure detection.
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
	}
	h.net.heal()
	h.waitMembers(nodes, len(nodes))
	waitConverged(t, nodes, 60*time.Second, func(d string) error {
		if d == "" {
			return nil
		}
		for _, line := range strings.Split(d, "\n") {
			_, writer, _ := strings.Cut(line, "/")
			_, writer, _ = strings.Cut(writer, "/")
			writer, _, _ = strings.Cut(writer, "=")
			if !strings.HasPrefix(writer, "n0") {
				return fmt.Errorf("record of unknown writer: %s", line)
			}
		}
		return nil
	})
}
