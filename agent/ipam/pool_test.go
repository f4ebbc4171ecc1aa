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

func testRequestPool(t *testing.T, srv testenv.StoreServer) {
	a, s := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	p1 := check.Must(a.Pools().RequestPool(ctx, ipam.PoolRequest{ID: "p1"}))(t)
	p2 := check.Must(a.Pools().RequestPool(ctx, ipam.PoolRequest{ID: "p2"}))(t)
	if p1.Subnet != pfx("10.0.0.0/24") || p1.Gateway != addr("10.0.0.1") || p2.Subnet != pfx("10.0.1.0/24") {
		t.Fatalf("pools %+v and %+v, want 10.0.0.0/24 gateway 10.0.0.1 and 10.0.1.0/24", p1, p2)
	}
	// Networks and pools share the leases: neither overlaps the other.
	n := check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n1"}, nil))(t)
	if n.Subnets[0].Subnet != pfx("10.0.2.0/24") {
		t.Fatalf("network subnet %s, want 10.0.2.0/24 after the pools", n.Subnets[0].Subnet)
	}
	_, err := a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n2", Subnets: []ipam.SubnetConfig{{Subnet: pfx("10.0.1.128/25")}}}, nil)
	wantErr(t, err, ipam.ErrSubnetOverlap)
	for _, sub := range []string{"10.0.0.0/16", "10.0.2.64/26", "10.0.1.0/24"} {
		_, err := a.Pools().RequestPool(ctx, ipam.PoolRequest{ID: "x", Subnet: ipam.SubnetConfig{Subnet: pfx(sub)}})
		wantErr(t, err, ipam.ErrSubnetOverlap)
		t.Logf("%s: %v", sub, err)
	}
	// A requested pool is normalized; IPv6 does not change it.
	p3 := check.Must(a.Pools().RequestPool(ctx, ipam.PoolRequest{ID: "p3", IPv6: true,
		Subnet: ipam.SubnetConfig{Subnet: pfx("192.168.50.7/24"), IPRange: pfx("192.168.50.128/25")}}))(t)
	if p3.Subnet != pfx("192.168.50.0/24") || p3.Gateway != addr("192.168.50.1") || p3.IPRange != pfx("192.168.50.128/25") {
		t.Fatalf("requested pool = %+v", p3)
	}
	// Automatic IPv6 needs an IPv6 pool.
	_, err = a.Pools().RequestPool(ctx, ipam.PoolRequest{ID: "p4", IPv6: true})
	wantErr(t, err, ipam.ErrInvalid)
	b, _ := newAllocator(t, srv, ipam.Config{Pools: []ipam.AddressPool{
		{Base: pfx("10.0.0.0/8"), Size: 24}, {Base: pfx("fd00:aa::/48"), Size: 64}}})
	p4 := check.Must(b.Pools().RequestPool(ctx, ipam.PoolRequest{ID: "p4", IPv6: true}))(t)
	if p4.Subnet != pfx("fd00:aa::/64") || p4.Gateway != addr("fd00:aa::1") {
		t.Fatalf("IPv6 pool = %+v, want fd00:aa::/64", p4)
	}
	// Bad requests write nothing.
	before := len(keys(t, s, ""))
	for _, req := range []ipam.PoolRequest{
		{ID: ""},
		{ID: "a/b"},
		{ID: "p5", Subnet: ipam.SubnetConfig{Gateway: addr("10.9.0.1")}},
		{ID: "p5", Subnet: ipam.SubnetConfig{Subnet: pfx("10.9.0.0/24"), Gateway: addr("10.8.0.1")}},
	} {
		_, err := a.Pools().RequestPool(ctx, req)
		wantErr(t, err, ipam.ErrInvalid)
	}
	if after := len(keys(t, s, "")); after != before {
		t.Fatalf("invalid pool requests wrote %d keys", after-before)
	}
	want := map[string]string{"subnets/10.0.0.0/24": "p1", "subnets/10.0.1.0/24": "p2", "subnets/10.0.2.0/24": "n1",
		"subnets/192.168.50.0/24": "p3", "subnets/fd00:aa::/64": "p4"}
	if got := keys(t, s, "subnets/"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("subnets/ = %v, want %v", got, want)
	}
}

func testPoolAddresses(t *testing.T, srv testenv.StoreServer) {
	a, s := newAllocator(t, srv, ipam.Config{Pools: []ipam.AddressPool{
		{Base: pfx("10.0.0.0/8"), Size: 24}, {Base: pfx("fd00:bb::/48"), Size: 64}}})
	ctx := testCtx(t)
	p := check.Must(a.Pools().RequestPool(ctx, ipam.PoolRequest{ID: "pool"}))(t)
	p6 := check.Must(a.Pools().RequestPool(ctx, ipam.PoolRequest{ID: "pool6", IPv6: true}))(t)
	other := check.Must(a.Pools().RequestPool(ctx, ipam.PoolRequest{ID: "other"}))(t)

	got := check.Must(a.Pools().RequestAddress(ctx, "pool", p, ipam.AddressRequest{Owner: owner("e1", "h1")}))(t)
	if got != pfx("10.0.0.2/24") {
		t.Fatalf("first address %s, want 10.0.0.2/24", got)
	}
	if got := check.Must(a.Pools().RequestAddress(ctx, "pool", p, ipam.AddressRequest{Addr: addr("10.0.0.9"), Owner: owner("e2", "h1")}))(t); got != pfx("10.0.0.9/24") {
		t.Fatalf("requested address %s, want 10.0.0.9/24", got)
	}
	_, err := a.Pools().RequestAddress(ctx, "pool", p, ipam.AddressRequest{Addr: addr("10.0.0.9"), Owner: owner("e3", "h1")})
	wantErr(t, err, ipam.ErrAddressInUse)
	// The family follows the pool.
	if got := check.Must(a.Pools().RequestAddress(ctx, "pool6", p6, ipam.AddressRequest{Owner: owner("e1", "h1")}))(t); got != pfx("fd00:bb::2/64") {
		t.Fatalf("IPv6 address %s, want fd00:bb::2/64", got)
	}
	check.Must(a.Pools().RequestAddress(ctx, "other", other, ipam.AddressRequest{Owner: owner("e9", "h1")}))(t)
	want := map[string]string{
		"ips/pool/10.0.0.2": `{"endpoint_id":"e1","node":"h1"}`,
		"ips/pool/10.0.0.9": `{"endpoint_id":"e2","node":"h1"}`,
	}
	if got := keys(t, s, "ips/pool/"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ips/pool/ = %v, want %v", got, want)
	}

	check.OK(t, a.ReleaseAddress(ctx, "pool", addr("10.0.0.2"), "e1"))
	if got := check.Must(a.Pools().RequestAddress(ctx, "pool", p, ipam.AddressRequest{Owner: owner("e4", "h1")}))(t); got != pfx("10.0.0.2/24") {
		t.Fatalf("address after release %s, want 10.0.0.2/24 again", got)
	}

	// ReleasePool drops the subnet and every address, and only its own.
	check.OK(t, a.Pools().ReleasePool(ctx, "stranger", p.Subnet)) // not the stranger's: kept
	if n, m := len(keys(t, s, "ips/pool/")), len(keys(t, s, "subnets/")); n != 2 || m != 3 {
		t.Fatalf("%d address and %d subnet leases after a stranger's release, want 2 and 3", n, m)
	}
	check.OK(t, a.Pools().ReleasePool(ctx, "pool", p.Subnet))
	check.OK(t, a.Pools().ReleasePool(ctx, "pool", p.Subnet)) // idempotent
	if n := len(keys(t, s, "ips/pool/")); n != 0 {
		t.Fatalf("%d address leases left in the released pool", n)
	}
	want = map[string]string{"subnets/10.0.1.0/24": "other", "subnets/fd00:bb::/64": "pool6"}
	if got := keys(t, s, "subnets/"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("subnets/ = %v, want %v", got, want)
	}
	if n, m := len(keys(t, s, "ips/other/")), len(keys(t, s, "ips/pool6/")); n != 1 || m != 1 {
		t.Fatalf("%d and %d address leases of the other pools, want 1 and 1", n, m)
	}
	// The released subnet is handed out again.
	if again := check.Must(a.Pools().RequestPool(ctx, ipam.PoolRequest{ID: "again"}))(t); again.Subnet != p.Subnet {
		t.Fatalf("pool after release %s, want %s", again.Subnet, p.Subnet)
	}
	wantErr(t, a.Pools().ReleasePool(ctx, "a/b", p.Subnet), ipam.ErrInvalid)
}

// testConcurrentPoolsAndNetworks races automatic and requested pools
// against networks on three hosts: no two leased subnets overlap.
func testConcurrentPoolsAndNetworks(t *testing.T, srv testenv.StoreServer) {
	as := clients(t, srv, 3, ipam.Config{Pools: []ipam.AddressPool{{Base: pfx("10.6.0.0/16"), Size: 24}}})
	ctx := testCtx(t)
	requested := []string{"10.6.0.0/22", "10.6.1.0/24", "10.6.4.0/23", "10.6.5.0/24", "10.6.8.0/21"}
	const n = 30
	subnets := make([]netip.Prefix, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		a := as[i%len(as)]
		id := fmt.Sprint("id", i)
		var sub ipam.SubnetConfig
		if i < 2*len(requested) {
			sub.Subnet = pfx(requested[i/2])
		}
		wg.Go(func() {
			if i%2 == 0 {
				var c ipam.SubnetConfig
				c, errs[i] = a.Pools().RequestPool(ctx, ipam.PoolRequest{ID: id, Subnet: sub})
				subnets[i] = c.Subnet
				return
			}
			req := ipam.NetworkRequest{ID: id}
			if sub.Subnet.IsValid() {
				req.Subnets = []ipam.SubnetConfig{sub}
			}
			l, err := a.LeaseNetwork(ctx, req, nil)
			if errs[i] = err; err == nil {
				subnets[i] = l.Subnets[0].Subnet
			}
		})
	}
	wg.Wait()
	leased := map[netip.Prefix]string{}
	for i, err := range errs {
		switch {
		case err == nil:
			leased[subnets[i]] = fmt.Sprint("id", i)
		case !errors.Is(err, ipam.ErrSubnetOverlap):
			t.Fatalf("id%d: %v", i, err)
		}
	}
	checkDisjoint(t, leased)
	if stored := keys(t, open(t, srv), "subnets/"); len(stored) != len(leased) {
		t.Fatalf("%d subnet keys for %d leases", len(stored), len(leased))
	}
	t.Logf("%d of %d pools and networks got a subnet", len(leased), n)
}
