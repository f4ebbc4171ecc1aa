package ipam_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/check"

	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/testenv"
)

// holders returns "endpoint@node" of every address lease in the networks,
// sorted.
func holders(t testing.TB, a *ipam.Allocator, networks ...string) []string {
	t.Helper()
	var got []string
	for _, n := range networks {
		for _, l := range check.Must(a.Addresses(testCtx(t), n))(t) {
			got = append(got, l.Owner.EndpointID+"@"+l.Owner.Node)
		}
	}
	slices.Sort(got)
	return got
}

// endpoints returns "endpoint@node" of leases, sorted.
func endpoints(leases []ipam.AddressLease) []string {
	var got []string
	for _, l := range leases {
		got = append(got, l.Owner.EndpointID+"@"+l.Owner.Node)
	}
	slices.Sort(got)
	return got
}

func testSweepOrphans(t *testing.T, srv testenv.StoreServer) {
	a, _ := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	for i, o := range []ipam.Owner{owner("a1", "A"), owner("a2", "A"), owner("a3", "A"), owner("b1", "B"), owner("b2", "B")} {
		check.Must(a.LeaseAddress(ctx, fmt.Sprint("net", i%2), subnet24(), ipam.AddressRequest{Owner: o}))(t)
	}
	// Node A still has endpoint a1 (in net0) and a2 (in net1); a3 is an
	// orphan. B's leases are not A's to judge, whatever keep says.
	var asked []string
	keep := func(l ipam.AddressLease) bool {
		asked = append(asked, l.Owner.EndpointID)
		return l.Owner.EndpointID == "a1" || l.Owner.EndpointID == "a2"
	}
	swept := check.Must(a.SweepOrphans(ctx, "A", keep))(t)
	if got := endpoints(swept); fmt.Sprint(got) != "[a3@A]" {
		t.Fatalf("swept %v, want [a3@A]", got)
	}
	if swept[0].NetworkID != "net0" || swept[0].Addr != addr("10.0.0.3") {
		t.Fatalf("swept lease = %+v, want net0 10.0.0.3", swept[0])
	}
	slices.Sort(asked)
	if fmt.Sprint(asked) != "[a1 a2 a3]" {
		t.Fatalf("keep asked about %v, want only node A's leases", asked)
	}
	if got, want := holders(t, a, "net0", "net1"), "[a1@A a2@A b1@B b2@B]"; fmt.Sprint(got) != want {
		t.Fatalf("leases left %v, want %s", got, want)
	}
	// Nothing left to sweep; then A loses every endpoint.
	if swept := check.Must(a.SweepOrphans(ctx, "A", keep))(t); len(swept) != 0 {
		t.Fatalf("second sweep deleted %+v", swept)
	}
	swept = check.Must(a.SweepOrphans(ctx, "A", func(ipam.AddressLease) bool { return false }))(t)
	if got := endpoints(swept); fmt.Sprint(got) != "[a1@A a2@A]" {
		t.Fatalf("swept %v, want [a1@A a2@A]", got)
	}
	if got, want := holders(t, a, "net0", "net1"), "[b1@B b2@B]"; fmt.Sprint(got) != want {
		t.Fatalf("leases left %v, want %s", got, want)
	}
	_, err := a.SweepOrphans(ctx, "", keep)
	wantErr(t, err, ipam.ErrInvalid)
}

func testReclaimer(t *testing.T, srv testenv.StoreServer) {
	a, s := newAllocator(t, srv, ipam.Config{})
	ctx := testCtx(t)
	lease := func(ep, node string) {
		t.Helper()
		check.Must(a.LeaseAddress(ctx, "net", subnet24(), ipam.AddressRequest{Owner: owner(ep, node)}))(t)
	}
	lease("e-self", "self")
	lease("e-dead", "dead")
	lease("e-flaky", "flaky")

	const grace = time.Minute
	now := time.Unix(1_000_000, 0)
	r := a.NewReclaimer(grace)
	r.SetClock(func() time.Time { return now })
	// reclaim runs one round at now+at with the present nodes, and checks
	// what it reclaimed.
	reclaim := func(at time.Duration, present []string, asOf uint64, want string) {
		t.Helper()
		got := endpoints(check.Must(r.Reclaim(ctx, present, asOf))(t))
		if fmt.Sprint(got) != want {
			t.Fatalf("at +%v: reclaimed %v, want %s", at, got, want)
		}
	}
	at := func(d time.Duration) time.Duration { now = time.Unix(1_000_000, 0).Add(d); return d }

	reclaim(at(0), []string{"self"}, 0, "[]")                       // dead and flaky first seen missing
	reclaim(at(30*time.Second), []string{"self"}, 0, "[]")          // missing < grace: kept
	reclaim(at(40*time.Second), []string{"self", "flaky"}, 0, "[]") // flaky is back: forgotten

	// dead takes a new lease after the listing that the live set was read
	// at (as if it had just registered): that one survives, its old one
	// goes.
	_, asOf, err := s.List(ctx, "ips/")
	check.OK(t, err)
	lease("e-dead2", "dead")
	reclaim(at(grace), []string{"self"}, asOf, "[e-dead@dead]") // flaky missing again, from now on
	if got, want := holders(t, a, "net"), "[e-dead2@dead e-flaky@flaky e-self@self]"; fmt.Sprint(got) != want {
		t.Fatalf("leases left %v, want %s", got, want)
	}
	reclaim(at(2*grace-time.Second), []string{"self"}, 0, "[e-dead2@dead]")
	reclaim(at(2*grace), []string{"self"}, 0, "[e-flaky@flaky]")
	if got, want := holders(t, a, "net"), "[e-self@self]"; fmt.Sprint(got) != want {
		t.Fatalf("leases left %v, want %s", got, want)
	}

	_, err = r.Reclaim(ctx, nil, 0)
	wantErr(t, err, ipam.ErrInvalid)
}
