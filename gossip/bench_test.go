package gossip

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/check"
)

// benchCluster starts n nodes with the package's LAN timing (memberlist LAN
// settings, 50ms gossip interval) on the in-memory network; signed: with
// identities (records signed and checked, sign.go). In-process, every
// node's signature checks share this machine's cores.
func benchCluster(b *testing.B, n int, signed bool) []*testNode {
	h := newHarness(b)
	nodes := make([]*testNode, n)
	for i := range nodes {
		nodes[i] = h.start(fmt.Sprintf("n%02d", i), func(c *Config) {
			c.Timing = LANTiming()
			if !signed {
				c.Identity = nil
			}
		})
		if i > 0 {
			h.join(nodes[i], nodes[0])
		}
	}
	h.waitMembers(nodes, n)
	return nodes
}

// arrivals records, per key, when each node's subscription delivered it.
type arrivals struct {
	mu sync.Mutex
	// Guarded by mu:
	seen map[string][]time.Time
}

func watch(b *testing.B, nodes []*testNode, network string) *arrivals {
	a := &arrivals{seen: make(map[string][]time.Time)}
	for _, n := range nodes {
		sub, err := n.Subscribe(network)
		if err != nil {
			b.Fatal(err)
		}
		go func() { // ends when the node closes (harness cleanup)
			for ev := range sub.C() {
				if ev.Kind == EventAdd {
					now := time.Now()
					a.mu.Lock()
					a.seen[ev.Endpoint.ID] = append(a.seen[ev.Endpoint.ID], now)
					a.mu.Unlock()
				}
			}
		}()
	}
	return a
}

// BenchmarkConvergence measures the time from a Put on one node until every
// node's subscription has delivered it (p50, p99 over all puts), and the
// gossip traffic a node sends for a table of 1,000 endpoints.
func BenchmarkConvergence(b *testing.B) {
	for _, signed := range []bool{true, false} {
		b.Run(map[bool]string{true: "signed", false: "unsigned"}[signed], func(b *testing.B) { benchConvergence(b, signed) })
	}
}

func benchConvergence(b *testing.B, signed bool) {
	for _, size := range []int{3, 20, 100} {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			nodes := benchCluster(b, size, signed)
			arr := watch(b, nodes, "bench")
			const perIter = 50 // puts per b.N iteration, for stable percentiles
			var lat []time.Duration
			b.ResetTimer()
			for i := range b.N {
				for j := range perIter {
					id := fmt.Sprintf("e%d-%d", i, j)
					start := time.Now()
					if err := nodes[(i*perIter+j)%size].Put(ep("bench", id, j)); err != nil {
						b.Fatal(err)
					}
					var last time.Time
					check.Eventually(b, 30*time.Second, func() error {
						arr.mu.Lock()
						defer arr.mu.Unlock()
						ts := arr.seen[id]
						if len(ts) < size {
							return fmt.Errorf("%s seen by %d of %d nodes", id, len(ts), size)
						}
						last = slices.MaxFunc(ts, time.Time.Compare)
						return nil
					})
					lat = append(lat, last.Sub(start))
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
	b.Run("traffic/nodes=20/endpoints=1000", func(b *testing.B) { benchTraffic(b, signed) })
	b.Run("burst/nodes=20/endpoints=1000", func(b *testing.B) { benchBurst(b, signed) })
}

// benchBurst puts 1,000 endpoints at once on one node of 20 (a rollout of
// a thousand containers on one host) and measures until every node holds
// all of them.
func benchBurst(b *testing.B, signed bool) {
	const size, total = 20, 1000
	var took []time.Duration
	for range b.N {
		b.StopTimer()
		nodes := benchCluster(b, size, signed)
		b.StartTimer()
		took = append(took, putAll(b, nodes, total, func(int) *testNode { return nodes[0] }))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "converge-ms")
	b.ReportMetric(0, "ns/op")
}

// benchTraffic puts 1,000 endpoints (50 per node on 20 nodes), waits until
// every node holds all of them, and reports what an average node sent: all
// memberlist traffic (probes, gossip, push/pull) during convergence, the
// push/pull snapshot size, and the resulting steady-state repair traffic.
func benchTraffic(b *testing.B, signed bool) {
	const size, total = 20, 1000
	for range b.N {
		b.StopTimer()
		nodes := benchCluster(b, size, signed)
		var before int64
		var pktBefore int64
		for _, n := range nodes {
			before += n.tr.sentBytes.Load()
			pktBefore += n.tr.sentPackets.Load()
		}
		b.StartTimer()
		elapsed := putAll(b, nodes, total, func(i int) *testNode { return nodes[i%size] })
		b.StopTimer()
		var after, pktAfter int64
		for _, n := range nodes {
			after += n.tr.sentBytes.Load()
			pktAfter += n.tr.sentPackets.Load()
		}
		state := len((&delegate{c: nodes[0].Cluster}).LocalState(false))
		pp := LANTiming().PushPullInterval
		b.ReportMetric(float64(after-before)/size/1024, "KiB-sent/node")
		b.ReportMetric(float64(pktAfter-pktBefore)/size/elapsed.Seconds(), "pkts/s/node")
		b.ReportMetric(elapsed.Seconds()*1000, "converge-ms")
		b.ReportMetric(float64(state)/1024, "KiB-state")
		// Each node starts one push/pull per interval and answers about one:
		// two snapshots each way.
		b.ReportMetric(float64(4*state)/pp.Seconds()/1024, "KiB/s/node-pushpull")
		b.ReportMetric(0, "ns/op")
		b.StartTimer()
	}
}

// putAll puts total endpoints, the i-th on writer(i), and returns how long
// it took until every node held all of them.
func putAll(b *testing.B, nodes []*testNode, total int, writer func(i int) *testNode) time.Duration {
	start := time.Now()
	for i := range total {
		if err := writer(i).Put(ep("bench", fmt.Sprintf("ep%04d", i), i)); err != nil {
			b.Fatal(err)
		}
	}
	check.Eventually(b, 120*time.Second, func() error {
		for _, n := range nodes {
			if got := len(n.Endpoints("bench")); got != total {
				return fmt.Errorf("%s has %d of %d", n.Name(), got, total)
			}
		}
		return nil
	})
	return time.Since(start)
}

// BenchmarkRecordSignature: what signing costs a writer per record, and
// a receiver per record it takes (sign.go).
func BenchmarkRecordSignature(b *testing.B) {
	ca := newTestCA(b)
	id := ca.identity(b, "n1")
	s := newSigning()
	s.published("n1", id.Cert.Raw)
	e := ep("net", strings.Repeat("e", 64), 1)
	e.Network, e.Node, e.VTEP = strings.Repeat("n", 64), "n1", netip.MustParseAddr("192.0.2.1")
	r := wireRecord{Version: version{LTime: 1, Writer: "n1"}, Endpoint: e}
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			r.Sig = id.seal(&r)
		}
	})
	b.Run("verify", func(b *testing.B) {
		r.Sig = id.seal(&r)
		for b.Loop() {
			if _, err := s.verify(id, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
