package datapath_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/meshnet/meshnet/datapath"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// remotes returns n remote endpoints in 10.128.0.0/9 spread over 200 VTEPs
// in 198.51.100.0/24 (never sent to: nothing transmits in the benchmark).
func remotes(n int) []datapath.RemoteEndpoint {
	eps := make([]datapath.RemoteEndpoint, n)
	for i := range eps {
		ip := netip.AddrFrom4([4]byte{10, 128 + byte(i>>16), byte(i >> 8), byte(i)})
		eps[i] = datapath.RemoteEndpoint{IP: ip, VTEP: netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%200)})}
	}
	return eps
}

func benchNet(eps []datapath.RemoteEndpoint) datapath.Network {
	return datapath.Network{ID: "bench", VNI: 500, VTEP: ip("192.0.2.1"), Remote: eps}
}

func benchHost(b *testing.B) *datapath.Datapath {
	b.Helper()
	ul, err := nshost.NewUnderlay(nshost.Prefix("ovbn"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ul.Close() })
	h, err := ul.AddHost("h1", vteps[0])
	if err != nil {
		b.Fatal(err)
	}
	dp, err := datapath.New(h.Handle())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = dp.Apply(nil); _ = dp.Close() })
	return dp
}

// BenchmarkProgram measures programming N remote endpoints (an FDB and a
// neighbour entry each) into an existing, empty network.
func BenchmarkProgram(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dp := benchHost(b)
			full, empty := benchNet(remotes(n)), benchNet(nil)
			for b.Loop() {
				b.StopTimer()
				if err := dp.Apply([]datapath.Network{empty}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := dp.Apply([]datapath.Network{full}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "endpoints/s")
		})
	}
}

// BenchmarkReconcileNoop measures reconciling a network whose 10,000
// remote endpoints are already programmed: in full (ApplyNetwork, the
// periodic resync, which reads the kernel's tables to compare) and as an
// update (UpdateNetwork, what a change of the network costs: it trusts
// what it applied), unchanged and with one endpoint more each time.
func BenchmarkReconcileNoop(b *testing.B) {
	dp := benchHost(b)
	all := remotes(10001)
	full := benchNet(all[:10000])
	if err := dp.ApplyNetwork(full); err != nil {
		b.Fatal(err)
	}
	b.Run("apply", func(b *testing.B) {
		for b.Loop() {
			if err := dp.ApplyNetwork(full); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/reconcile")
	})
	b.Run("update", func(b *testing.B) {
		for b.Loop() {
			if err := dp.UpdateNetwork(full); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/reconcile")
	})
	b.Run("update-one-more", func(b *testing.B) {
		more := benchNet(all)
		for b.Loop() {
			for _, n := range []datapath.Network{more, full} {
				if err := dp.UpdateNetwork(n); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(2*b.N), "ms/reconcile")
	})
}

// BenchmarkThroughput streams TCP for 3 s sandbox→sandbox across the overlay
// and host→host across the underlay veth, in the same run.
func BenchmarkThroughput(b *testing.B) {
	ul, err := nshost.NewUnderlay(nshost.Prefix("ovtp"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ul.Close() })
	var hosts [2]*nshost.Host
	var sbs [2]*nshost.NS
	addrs := [2]string{"10.70.0.2/24", "10.70.0.3/24"}
	for i := range hosts {
		if hosts[i], err = ul.AddHost(fmt.Sprintf("h%d", i+1), vteps[i]); err != nil {
			b.Fatal(err)
		}
		if sbs[i], err = ul.NewSandbox(fmt.Sprintf("s%d", i+1)); err != nil {
			b.Fatal(err)
		}
		sb := sbs[i]
		b.Cleanup(func() { _ = sb.Close() })
	}
	for i := range hosts {
		dp, err := datapath.New(hosts[i].Handle())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = dp.Apply(nil); _ = dp.Close() })
		o := 1 - i
		n := datapath.Network{ID: "tp", VNI: 70, VTEP: vteps[i].Addr(),
			Local:  []datapath.LocalEndpoint{{ID: "e", Sandbox: sbs[i].Path(), IfName: "eth0", Addr: pfx(addrs[i])}},
			Remote: []datapath.RemoteEndpoint{{IP: pfx(addrs[o]).Addr(), VTEP: vteps[o].Addr()}},
		}
		if err := dp.Apply([]datapath.Network{n}); err != nil {
			b.Fatal(err)
		}
	}
	const d = 3 * time.Second
	ctx := context.Background()
	var over, under float64
	for b.Loop() {
		if over, err = nshost.Throughput(ctx, sbs[0], sbs[1], "10.70.0.3:5201", d); err != nil {
			b.Fatal(err)
		}
		if under, err = nshost.Throughput(ctx, hosts[0].NS, hosts[1].NS, "192.0.2.2:5201", d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(over*8/1e9, "overlay-Gbit/s")
	b.ReportMetric(under*8/1e9, "underlay-Gbit/s")
	b.ReportMetric(over/under, "overlay/underlay")
}
