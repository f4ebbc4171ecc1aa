package ipam_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/meshnet/meshnet/agent/ipam"
)

// BenchmarkLease measures one network lease (VNI + subnet, one
// transaction) and one address lease on an embedded etcd, reporting
// latency percentiles. Other backends: -args -bench-backend=consul.
//
//	go test -run XXX -bench Lease ./agent/ipam/
func BenchmarkLease(b *testing.B) {
	srv := startServers(b, *benchBackend)[0]
	b.Run("Network", func(b *testing.B) {
		a, _ := newAllocator(b, srv, ipam.Config{})
		ctx := testCtx(b)
		seq := 0
		measure(b, func() error {
			seq++
			_, err := a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: fmt.Sprint("n", seq)}, nil)
			return err
		})
	})
	b.Run("Address", func(b *testing.B) {
		a, _ := newAllocator(b, srv, ipam.Config{})
		ctx := testCtx(b)
		subnets := []ipam.SubnetConfig{{Subnet: pfx("10.0.0.0/8")}}
		seq := 0
		measure(b, func() error {
			seq++
			_, err := a.LeaseAddress(ctx, "net", subnets, ipam.AddressRequest{Owner: owner(fmt.Sprint("e", seq), "h")})
			return err
		})
	})
}

// measure runs call b.N times and reports p50 and p99 latency.
func measure(b *testing.B, call func() error) {
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := call(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
