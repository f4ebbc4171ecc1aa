package netstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/agent/netstore"
	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/testenv"
)

// host is one agent's view of the store: its own client.
type host struct {
	name string
	kv   kvstore.Store
	ns   *netstore.Store
}

func newHost(t *testing.T, srv testenv.StoreServer, name string) *host {
	t.Helper()
	kv := testenv.OpenStore(t, srv, t.Name())
	alloc, err := ipam.New(kv, ipam.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &host{name: name, kv: kv, ns: netstore.New(kv, alloc, slog.New(slog.DiscardHandler))}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newNetwork(name string) *driver.Network {
	return &driver.Network{ID: fmt.Sprintf("%064x", rand.Uint64()), Name: name, Driver: "overlay", Created: time.Now().UTC(),
		Labels: map[string]string{"team": "a"}, Options: map[string]string{"mtu": "1400"}, MTU: 1400}
}

// keysUnder lists the keys under prefix.
func keysUnder(t *testing.T, kv kvstore.Store, prefix string) []string {
	t.Helper()
	kvs, _, err := kv.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range kvs {
		out = append(out, p.Key)
	}
	return out
}

func TestNetstore(t *testing.T) {
	for _, srv := range testenv.StartStores(t, "") {
		t.Run(srv.Name(), func(t *testing.T) {
			t.Run("lifecycle", func(t *testing.T) { testLifecycle(t, srv) })
			t.Run("remove races leases from two hosts", func(t *testing.T) { testRemoveRace(t, srv) })
			t.Run("forged records refused", func(t *testing.T) { testForgedRecords(t, srv) })
		})
	}
}

func testLifecycle(t *testing.T, srv testenv.StoreServer) {
	ctx := testCtx(t)
	a := newHost(t, srv, "n1")
	n := newNetwork("multi")
	if err := a.ns.Create(ctx, n, true); err != nil {
		t.Fatal(err)
	}
	if n.VNI == 0 || len(n.Subnets) != 1 || n.Scope != driver.ScopeGlobal {
		t.Fatalf("created %+v", n)
	}
	if err := a.ns.Create(ctx, newNetwork("multi"), true); !errors.Is(err, netstore.ErrNameTaken) || err.Error() != "network with name multi already exists" {
		t.Fatalf("same name again: %v", err)
	}
	rec, err := a.ns.Get(ctx, n.ID)
	if err != nil || rec.Network.Name != "multi" || rec.Version == 0 {
		t.Fatalf("get: %+v, %v", rec, err)
	}
	// The record reads back as exactly what was created, so that the
	// agent recognises the echo of its own create and does no work twice.
	if !reflect.DeepEqual(rec.Network, n) {
		t.Fatalf("record reads back as\n%+v\nnot as created\n%+v", rec.Network, n)
	}
	recs, ver, err := a.ns.List(ctx)
	if err != nil || len(recs) != 1 || ver < rec.Version {
		t.Fatalf("list: %d records at %d, %v", len(recs), ver, err)
	}
	// A stale view of the record still leases: the fence re-reads it.
	stale := netstore.Record{Network: n, Version: 1}
	addr, err := a.ns.LeaseAddress(ctx, stale, ipam.AddressRequest{Owner: ipam.Owner{EndpointID: "e1", Node: "n1"}})
	if err != nil || !addr.IsValid() {
		t.Fatalf("lease: %v, %v", addr, err)
	}
	var inUse *netstore.InUseError
	if err := a.ns.Remove(ctx, n.ID); !errors.As(err, &inUse) || len(inUse.Leases) != 1 {
		t.Fatalf("remove while leased: %v", err)
	}
	if rec, err := a.ns.Get(ctx, n.ID); err != nil || rec.Network.Removing {
		t.Fatalf("after a refused removal: %+v, %v", rec, err)
	}
	if err := a.ns.Alloc().ReleaseAddress(ctx, n.ID, addr.Addr(), "e1"); err != nil {
		t.Fatal(err)
	}
	if err := a.ns.Remove(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.ns.Remove(ctx, n.ID); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	for _, prefix := range []string{"networks/", "names/", "vni/", "subnets/", "ips/"} {
		if left := keysUnder(t, a.kv, prefix); len(left) > 0 {
			t.Errorf("left after removal: %v", left)
		}
	}
	if _, err := a.ns.LeaseAddress(ctx, netstore.Record{Network: n, Version: rec.Version}, ipam.AddressRequest{Owner: ipam.Owner{EndpointID: "e2", Node: "n1"}}); !errors.Is(err, netstore.ErrNotFound) {
		t.Fatalf("lease in a removed network: %v", err)
	}
}

// testRemoveRace: many endpoints from two hosts lease addresses while one
// host removes the network, round after round. Afterwards either the
// network exists with every lease that succeeded (and no other), or
// nothing of it is left and no lease succeeded.
func testRemoveRace(t *testing.T, srv testenv.StoreServer) {
	ctx := testCtx(t)
	hosts := []*host{newHost(t, srv, "n1"), newHost(t, srv, "n2")}
	const rounds, leasers = 25, 12
	removed, kept := 0, 0
	for round := range rounds {
		n := newNetwork(fmt.Sprintf("race%d", round))
		if err := hosts[0].ns.Create(ctx, n, true); err != nil {
			t.Fatal(err)
		}
		rec, err := hosts[0].ns.Get(ctx, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		// The removal starts at once; the leases start after a random
		// offset, spread over 3 ms: in some rounds the removal is done
		// first, in others leases land before or during it.
		offset := rand.IntN(3000)
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			succeeded = map[string]string{} // address → endpoint
			removeErr error
		)
		for i := range leasers {
			h := hosts[i%2]
			wg.Go(func() {
				time.Sleep(time.Duration(offset+rand.IntN(3000)) * time.Microsecond)
				ep := fmt.Sprintf("ep%d-%d", round, i)
				addr, err := h.ns.LeaseAddress(ctx, rec, ipam.AddressRequest{Owner: ipam.Owner{EndpointID: ep, Node: h.name}})
				switch {
				case err == nil:
					mu.Lock()
					succeeded[addr.Addr().String()] = ep
					mu.Unlock()
				case errors.Is(err, netstore.ErrRemoving), errors.Is(err, netstore.ErrNotFound):
				default:
					t.Errorf("round %d: lease on %s: %v", round, h.name, err)
				}
			})
		}
		wg.Go(func() {
			removeErr = hosts[0].ns.Remove(ctx, n.ID)
		})
		wg.Wait()

		leases, err := hosts[1].ns.Alloc().Addresses(ctx, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, getErr := hosts[1].ns.Get(ctx, n.ID)
		switch {
		case removeErr == nil:
			removed++
			if !errors.Is(getErr, netstore.ErrNotFound) || len(leases) > 0 || len(succeeded) > 0 {
				t.Fatalf("round %d: removal succeeded, yet record: %v, leases left: %d, leases that succeeded: %d",
					round, getErr, len(leases), len(succeeded))
			}
			for _, prefix := range []string{"names/" + n.Name, fmt.Sprintf("vni/%d", n.VNI), "subnets/" + n.Subnets[0].Subnet.String()} {
				if left := keysUnder(t, hosts[1].kv, prefix); len(left) > 0 {
					t.Fatalf("round %d: left after removal: %v", round, left)
				}
			}
		default:
			kept++
			if !errors.Is(removeErr, netstore.ErrInUse) && !errors.Is(removeErr, ipam.ErrContention) {
				t.Fatalf("round %d: removal failed with %v", round, removeErr)
			}
			if getErr != nil {
				t.Fatalf("round %d: removal refused (%v), yet the record is gone: %v", round, removeErr, getErr)
			}
			got := map[string]string{}
			for _, l := range leases {
				got[l.Addr.String()] = l.Owner.EndpointID
			}
			if fmt.Sprint(got) != fmt.Sprint(succeeded) {
				t.Fatalf("round %d: leases held %v, leases that succeeded %v", round, got, succeeded)
			}
			// Clean up for the next round: release, then remove for good.
			for _, l := range leases {
				if err := hosts[0].ns.Alloc().ReleaseAddress(ctx, n.ID, l.Addr, l.Owner.EndpointID); err != nil {
					t.Fatal(err)
				}
			}
			if err := hosts[0].ns.Remove(ctx, n.ID); err != nil {
				t.Fatalf("round %d: removing after release: %v", round, err)
			}
		}
	}
	t.Logf("%d rounds: the removal won %d, the leases %d", rounds, removed, kept)
}

// Finding 2 of issue 19: records were only JSON-decoded, so anyone who
// could write the store could have a host put a /0 gateway on a bridge (a
// route to everything) and masquerade it. A record is now checked as
// strictly as the request that made it: forged ones are left out of
// listings, watches and reads; a good one beside them still comes through.
func testForgedRecords(t *testing.T, srv testenv.StoreServer) {
	ctx := testCtx(t)
	a := newHost(t, srv, "n1")
	good := newNetwork("good")
	if err := a.ns.Create(ctx, good, true); err != nil {
		t.Fatal(err)
	}
	forge := func(name string, change func(n *driver.Network)) string {
		n := *good
		n.ID, n.Name = fmt.Sprintf("%064x", rand.Uint64()), name
		n.Subnets = append([]ipam.SubnetConfig(nil), good.Subnets...)
		change(&n)
		b, err := json.Marshal(&n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.kv.Put(ctx, netstore.NetworksPrefix+n.ID, b); err != nil {
			t.Fatal(err)
		}
		return n.ID
	}
	forged := []string{
		forge("wide", func(n *driver.Network) {
			n.Subnets[0].Subnet, n.Subnets[0].Gateway = netip.MustParsePrefix("0.0.0.0/1"), netip.MustParseAddr("0.0.0.1")
		}),
		forge("outside", func(n *driver.Network) { n.Subnets[0].Gateway = netip.MustParseAddr("192.0.2.77") }),
		forge("unmasked", func(n *driver.Network) { n.Subnets[0].Subnet = netip.MustParsePrefix("10.250.0.9/24") }),
		forge("bad name\nx", func(*driver.Network) {}),
		forge("vni", func(n *driver.Network) { n.VNI = 1 << 30 }),
		forge("mtu", func(n *driver.Network) { n.MTU = 12 }),
	}
	all, _, err := a.ns.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var recs []netstore.Record
	for _, r := range all {
		if !r.Malformed {
			recs = append(recs, r)
		}
	}
	if len(all) != 1+len(forged) || len(recs) != 1 || recs[0].Network.ID != good.ID {
		var names []string
		for _, r := range recs {
			names = append(names, r.Network.Name)
		}
		t.Errorf("listing holds %v, want the good network only", names)
	}
	for _, id := range forged {
		if _, err := a.ns.Get(ctx, id); err == nil {
			t.Errorf("forged record %s read as a network", id[:12])
		}
	}
}
