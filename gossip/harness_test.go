package gossip

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/check"
)

// testTiming is memberlist's local-network profile, shortened so that failure
// detection takes about a second and push/pull runs twice a second.
func testTiming() Timing {
	return Timing{
		GossipInterval:      20 * time.Millisecond,
		GossipNodes:         3,
		RetransmitMult:      3,
		ProbeInterval:       200 * time.Millisecond,
		ProbeTimeout:        100 * time.Millisecond,
		SuspicionMult:       2,
		PushPullInterval:    500 * time.Millisecond,
		TCPTimeout:          time.Second,
		GossipToTheDeadTime: 5 * time.Second,
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("GOSSIP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// harness runs many nodes in one process on an in-memory network.
type harness struct {
	t   testing.TB
	net *memNetwork
	ca  *testCA // every node has an identity of it (sign.go)

	mu sync.Mutex
	// Guarded by mu:
	nodes map[string]*testNode
}

type testNode struct {
	*Cluster
	tr *memTransport
}

func newHarness(t testing.TB) *harness {
	h := &harness{t: t, net: newMemNetwork(), ca: newTestCA(t), nodes: make(map[string]*testNode)}
	t.Cleanup(h.closeAll)
	return h
}

func (h *harness) config(name string) Config {
	return Config{
		NodeName:          name,
		VTEP:              netip.MustParseAddr("192.0.2.1"),
		Version:           "test",
		Timing:            testTiming(),
		TombstoneTTL:      20 * time.Second,
		OrphanGrace:       2 * time.Second,
		ReconnectInterval: 500 * time.Millisecond,
		Logger:            testLogger(),
		Identity:          h.ca.identity(h.t, name),
	}
}

// start creates a node (not joined).
func (h *harness) start(name string, edit ...func(*Config)) *testNode {
	h.t.Helper()
	cfg := h.config(name)
	for _, e := range edit {
		e(&cfg)
	}
	tr, _ := cfg.Transport.(*memTransport)
	if tr == nil {
		tr = h.net.newTransport()
		cfg.Transport = tr
	}
	c, err := New(cfg)
	if err != nil {
		h.t.Fatalf("starting %s: %v", name, err)
	}
	n := &testNode{Cluster: c, tr: tr}
	h.mu.Lock()
	h.nodes[name] = n
	h.mu.Unlock()
	return n
}

// largeTiming slows a big in-process cluster down enough that a hundred
// nodes' failure detectors, sharing two cores with the race detector, do
// not suspect each other merely for being descheduled.
func largeTiming(c *Config) {
	c.Timing.GossipInterval = 100 * time.Millisecond
	c.Timing.ProbeInterval = 2 * time.Second
	c.Timing.ProbeTimeout = time.Second
	c.Timing.SuspicionMult = 4
	// Push/pull encodes the whole member list with reflection-based
	// msgpack: at a hundred nodes under the race detector it is the largest
	// CPU cost, so the repair path runs rarely here.
	c.Timing.PushPullInterval = 3 * time.Second
	c.Timing.TCPTimeout = 5 * time.Second
}

// startCluster starts count nodes n00… and joins each to an earlier one.
func (h *harness) startCluster(count int) []*testNode {
	h.t.Helper()
	var edit []func(*Config)
	if count > 30 {
		edit = append(edit, largeTiming)
	}
	nodes := make([]*testNode, count)
	for i := range nodes {
		nodes[i] = h.start(fmt.Sprintf("n%02d", i), edit...)
		if i > 0 {
			h.join(nodes[i], nodes[i/2])
		}
	}
	h.waitMembers(nodes, count)
	return nodes
}

func (h *harness) join(n *testNode, seed *testNode) {
	h.t.Helper()
	var err error
	for range 3 { // a loaded seed may time out; a real agent retries too
		if _, err = n.Join([]string{seed.Addr()}); err == nil {
			return
		}
	}
	h.t.Fatalf("%s joining via %s: %v", n.Name(), seed.Name(), err)
}

// kill stops a node without leaving.
func (h *harness) kill(n *testNode) {
	h.t.Helper()
	if err := n.Close(); err != nil {
		h.t.Errorf("closing %s: %v", n.Name(), err)
	}
	h.mu.Lock()
	delete(h.nodes, n.Name())
	h.mu.Unlock()
}

func (h *harness) closeAll() {
	h.mu.Lock()
	nodes := h.nodes
	h.nodes = map[string]*testNode{}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { _ = n.Close() })
	}
	wg.Wait()
}

func (h *harness) waitMembers(nodes []*testNode, want int) {
	h.t.Helper()
	check.Eventually(h.t, 60*time.Second, func() error {
		for _, n := range nodes {
			if got := int(n.numMembers.Load()); got != want {
				return fmt.Errorf("%s sees %d members, want %d", n.Name(), got, want)
			}
		}
		return nil
	})
}

// dump renders a node's whole live table (records and versions) in a
// canonical form, for comparing replicas.
func dump(c *Cluster) string {
	c.table.mu.Lock()
	defer c.table.mu.Unlock()
	var lines []string
	for netID, m := range c.table.nets {
		for id, e := range m {
			if e.state == stateLive {
				lines = append(lines, fmt.Sprintf("%s/%s@%d/%s=%s", netID, id, e.ver.LTime, e.ver.Writer, fmtEndpoint(&e.ep)))
			}
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func fmtEndpoint(e *Endpoint) string {
	return fmt.Sprintf("%s %s %s %s %s %s %s %v", e.Name, e.IP, e.IPv6, e.MAC, e.VTEP, e.Node, e.Sandbox, e.Aliases)
}

// waitConverged waits until every node holds the same table, and it
// satisfies want (if not nil).
func waitConverged(t testing.TB, nodes []*testNode, timeout time.Duration, want func(string) error) string {
	t.Helper()
	var final string
	check.Eventually(t, timeout, func() error {
		first := dump(nodes[0].Cluster)
		for _, n := range nodes[1:] {
			if d := dump(n.Cluster); d != first {
				return fmt.Errorf("%s differs from %s:\n%s\n--- vs ---\n%s", n.Name(), nodes[0].Name(), clip(d), clip(first))
			}
		}
		if want != nil {
			if err := want(first); err != nil {
				return err
			}
		}
		final = first
		return nil
	})
	return final
}

func clip(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}

// ep returns a test endpoint; i makes the addresses unique.
func ep(network, id string, i int) Endpoint {
	return Endpoint{
		Network: network,
		ID:      id,
		Name:    "ep-" + id,
		IP:      netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}),
		MAC:     net.HardwareAddr{0x02, 0x42, 10, 0, byte(i >> 8), byte(i)},
		Sandbox: "sb-" + id,
		Aliases: []string{"alias-" + id},
	}
}

// idsOf lists the endpoint IDs present on a node across networks.
func idsOf(c *Cluster, networks ...string) []string {
	var ids []string
	for _, n := range networks {
		for _, e := range c.Endpoints(n) {
			ids = append(ids, n+"/"+e.ID)
		}
	}
	slices.Sort(ids)
	return ids
}
