package ipam_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/check"

	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/testenv"
)

// fenced returns an address request of ep on host h1, fenced by key at
// version; ip "" means an automatic address.
func fenced(ep, ip, key string, version uint64) ipam.AddressRequest {
	req := ipam.AddressRequest{Owner: owner(ep, "h1"), Fence: &ipam.Fence{Key: key, Version: version}}
	if ip != "" {
		req.Addr = addr(ip)
	}
	return req
}

// leaseKeys maps the endpoints holding leases of network to their keys.
func leaseKeys(t testing.TB, a *ipam.Allocator, network string) map[string]ipam.AddressLease {
	t.Helper()
	m := map[string]ipam.AddressLease{}
	for _, l := range check.Must(a.Addresses(testCtx(t), network))(t) {
		m[l.Owner.EndpointID] = l
	}
	return m
}

func testFencedAddress(t *testing.T, srv testenv.StoreServer) {
	for _, c := range []struct {
		name string
		ip   func(i int) string // the address asked for by the i-th lease
	}{
		{"Automatic", func(int) string { return "" }},
		{"Requested", func(i int) string { return fmt.Sprint("10.0.0.", 10+i) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, s := newAllocator(t, srv, ipam.Config{})
			ctx := testCtx(t)
			const rec = "networks/fnet"
			v1 := check.Must(s.Put(ctx, rec, []byte(`{"state":"ready"}`)))(t)

			p := check.Must(a.LeaseAddress(ctx, "fnet", subnet24(), fenced("e0", c.ip(0), rec, v1)))(t)
			if again := check.Must(a.LeaseAddress(ctx, "fnet", subnet24(), fenced("e0", c.ip(0), rec, v1)))(t); again != p {
				t.Fatalf("repeated fenced lease = %s, want %s", again, p)
			}

			// network rm moves the record first: leases fenced by the old
			// version fail, and so does returning one already held.
			v2 := check.Must(s.CompareAndSwap(ctx, rec, []byte(`{"state":"removing"}`), v1))(t)
			_, err := a.LeaseAddress(ctx, "fnet", subnet24(), fenced("e1", c.ip(1), rec, v1))
			wantErr(t, err, ipam.ErrFenceMoved)
			t.Logf("moved: %v", err)
			_, err = a.LeaseAddress(ctx, "fnet", subnet24(), fenced("e0", c.ip(0), rec, v1))
			wantErr(t, err, ipam.ErrFenceMoved)
			check.Must(a.LeaseAddress(ctx, "fnet", subnet24(), fenced("e2", c.ip(2), rec, v2)))(t)

			check.OK(t, s.Delete(ctx, rec))
			_, err = a.LeaseAddress(ctx, "fnet", subnet24(), fenced("e3", c.ip(3), rec, v2))
			wantErr(t, err, ipam.ErrFenceMoved)
			t.Logf("deleted: %v", err)

			got := leaseKeys(t, a, "fnet")
			_, has0 := got["e0"]
			_, has2 := got["e2"]
			if !has0 || !has2 || len(got) != 2 {
				t.Fatalf("leases %v, want those of e0 and e2 only", got)
			}
			if n := len(keys(t, s, "ips/")); n != 2 {
				t.Fatalf("%d keys under ips/, want 2", n)
			}

			// A fence needs a key and a version.
			_, err = a.LeaseAddress(ctx, "fnet", subnet24(), fenced("e4", c.ip(4), "", v2))
			wantErr(t, err, ipam.ErrInvalid)
			_, err = a.LeaseAddress(ctx, "fnet", subnet24(), fenced("e4", c.ip(4), rec, 0))
			wantErr(t, err, ipam.ErrInvalid)
		})
	}
}

// testConcurrentFencedAddresses races fenced leases from two hosts with
// one move of the fence: every lease that succeeded committed before the
// move and has its key; every one that failed left none.
func testConcurrentFencedAddresses(t *testing.T, srv testenv.StoreServer) {
	const (
		workers   = 8  // per host
		moveAfter = 40 // successful leases before the fence moves
		maxLeases = 60 // per worker, in case the move never comes
	)
	as := clients(t, srv, 2, ipam.Config{})
	s := open(t, srv)
	ctx := testCtx(t)
	const rec = "networks/race"
	v1 := check.Must(s.Put(ctx, rec, []byte(`{"state":"ready"}`)))(t)
	subnets := []ipam.SubnetConfig{{Subnet: pfx("10.0.0.0/16")}}

	type result struct {
		ep  string
		err error
	}
	var (
		mu      sync.Mutex
		results []result
		won     atomic.Int32
		moveVer uint64
		wg      sync.WaitGroup
	)
	wg.Go(func() {
		for won.Load() < moveAfter {
			if err := sleepCtx(ctx); err != nil {
				t.Errorf("waiting for %d leases: %v", moveAfter, err)
				return
			}
		}
		var err error
		moveVer, err = s.CompareAndSwap(ctx, rec, []byte(`{"state":"removing"}`), v1)
		if err != nil {
			t.Errorf("moving the fence: %v", err)
		}
	})
	for w := range 2 * workers {
		a := as[w%2]
		wg.Go(func() {
			for i := range maxLeases {
				ep := fmt.Sprintf("w%d-%d", w, i)
				req := ipam.AddressRequest{Owner: owner(ep, fmt.Sprint("host", w%2)),
					Fence: &ipam.Fence{Key: rec, Version: v1}}
				if w%4 == 3 { // some ask for their own address
					req.Addr = netip.AddrFrom4([4]byte{10, 0, byte(1 + w), byte(1 + i)})
				}
				_, err := a.LeaseAddress(ctx, "race", subnets, req)
				mu.Lock()
				results = append(results, result{ep, err})
				mu.Unlock()
				if err != nil {
					return
				}
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	leases := leaseKeys(t, as[0], "race")
	succeeded, failed := 0, 0
	for _, r := range results {
		l, held := leases[r.ep]
		switch {
		case r.err == nil && !held:
			t.Fatalf("lease of %s succeeded but has no key", r.ep)
		case r.err == nil && l.Version >= moveVer:
			t.Fatalf("lease of %s committed at version %d, after the fence moved at %d", r.ep, l.Version, moveVer)
		case r.err == nil:
			succeeded++
		case !errors.Is(r.err, ipam.ErrFenceMoved):
			t.Fatalf("lease of %s: %v, want %v", r.ep, r.err, ipam.ErrFenceMoved)
		case held:
			t.Fatalf("lease of %s failed (%v) but left its key", r.ep, r.err)
		default:
			failed++
		}
	}
	if succeeded != len(leases) || failed != 2*workers {
		t.Fatalf("%d leases succeeded, %d failed, %d keys; want a key per success and every worker stopped by the move",
			succeeded, failed, len(leases))
	}
	t.Logf("%d leases before the move, %d stopped by it", succeeded, failed)
}

// sleepCtx waits a millisecond or until ctx is done.
func sleepCtx(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Millisecond):
		return nil
	}
}
