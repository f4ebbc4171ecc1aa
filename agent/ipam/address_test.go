package ipam_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/meshnet/meshnet/testenv/check"

	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/testenv"
)

func subnet24() []ipam.SubnetConfig {
	return []ipam.SubnetConfig{{Subnet: pfx("10.0.0.0/24")}}
}

func testLeaseAddress(t *testing.T, srv testenv.StoreServer) {
	a, s := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	p1 := check.Must(a.LeaseAddress(ctx, "net", subnet24(), ipam.AddressRequest{Owner: owner("e1", "h1")}))(t)
	p2 := check.Must(a.LeaseAddress(ctx, "net", subnet24(), ipam.AddressRequest{Owner: owner("e2", "h2")}))(t)
	if p1 != pfx("10.0.0.2/24") || p2 != pfx("10.0.0.3/24") {
		t.Fatalf("leased %s and %s, want 10.0.0.2/24 and 10.0.0.3/24 (gateway 10.0.0.1)", p1, p2)
	}
	v := keys(t, s, "ips/net/")["ips/net/10.0.0.2"]
	if v != `{"endpoint_id":"e1","node":"h1"}` {
		t.Fatalf("lease value = %s", v)
	}
	// Leasing again for the same endpoint returns its address.
	if p := check.Must(a.LeaseAddress(ctx, "net", subnet24(), ipam.AddressRequest{Owner: owner("e1", "h1")}))(t); p != p1 {
		t.Fatalf("repeated lease = %s, want %s", p, p1)
	}
	leases := check.Must(a.Addresses(ctx, "net"))(t)
	if len(leases) != 2 || leases[0].Addr != addr("10.0.0.2") || leases[0].Owner != owner("e1", "h1") {
		t.Fatalf("Addresses = %+v", leases)
	}
	// Validation.
	_, err := a.LeaseAddress(ctx, "net", subnet24(), ipam.AddressRequest{Owner: owner("", "h1")})
	wantErr(t, err, ipam.ErrInvalid)
	_, err = a.LeaseAddress(ctx, "net", subnet24(), ipam.AddressRequest{IPv6: true, Owner: owner("e3", "h1")})
	wantErr(t, err, ipam.ErrInvalid)
	_, err = a.LeaseAddress(ctx, "net", []ipam.SubnetConfig{{Subnet: pfx("10.0.0.0/24"), Gateway: addr("10.0.1.1")}},
		ipam.AddressRequest{Owner: owner("e3", "h1")})
	wantErr(t, err, ipam.ErrInvalid)
}

func testRequestedAddress(t *testing.T, srv testenv.StoreServer) {
	a, _ := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	subnets := []ipam.SubnetConfig{{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.0.128/25"),
		AuxAddresses: map[string]netip.Addr{"router": addr("10.0.0.10")}}}
	req := func(ip, ep string) ipam.AddressRequest {
		return ipam.AddressRequest{Addr: addr(ip), Owner: owner(ep, "h1")}
	}
	// Outside the IP range but inside the subnet is fine.
	if p := check.Must(a.LeaseAddress(ctx, "net", subnets, req("10.0.0.50", "e1")))(t); p != pfx("10.0.0.50/24") {
		t.Fatalf("leased %s, want 10.0.0.50/24", p)
	}
	check.Must(a.LeaseAddress(ctx, "net", subnets, req("10.0.0.50", "e1")))(t) // idempotent
	for _, c := range []struct {
		ip   string
		want error
	}{
		{"10.0.0.50", ipam.ErrAddressInUse}, // taken by e1
		{"10.0.0.1", ipam.ErrAddressInUse},  // gateway
		{"10.0.0.10", ipam.ErrAddressInUse}, // aux
		{"10.0.0.0", ipam.ErrInvalid},       // network address
		{"10.0.0.255", ipam.ErrInvalid},     // broadcast
		{"10.0.1.7", ipam.ErrInvalid},       // outside the subnet
		{"fd00::7", ipam.ErrInvalid},        // no such family
	} {
		_, err := a.LeaseAddress(ctx, "net", subnets, req(c.ip, "e2"))
		if err == nil {
			t.Fatalf("leasing %s: no error, want %v", c.ip, c.want)
		}
		wantErr(t, err, c.want)
		t.Logf("%s: %v", c.ip, err)
	}
}

func testAddressIPRangeAndAux(t *testing.T, srv testenv.StoreServer) {
	a, _ := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	subnets := []ipam.SubnetConfig{{Subnet: pfx("10.0.0.0/24"), Gateway: addr("10.0.0.130"), IPRange: pfx("10.0.0.128/29"),
		AuxAddresses: map[string]netip.Addr{"a": addr("10.0.0.129"), "b": addr("10.0.0.132")}}}
	var got []string
	for i := range 4 {
		p := check.Must(a.LeaseAddress(ctx, "net", subnets, ipam.AddressRequest{Owner: owner(fmt.Sprint("e", i), "h1")}))(t)
		got = append(got, p.Addr().String())
	}
	// .128-.135: .129 aux, .130 gateway, .132 aux.
	if want := "[10.0.0.128 10.0.0.131 10.0.0.133 10.0.0.134]"; fmt.Sprint(got) != want {
		t.Fatalf("leased %v, want %s", got, want)
	}
}

func testAddressIPv6(t *testing.T, srv testenv.StoreServer) {
	a, s := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	subnets := []ipam.SubnetConfig{{Subnet: pfx("10.0.0.0/24")}, {Subnet: pfx("fd00:1::/64")}}
	p4 := check.Must(a.LeaseAddress(ctx, "net", subnets, ipam.AddressRequest{Owner: owner("e1", "h1")}))(t)
	p6 := check.Must(a.LeaseAddress(ctx, "net", subnets, ipam.AddressRequest{IPv6: true, Owner: owner("e1", "h1")}))(t)
	if p4 != pfx("10.0.0.2/24") || p6 != pfx("fd00:1::2/64") {
		t.Fatalf("leased %s and %s, want 10.0.0.2/24 and fd00:1::2/64", p4, p6)
	}
	p := check.Must(a.LeaseAddress(ctx, "net", subnets, ipam.AddressRequest{Addr: addr("fd00:1::abcd"), Owner: owner("e2", "h1")}))(t)
	if p != pfx("fd00:1::abcd/64") {
		t.Fatalf("leased %s", p)
	}
	_, err := a.LeaseAddress(ctx, "net", subnets, ipam.AddressRequest{Addr: addr("fd00:1::abcd"), Owner: owner("e3", "h1")})
	wantErr(t, err, ipam.ErrAddressInUse)
	_, err = a.LeaseAddress(ctx, "net", subnets, ipam.AddressRequest{Addr: addr("fd00:1::1"), Owner: owner("e3", "h1")})
	wantErr(t, err, ipam.ErrAddressInUse) // gateway
	if _, ok := keys(t, s, "ips/net/")["ips/net/fd00:1::2"]; !ok {
		t.Fatalf("no lease key for fd00:1::2 in %v", keys(t, s, "ips/net/"))
	}
	check.OK(t, a.ReleaseEndpoint(ctx, "net", "e1"))
	if n := len(keys(t, s, "ips/net/")); n != 1 {
		t.Fatalf("%d leases after releasing e1's two, want 1", n)
	}
}

func testReleaseAddress(t *testing.T, srv testenv.StoreServer) {
	a, s := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	p := check.Must(a.LeaseAddress(ctx, "net", subnet24(), ipam.AddressRequest{Owner: owner("e1", "h1")}))(t)
	check.OK(t, a.ReleaseAddress(ctx, "net", p.Addr(), "e2")) // not e2's: kept
	if n := len(keys(t, s, "ips/net/")); n != 1 {
		t.Fatal("another endpoint's release deleted the lease")
	}
	check.OK(t, a.ReleaseAddress(ctx, "net", p.Addr(), "e1"))
	check.OK(t, a.ReleaseAddress(ctx, "net", p.Addr(), "e1")) // idempotent
	if n := len(keys(t, s, "ips/net/")); n != 0 {
		t.Fatal("release left the lease")
	}
	// Freed addresses are handed out again.
	if q := check.Must(a.LeaseAddress(ctx, "net", subnet24(), ipam.AddressRequest{Owner: owner("e2", "h1")}))(t); q != p {
		t.Fatalf("leased %s after release, want %s", q, p)
	}
	// Network-wide release; other networks keep theirs.
	check.Must(a.LeaseAddress(ctx, "net2", subnet24(), ipam.AddressRequest{Owner: owner("e9", "h1")}))(t)
	check.OK(t, a.ReleaseNetworkAddresses(ctx, "net"))
	check.OK(t, a.ReleaseNetworkAddresses(ctx, "net"))
	if n, m := len(keys(t, s, "ips/net/")), len(keys(t, s, "ips/net2/")); n != 0 || m != 1 {
		t.Fatalf("%d leases of net and %d of net2 left, want 0 and 1", n, m)
	}
}

func testAddressPoolExhausted(t *testing.T, srv testenv.StoreServer) {
	a, _ := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	subnets := []ipam.SubnetConfig{{Subnet: pfx("10.0.0.0/29")}} // .1 gateway, .2-.6 for endpoints
	var last netip.Prefix
	for i := range 5 {
		last = check.Must(a.LeaseAddress(ctx, "net", subnets, ipam.AddressRequest{Owner: owner(fmt.Sprint("e", i), "h1")}))(t)
	}
	if last != pfx("10.0.0.6/29") {
		t.Fatalf("last lease %s, want 10.0.0.6/29", last)
	}
	_, err := a.LeaseAddress(ctx, "net", subnets, ipam.AddressRequest{Owner: owner("e5", "h1")})
	wantErr(t, err, ipam.ErrPoolExhausted)
	check.OK(t, a.ReleaseAddress(ctx, "net", addr("10.0.0.4"), "e2"))
	if p := check.Must(a.LeaseAddress(ctx, "net", subnets, ipam.AddressRequest{Owner: owner("e5", "h1")}))(t); p != pfx("10.0.0.4/29") {
		t.Fatalf("leased %s, want the released 10.0.0.4/29", p)
	}
}

func testReclaim(t *testing.T, srv testenv.StoreServer) {
	a, s := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	for i, node := range []string{"alive", "dead", "alive", "dead", "other"} {
		network := fmt.Sprint("net", i%2)
		check.Must(a.LeaseAddress(ctx, network, subnet24(), ipam.AddressRequest{Owner: owner(fmt.Sprint("e", i), node)}))(t)
	}
	_, err := a.NewReclaimer(0).Reclaim(ctx, nil, 0)
	wantErr(t, err, ipam.ErrInvalid)

	// Read the live set; a node that is not in it leases afterwards, as if
	// it had registered just after the listing: its lease survives.
	_, asOf, err := s.List(ctx, "ips/")
	check.OK(t, err)
	check.Must(a.LeaseAddress(ctx, "net0", subnet24(), ipam.AddressRequest{Owner: owner("late", "newcomer")}))(t)

	gone := check.Must(a.NewReclaimer(0).Reclaim(ctx, []string{"alive", "other"}, asOf))(t)
	if len(gone) != 2 || gone[0].Owner.Node != "dead" || gone[1].Owner.Node != "dead" {
		t.Fatalf("reclaimed %+v, want the two leases of node dead", gone)
	}
	left := map[string]bool{}
	for _, network := range []string{"net0", "net1"} {
		for _, l := range check.Must(a.Addresses(ctx, network))(t) {
			left[l.Owner.EndpointID+"@"+l.Owner.Node] = true
		}
	}
	want := map[string]bool{"e0@alive": true, "e2@alive": true, "e4@other": true, "late@newcomer": true}
	if fmt.Sprint(left) != fmt.Sprint(want) {
		t.Fatalf("leases left %v, want %v", left, want)
	}
	// Without a version bound the newcomer's lease goes too.
	gone = check.Must(a.NewReclaimer(0).Reclaim(ctx, []string{"alive", "other"}, 0))(t)
	if len(gone) != 1 || gone[0].Owner.Node != "newcomer" {
		t.Fatalf("reclaimed %+v, want the newcomer's lease", gone)
	}
}
