package kvstore_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/testenv"
)

// BenchmarkStore measures create-if-absent and compare-and-swap on every
// backend with 1 and 16 concurrent clients (each its own connection),
// reporting throughput and per-call latency percentiles.
//
//	go test -run XXX -bench Store ./kvstore/
func BenchmarkStore(b *testing.B) {
	for _, srv := range startServers(b) {
		for _, clients := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/Create/clients=%d", srv.Name(), clients), func(b *testing.B) {
				var seq atomic.Int64
				runClients(b, srv, clients, func(ctx context.Context, s kvstore.Store, _ int) func() error {
					return func() error {
						_, err := s.Create(ctx, fmt.Sprintf("create/%d", seq.Add(1)), []byte("v"))
						return err
					}
				})
			})
			b.Run(fmt.Sprintf("%s/CAS/clients=%d", srv.Name(), clients), func(b *testing.B) {
				runClients(b, srv, clients, func(ctx context.Context, s kvstore.Store, id int) func() error {
					key := fmt.Sprintf("cas/%d", id)
					version, err := s.Put(ctx, key, []byte("0"))
					n := 0
					return func() error {
						if err != nil {
							return err
						}
						n++
						version, err = s.CompareAndSwap(ctx, key, fmt.Appendf(nil, "%d", n), version)
						return err
					}
				})
			})
		}
	}
}

// runClients spreads b.N calls over the given number of clients. setup
// returns each client's call.
func runClients(b *testing.B, srv testenv.StoreServer, clients int,
	setup func(context.Context, kvstore.Store, int) func() error) {
	ctx := context.Background()
	calls := make([]func() error, clients)
	for i := range calls {
		calls[i] = setup(ctx, open(b, srv, fmt.Sprintf("bench/%s/%d", b.Name(), time.Now().UnixNano())), i)
	}
	lat := make([][]time.Duration, clients)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, call := range calls {
		n := b.N / clients
		if i < b.N%clients {
			n++
		}
		wg.Go(func() {
			for range n {
				t0 := time.Now()
				if err := call(); err != nil {
					b.Error(err)
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}
