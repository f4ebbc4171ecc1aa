package ipam_test

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"testing"

	"github.com/meshnet/meshnet/testenv/check"

	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/testenv"
)

// TestIPAM runs one suite against every backend, each on a real server:
// an embedded etcd, an etcd server process, and Consul.
func TestIPAM(t *testing.T) {
	for _, srv := range startServers(t, "") {
		t.Run(srv.Name(), func(t *testing.T) {
			t.Parallel()
			for _, c := range suite {
				t.Run(c.name, func(t *testing.T) { c.run(t, srv) })
			}
		})
	}
}

var suite = []struct {
	name string
	run  func(*testing.T, testenv.StoreServer)
}{
	{"LeaseNetwork", testLeaseNetwork},
	{"RequestedSubnets", testRequestedSubnets},
	{"RequestedVNI", testRequestedVNI},
	{"NetworkWithOps", testNetworkWithOps},
	{"InvalidNetworkWritesNothing", testInvalidNetworkWritesNothing},
	{"ReleaseNetwork", testReleaseNetwork},
	{"ReleaseOps", testReleaseOps},
	{"NetworkPoolExhausted", testNetworkPoolExhausted},
	{"LeaseAddress", testLeaseAddress},
	{"AddressView", testAddressView},
	{"RequestedAddress", testRequestedAddress},
	{"AddressIPRangeAndAux", testAddressIPRangeAndAux},
	{"AddressIPv6", testAddressIPv6},
	{"ReleaseAddress", testReleaseAddress},
	{"AddressPoolExhausted", testAddressPoolExhausted},
	{"Reclaim", testReclaim},
	{"ConcurrentNetworks", testConcurrentNetworks},
	{"ConcurrentOverlappingRequests", testConcurrentOverlappingRequests},
	{"ConcurrentAddresses", testConcurrentAddresses},
	{"ConcurrentExhaustion", testConcurrentExhaustion},
	{"FencedAddress", testFencedAddress},
	{"ConcurrentFencedAddresses", testConcurrentFencedAddresses},
	{"SweepOrphans", testSweepOrphans},
	{"Reclaimer", testReclaimer},
	{"RequestPool", testRequestPool},
	{"PoolAddresses", testPoolAddresses},
	{"ConcurrentPoolsAndNetworks", testConcurrentPoolsAndNetworks},
}

func testLeaseNetwork(t *testing.T, srv testenv.StoreServer) {
	a, s := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	l1 := check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n1"}, nil))(t)
	if l1.NetworkID != "n1" || l1.VNI != ipam.DefaultVNIMin || len(l1.Subnets) != 1 ||
		l1.Subnets[0].Subnet != pfx("10.0.0.0/24") || l1.Subnets[0].Gateway != addr("10.0.0.1") {
		t.Fatalf("first lease = %+v, want VNI 4096, 10.0.0.0/24 gateway 10.0.0.1", l1)
	}
	l2 := check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n2"}, nil))(t)
	if l2.VNI != ipam.DefaultVNIMin+1 || l2.Subnets[0].Subnet != pfx("10.0.1.0/24") {
		t.Fatalf("second lease = %+v, want VNI 4097, 10.0.1.0/24", l2)
	}
	want := map[string]string{"vni/4096": "n1", "vni/4097": "n2"}
	if got := keys(t, s, "vni/"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("vni/ = %v, want %v", got, want)
	}
	want = map[string]string{"subnets/10.0.0.0/24": "n1", "subnets/10.0.1.0/24": "n2", ipam.GuardKey: "2"}
	if got := keys(t, s, "subnets"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("subnets = %v, want %v", got, want)
	}
	// Another client (another host) sees the same leases and continues.
	b, _ := newAllocator(t, srv, ipam.Config{})
	l3 := check.Must(b.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n3"}, nil))(t)
	if l3.VNI != 4098 || l3.Subnets[0].Subnet != pfx("10.0.2.0/24") {
		t.Fatalf("third lease = %+v, want VNI 4098, 10.0.2.0/24", l3)
	}
	// The same id cannot lease twice through the same VNI/subnet keys,
	// but a network may ask for an IPv6 subnet from an IPv6 pool.
	c, _ := newAllocator(t, srv, ipam.Config{Pools: []ipam.AddressPool{
		{Base: pfx("10.0.0.0/8"), Size: 24}, {Base: pfx("fd00:aa::/48"), Size: 64}}})
	l4 := check.Must(c.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n4", IPv6: true}, nil))(t)
	if len(l4.Subnets) != 2 || l4.Subnets[0].Subnet != pfx("10.0.3.0/24") || l4.Subnets[1].Subnet != pfx("fd00:aa::/64") ||
		l4.Subnets[1].Gateway != addr("fd00:aa::1") {
		t.Fatalf("dual-stack lease = %+v, want 10.0.3.0/24 and fd00:aa::/64", l4)
	}
	// Without an IPv6 pool, --ipv6 needs an explicit subnet.
	_, err := a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n5", IPv6: true}, nil)
	wantErr(t, err, ipam.ErrInvalid)
}

func testRequestedSubnets(t *testing.T, srv testenv.StoreServer) {
	a, s := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "big", Subnets: []ipam.SubnetConfig{{Subnet: pfx("10.0.0.0/22")}}}, nil))(t)
	for _, sub := range []string{"10.0.0.0/24", "10.0.3.128/25", "10.0.0.0/16", "10.0.2.5/32"} {
		_, err := a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "x", Subnets: []ipam.SubnetConfig{{Subnet: pfx(sub)}}}, nil)
		if sub == "10.0.2.5/32" {
			wantErr(t, err, ipam.ErrInvalid) // too small, before any overlap check
			continue
		}
		wantErr(t, err, ipam.ErrSubnetOverlap)
	}
	// Host bits are masked off; the automatic subnet skips the /22.
	l := check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "hosty",
		Subnets: []ipam.SubnetConfig{{Subnet: pfx("10.0.5.7/24"), Gateway: addr("10.0.5.254")}}}, nil))(t)
	if l.Subnets[0].Subnet != pfx("10.0.5.0/24") || l.Subnets[0].Gateway != addr("10.0.5.254") {
		t.Fatalf("lease = %+v, want 10.0.5.0/24 gateway 10.0.5.254", l)
	}
	auto := check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "auto"}, nil))(t)
	if auto.Subnets[0].Subnet != pfx("10.0.4.0/24") {
		t.Fatalf("automatic subnet = %s, want 10.0.4.0/24 (first free after 10.0.0.0/22)", auto.Subnets[0].Subnet)
	}
	// An IPv6-only request still gets an automatic IPv4 subnet, IPv4 first.
	l = check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "v6",
		Subnets: []ipam.SubnetConfig{{Subnet: pfx("fd00:1::/64")}}}, nil))(t)
	if len(l.Subnets) != 2 || l.Subnets[0].Subnet != pfx("10.0.6.0/24") || l.Subnets[1].Subnet != pfx("fd00:1::/64") {
		t.Fatalf("lease = %+v, want 10.0.6.0/24 and fd00:1::/64", l)
	}
	_, err := a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "v6b", Subnets: []ipam.SubnetConfig{{Subnet: pfx("fd00::/16")}}}, nil)
	wantErr(t, err, ipam.ErrSubnetOverlap)
	if got := len(keys(t, s, "subnets/")); got != 5 {
		t.Fatalf("%d subnet leases, want 5", got)
	}
}

func testRequestedVNI(t *testing.T, srv testenv.StoreServer) {
	a, s := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	l := check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n1", VNI: 4096}, nil))(t)
	if l.VNI != 4096 {
		t.Fatalf("VNI = %d, want 4096", l.VNI)
	}
	_, err := a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n2", VNI: 4096}, nil)
	wantErr(t, err, ipam.ErrVNIInUse)
	// A requested VNI may lie below the automatic range.
	check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n3", VNI: 42}, nil))(t)
	_, err = a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n4", VNI: 1 << 24}, nil)
	wantErr(t, err, ipam.ErrInvalid)
	// The automatic one skips what was requested.
	if l := check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n5"}, nil))(t); l.VNI != 4097 {
		t.Fatalf("VNI = %d, want 4097", l.VNI)
	}
	// Failures leased nothing: three networks, three subnets.
	if n := len(keys(t, s, "subnets/")); n != 3 {
		t.Fatalf("%d subnet leases, want 3", n)
	}
}

// networkOps is what the agent writes with the leases.
func networkOps(id, name string) func(ipam.NetworkLease) ([]kvstore.Op, error) {
	return func(l ipam.NetworkLease) ([]kvstore.Op, error) {
		rec := fmt.Appendf(nil, `{"name":%q,"vni":%d,"subnet":%q}`, name, l.VNI, l.Subnets[0].Subnet)
		return []kvstore.Op{
			{Kind: kvstore.OpCreate, Key: "networks/" + id, Value: rec},
			{Kind: kvstore.OpCreate, Key: "names/" + name, Value: []byte(id)},
		}, nil
	}
}

func testNetworkWithOps(t *testing.T, srv testenv.StoreServer) {
	a, s := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	l := check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "id1"}, networkOps("id1", "multi")))(t)
	rec := check.Must(s.Get(ctx, "networks/id1"))(t)
	if want := fmt.Sprintf(`{"name":"multi","vni":%d,"subnet":"%s"}`, l.VNI, l.Subnets[0].Subnet); string(rec.Value) != want {
		t.Fatalf("network record = %s, want %s", rec.Value, want)
	}
	// A second network of the same name: the names/ op fails, and none of
	// its leases is left behind.
	_, err := a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "id2"}, networkOps("id2", "multi"))
	wantErr(t, err, kvstore.ErrKeyExists)
	var te *kvstore.TxnError
	if !errors.As(err, &te) || te.Key != "names/multi" {
		t.Fatalf("error %v does not name names/multi", err)
	}
	if n, m := len(keys(t, s, "vni/")), len(keys(t, s, "subnets/")); n != 1 || m != 1 {
		t.Fatalf("%d VNI and %d subnet leases after a failed create, want 1 and 1", n, m)
	}
	if _, err := s.Get(ctx, "networks/id2"); !errors.Is(err, kvstore.ErrKeyNotFound) {
		t.Fatalf("networks/id2: %v, want not found", err)
	}
	// An error from the ops function is returned as is.
	boom := errors.New("boom")
	_, err = a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "id3"}, func(ipam.NetworkLease) ([]kvstore.Op, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
}

func testInvalidNetworkWritesNothing(t *testing.T, srv testenv.StoreServer) {
	a, s := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	bad := []ipam.NetworkRequest{
		{ID: ""},
		{ID: "a/b"},
		{ID: "n", Subnets: []ipam.SubnetConfig{{Subnet: netip.Prefix{}}}},
		{ID: "n", Subnets: []ipam.SubnetConfig{{Subnet: pfx("10.1.0.0/24"), Gateway: addr("10.2.0.1")}}},
		{ID: "n", Subnets: []ipam.SubnetConfig{{Subnet: pfx("10.1.0.0/24"), IPRange: pfx("10.1.1.0/25")}}},
		{ID: "n", Subnets: []ipam.SubnetConfig{{Subnet: pfx("10.1.0.0/24"),
			AuxAddresses: map[string]netip.Addr{"router": addr("10.9.0.1")}}}},
		{ID: "n", Subnets: []ipam.SubnetConfig{{Subnet: pfx("10.1.0.0/24")}, {Subnet: pfx("10.1.0.0/16")}}},
		{ID: "n", Subnets: []ipam.SubnetConfig{{Gateway: addr("10.1.0.1")}}},
	}
	for _, req := range bad {
		_, err := a.LeaseNetwork(ctx, req, nil)
		wantErr(t, err, ipam.ErrInvalid)
	}
	if n := len(keys(t, s, "")); n != 0 {
		t.Fatalf("%d keys written by invalid requests, want none", n)
	}
}

func testReleaseNetwork(t *testing.T, srv testenv.StoreServer) {
	a, s := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	l1 := check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n1"}, nil))(t)
	l2 := check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n2"}, nil))(t)
	check.Must(a.LeaseAddress(ctx, "n1", l1.Subnets, ipam.AddressRequest{Owner: owner("e1", "h1")}))(t)
	check.Must(a.LeaseAddress(ctx, "n2", l2.Subnets, ipam.AddressRequest{Owner: owner("e2", "h1")}))(t)

	// Releasing another network's leases does nothing.
	check.OK(t, a.ReleaseVNI(ctx, "n2", l1.VNI))
	check.OK(t, a.ReleaseSubnet(ctx, "n2", l1.Subnets[0].Subnet))
	if n := len(keys(t, s, "vni/")) + len(keys(t, s, "subnets/")); n != 4 {
		t.Fatalf("%d leases after releasing foreign ones, want 4", n)
	}
	check.OK(t, a.ReleaseNetwork(ctx, l1))
	check.OK(t, a.ReleaseNetwork(ctx, l1)) // idempotent
	want := map[string]string{"vni/4097": "n2", "subnets/10.0.1.0/24": "n2"}
	got := keys(t, s, "vni/")
	for k, v := range keys(t, s, "subnets/") {
		got[k] = v
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("leases after release = %v, want %v", got, want)
	}
	if n := len(keys(t, s, "ips/n1/")); n != 0 {
		t.Fatalf("%d address leases of n1 left", n)
	}
	if n := len(keys(t, s, "ips/n2/")); n != 1 {
		t.Fatalf("%d address leases of n2, want 1", n)
	}
	// What was released is handed out again, lowest first.
	l3 := check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n3"}, nil))(t)
	if l3.VNI != l1.VNI || l3.Subnets[0].Subnet != l1.Subnets[0].Subnet {
		t.Fatalf("lease after release = %+v, want %d %s again", l3, l1.VNI, l1.Subnets[0].Subnet)
	}
}

func testReleaseOps(t *testing.T, srv testenv.StoreServer) {
	a, s := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	l := check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "id1"}, networkOps("id1", "multi")))(t)
	ops := check.Must(a.ReleaseOps(ctx, l))(t)
	if len(ops) != 2 {
		t.Fatalf("release ops = %+v, want the VNI and the subnet", ops)
	}
	rec := check.Must(s.Get(ctx, "networks/id1"))(t)
	name := check.Must(s.Get(ctx, "names/multi"))(t)
	ops = append(ops,
		kvstore.Op{Kind: kvstore.OpCompareDelete, Key: "networks/id1", Version: rec.Version},
		kvstore.Op{Kind: kvstore.OpCompareDelete, Key: "names/multi", Version: name.Version})
	check.OK(t, s.Txn(ctx, ops...))
	if n := len(keys(t, s, "")); n != 1 { // only the guard remains
		t.Fatalf("keys after delete: %v, want only %s", keys(t, s, ""), ipam.GuardKey)
	}
	if ops := check.Must(a.ReleaseOps(ctx, l))(t); len(ops) != 0 {
		t.Fatalf("release ops of a released network = %+v, want none", ops)
	}
}

func testNetworkPoolExhausted(t *testing.T, srv testenv.StoreServer) {
	a, s := newAllocator(t, srv, ipam.Config{VNIMin: 100, VNIMax: 105,
		Pools: []ipam.AddressPool{{Base: pfx("10.99.0.0/23"), Size: 24}, {Base: pfx("192.168.7.0/24"), Size: 25}}})
	ctx := testCtx(t)
	var got []string
	for i := range 4 {
		l := check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n" + strconv.Itoa(i)}, nil))(t)
		got = append(got, l.Subnets[0].Subnet.String())
	}
	if want := "[10.99.0.0/24 10.99.1.0/24 192.168.7.0/25 192.168.7.128/25]"; fmt.Sprint(got) != want {
		t.Fatalf("subnets = %v, want %s", got, want)
	}
	_, err := a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n4"}, nil)
	wantErr(t, err, ipam.ErrPoolExhausted)
	// An explicit subnet outside the pools still works; then the VNI
	// range runs out.
	check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n5", Subnets: []ipam.SubnetConfig{{Subnet: pfx("172.20.0.0/16")}}}, nil))(t)
	check.Must(a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n6", Subnets: []ipam.SubnetConfig{{Subnet: pfx("172.21.0.0/16")}}}, nil))(t)
	_, err = a.LeaseNetwork(ctx, ipam.NetworkRequest{ID: "n7", Subnets: []ipam.SubnetConfig{{Subnet: pfx("172.22.0.0/16")}}}, nil)
	wantErr(t, err, ipam.ErrPoolExhausted)
	if n := len(keys(t, s, "vni/")); n != 6 {
		t.Fatalf("%d VNI leases, want 6", n)
	}
}
