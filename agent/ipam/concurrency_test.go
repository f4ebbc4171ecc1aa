package ipam_test

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/meshnet/meshnet/testenv/check"

	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/testenv"
)

// clients returns n Allocators, each over its own store connection, like
// the agents of n hosts.
func clients(t *testing.T, srv testenv.StoreServer, n int, cfg ipam.Config) []*ipam.Allocator {
	as := make([]*ipam.Allocator, n)
	for i := range as {
		as[i], _ = newAllocator(t, srv, cfg)
	}
	return as
}

// checkDisjoint fails if any two subnets overlap.
func checkDisjoint(t *testing.T, subnets map[netip.Prefix]string) {
	t.Helper()
	for p, a := range subnets {
		for q, b := range subnets {
			if p != q && p.Overlaps(q) {
				t.Fatalf("subnet %s of %s overlaps %s of %s", p, a, q, b)
			}
		}
	}
}

func testConcurrentNetworks(t *testing.T, srv testenv.StoreServer) {
	const networks = 50
	as := clients(t, srv, 3, ipam.Config{})
	ctx := testCtx(t)
	leases := make([]ipam.NetworkLease, networks)
	errs := make([]error, networks)
	var wg sync.WaitGroup
	for i := range networks {
		id := fmt.Sprintf("net%02d", i)
		wg.Go(func() {
			leases[i], errs[i] = as[i%len(as)].LeaseNetwork(ctx, ipam.NetworkRequest{ID: id}, networkOps(id, "name-"+id))
		})
	}
	wg.Wait()
	vnis := map[uint32]string{}
	subnets := map[netip.Prefix]string{}
	for i, l := range leases {
		check.OK(t, errs[i])
		if other, dup := vnis[l.VNI]; dup {
			t.Fatalf("VNI %d leased to %s and %s", l.VNI, other, l.NetworkID)
		}
		vnis[l.VNI] = l.NetworkID
		subnets[l.Subnets[0].Subnet] = l.NetworkID
	}
	if len(subnets) != networks {
		t.Fatalf("%d distinct subnets for %d networks", len(subnets), networks)
	}
	checkDisjoint(t, subnets)
	s := open(t, srv)
	for _, prefix := range []string{"vni/", "subnets/", "networks/", "names/"} {
		if n := len(keys(t, s, prefix)); n != networks {
			t.Fatalf("%d keys under %s, want %d", n, prefix, networks)
		}
	}
	// Lowest first: together they fill VNIs 4096… and the first /24s.
	for v := range uint32(networks) {
		if _, ok := vnis[ipam.DefaultVNIMin+v]; !ok {
			t.Fatalf("VNI %d skipped", ipam.DefaultVNIMin+v)
		}
	}
}

// testConcurrentOverlappingRequests races requested subnets of different
// sizes that overlap each other, and automatic leases from a pool around
// them: whatever wins, no two leased subnets overlap.
func testConcurrentOverlappingRequests(t *testing.T, srv testenv.StoreServer) {
	// A lost guard does not show in every race; run a few.
	for round := range 3 {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) { raceOverlappingRequests(t, srv) })
	}
}

func raceOverlappingRequests(t *testing.T, srv testenv.StoreServer) {
	requests := []string{"10.7.0.0/16", "10.7.0.0/24", "10.7.1.0/24", "10.7.0.0/23", "10.7.2.0/23",
		"10.7.3.0/24", "10.7.0.128/25", "10.7.4.0/22", "10.7.5.0/24", "10.7.0.0/20", "10.7.8.0/21", "10.7.9.0/24"}
	as := clients(t, srv, 3, ipam.Config{Pools: []ipam.AddressPool{{Base: pfx("10.7.0.0/16"), Size: 24}}})
	ctx := testCtx(t)
	const autos = 12
	n := len(requests) + autos
	leases := make([]ipam.NetworkLease, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		req := ipam.NetworkRequest{ID: fmt.Sprint("n", i)}
		if i < len(requests) {
			req.Subnets = []ipam.SubnetConfig{{Subnet: pfx(requests[i])}}
		}
		wg.Go(func() { leases[i], errs[i] = as[i%len(as)].LeaseNetwork(ctx, req, nil) })
	}
	wg.Wait()
	subnets := map[netip.Prefix]string{}
	for i, l := range leases {
		switch {
		case errs[i] == nil:
			subnets[l.Subnets[0].Subnet] = l.NetworkID
		case errors.Is(errs[i], ipam.ErrSubnetOverlap), errors.Is(errs[i], ipam.ErrPoolExhausted):
		default:
			t.Fatalf("network n%d: %v", i, errs[i])
		}
	}
	checkDisjoint(t, subnets)
	stored := keys(t, open(t, srv), "subnets/")
	if len(stored) != len(subnets) {
		t.Fatalf("%d subnet keys for %d leases", len(stored), len(subnets))
	}
	t.Logf("%d of %d networks got a subnet", len(subnets), n)
}

func testConcurrentAddresses(t *testing.T, srv testenv.StoreServer) {
	const leases = 200
	as := clients(t, srv, 3, ipam.Config{})
	ctx := testCtx(t)
	subnets := []ipam.SubnetConfig{{Subnet: pfx("10.0.0.0/24"),
		AuxAddresses: map[string]netip.Addr{"a": addr("10.0.0.2"), "b": addr("10.0.0.100")}}}
	got := make([]netip.Prefix, leases)
	errs := make([]error, leases)
	var wg sync.WaitGroup
	for i := range leases {
		wg.Go(func() {
			got[i], errs[i] = as[i%len(as)].LeaseAddress(ctx, "net", subnets,
				ipam.AddressRequest{Owner: owner(fmt.Sprint("ep", i), fmt.Sprint("host", i%3))})
		})
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i, p := range got {
		check.OK(t, errs[i])
		a := p.Addr()
		if j, dup := seen[a]; dup {
			t.Fatalf("%s leased to ep%d and ep%d", a, j, i)
		}
		seen[a] = i
		switch a.String() {
		case "10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.100", "10.0.0.255":
			t.Fatalf("reserved address %s leased to ep%d", a, i)
		}
		if !subnets[0].Subnet.Contains(a) || p.Bits() != 24 {
			t.Fatalf("leased %s outside 10.0.0.0/24", p)
		}
	}
	if n := len(keys(t, open(t, srv), "ips/net/")); n != leases {
		t.Fatalf("%d lease keys, want %d", n, leases)
	}
}

func testConcurrentExhaustion(t *testing.T, srv testenv.StoreServer) {
	as := clients(t, srv, 3, ipam.Config{Pools: []ipam.AddressPool{{Base: pfx("10.98.0.0/22"), Size: 24}}})
	ctx := testCtx(t)
	count := func(n int, lease func(i int) error) (won, exhausted int) {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = lease(i) })
		}
		wg.Wait()
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, ipam.ErrPoolExhausted):
				exhausted++
			default:
				t.Fatalf("unexpected error: %v", err)
			}
		}
		return won, exhausted
	}
	won, exhausted := count(10, func(i int) error {
		_, err := as[i%3].LeaseNetwork(ctx, ipam.NetworkRequest{ID: fmt.Sprint("n", i)}, nil)
		return err
	})
	if won != 4 || exhausted != 6 {
		t.Fatalf("networks: %d leased, %d exhausted; want 4 and 6", won, exhausted)
	}
	subnets := []ipam.SubnetConfig{{Subnet: pfx("10.0.0.0/29")}}
	won, exhausted = count(12, func(i int) error {
		_, err := as[i%3].LeaseAddress(ctx, "net", subnets, ipam.AddressRequest{Owner: owner(fmt.Sprint("e", i), "h")})
		return err
	})
	if won != 5 || exhausted != 7 {
		t.Fatalf("addresses: %d leased, %d exhausted; want 5 and 7", won, exhausted)
	}
}
