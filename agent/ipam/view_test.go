package ipam_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/meshnet/meshnet/testenv/check"

	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/testenv"
)

// listCounter is a real store that counts its listings.
type listCounter struct {
	kvstore.Store
	lists atomic.Int64
}

func (c *listCounter) List(ctx context.Context, prefix string) ([]kvstore.KVPair, uint64, error) {
	c.lists.Add(1)
	return c.Store.List(ctx, prefix)
}

// testAddressView checks the Allocator's view of a network's leases: a
// run of leases lists the store once, and a view gone out of date through
// another allocator's leases and releases still leases right.
func testAddressView(t *testing.T, srv testenv.StoreServer) {
	ctx := testCtx(t)
	s := &listCounter{Store: open(t, srv)}
	a, err := ipam.New(s, ipam.Config{})
	check.OK(t, err)
	b, _ := newAllocator(t, srv, ipam.Config{})

	for i := range 20 {
		p := check.Must(a.LeaseAddress(ctx, "vnet", subnet24(), ipam.AddressRequest{Owner: owner(fmt.Sprint("e", i), "h1")}))(t)
		if want := pfx(fmt.Sprintf("10.0.0.%d/24", i+2)); p != want {
			t.Fatalf("lease %d = %s, want %s", i, p, want)
		}
	}
	if n := s.lists.Load(); n != 1 {
		t.Errorf("20 leases listed the store %d times, want once", n)
	}
	// Repeating a lease still returns the address held.
	if p := check.Must(a.LeaseAddress(ctx, "vnet", subnet24(), ipam.AddressRequest{Owner: owner("e3", "h1")}))(t); p != pfx("10.0.0.5/24") {
		t.Errorf("repeated lease of e3 = %s, want 10.0.0.5/24", p)
	}

	// Another allocator takes the next address behind a's back: a loses
	// the race and moves on (to one of the next few free, at random).
	pb := check.Must(b.LeaseAddress(ctx, "vnet", subnet24(), ipam.AddressRequest{Owner: owner("b1", "h2")}))(t)
	p := check.Must(a.LeaseAddress(ctx, "vnet", subnet24(), ipam.AddressRequest{Owner: owner("e20", "h1")}))(t)
	if pb != pfx("10.0.0.22/24") || p == pb {
		t.Errorf("b leased %s, then a leased %s", pb, p)
	}

	// A range that a's view believes full, after another allocator
	// released an address: a lists again instead of reporting it full.
	small := []ipam.SubnetConfig{{Subnet: pfx("10.1.0.0/29")}} // .2–.6 usable
	for i := range 5 {
		check.Must(a.LeaseAddress(ctx, "full", small, ipam.AddressRequest{Owner: owner(fmt.Sprint("f", i), "h1")}))(t)
	}
	check.OK(t, b.ReleaseAddress(ctx, "full", addr("10.1.0.4"), "f2"))
	if p := check.Must(a.LeaseAddress(ctx, "full", small, ipam.AddressRequest{Owner: owner("f5", "h1")}))(t); p != pfx("10.1.0.4/29") {
		t.Errorf("lease in a range a believed full = %s, want 10.1.0.4/29", p)
	}
	_, err = a.LeaseAddress(ctx, "full", small, ipam.AddressRequest{Owner: owner("f6", "h1")})
	wantErr(t, err, ipam.ErrPoolExhausted)
}
