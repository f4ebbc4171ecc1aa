package e2e

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/client"
	"github.com/meshnet/meshnet/testenv/cluster"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// An endpoint lives apart from the sandbox it joins, as with Docker's
// remote drivers and CNI: created (address leased), joined (an interface
// in the sandbox, announced to the cluster, traffic flows), left (gone
// from the sandbox and the other hosts, its address still leased), and
// deleted (the lease given back). Each step refuses what does not fit.
func TestEndpointLifecycle(t *testing.T) {
	c := newCluster(t, cluster.StoreEmbedded, 2)
	ctx := testCtx(t)
	n1, n2 := c.Host(0), c.Host(1)
	ctl(t, n1, "network", "create", "-d", "overlay", "multi")
	waitListed(t, n2, "multi")
	netID := inspectNetwork(t, n1, "multi").ID
	a, b := c.Name("a"), c.Name("b")
	ctl(t, n1, "sandbox", "create", "--net", "none", a)
	ipB := createSandbox(t, n2, "multi", b)
	api1 := n1.Client()
	defer api1.Close()
	store, err := c.Store()
	if err != nil {
		t.Fatal(err)
	}
	leases := func() int {
		kvs, _, err := store.List(ctx, "ips/"+netID+"/")
		if err != nil {
			t.Fatal(err)
		}
		return len(kvs)
	}
	onN2 := func() bool { return strings.Contains(ctl(t, n2, "network", "inspect", "multi"), "web") }
	refusedWith := func(what string, err error, status int) {
		t.Helper()
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != status {
			t.Errorf("%s: got %v, want a %d refusal", what, err, status)
		}
	}

	ep, err := api1.EndpointCreate(ctx, api.EndpointCreate{Network: "multi", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := netip.ParsePrefix(ep.IPv4Address)
	if err != nil || ep.Sandbox != "" || ep.Network != "multi" || leases() != 2 {
		t.Fatalf("created %+v (%v), %d leases", ep, err, leases())
	}
	refusedWith("leave before join", api1.EndpointLeave(ctx, ep.ID), 409)
	if r := n1.AgentCtl("network", "rm", "multi"); r.Code == 0 || !strings.Contains(r.Stderr, "active endpoints") {
		t.Errorf("network rm with a created endpoint: %s", r)
	}

	joined, err := api1.EndpointJoin(ctx, ep.ID, api.EndpointJoin{Sandbox: a, Interface: "eth3"})
	if err != nil {
		t.Fatal(err)
	}
	if joined.Sandbox != a || joined.Interface != "eth3" || joined.Gateway == "" {
		t.Errorf("joined %+v", joined)
	}
	_, err = api1.EndpointJoin(ctx, ep.ID, api.EndpointJoin{Sandbox: a})
	refusedWith("join twice", err, 409)
	refusedWith("delete while joined", api1.EndpointDelete(ctx, ep.ID), 409)
	pa, pb := openPeer(t, a, addr.Addr()), openPeer(t, b, ipB)
	mustReach(t, pa, pb)
	pa.close()
	if err := eventually(ctx, func() error {
		if !onN2() {
			return fmt.Errorf("n2 does not list the joined endpoint")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	if err := api1.EndpointLeave(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	if links := ifacesOf(t, a); strings.Contains(links, "eth3") {
		t.Errorf("after leave, %s still has eth3: %s", a, links)
	}
	if err := eventually(ctx, func() error {
		if onN2() {
			return fmt.Errorf("n2 still lists the endpoint that left")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if got, _ := api1.EndpointInspect(ctx, ep.ID); got.Sandbox != "" || got.IPv4Address != ep.IPv4Address || leases() != 2 {
		t.Errorf("after leave: %+v, %d leases (want the address kept)", got, leases())
	}

	if err := api1.EndpointDelete(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	_, err = api1.EndpointInspect(ctx, ep.ID)
	refusedWith("inspect after delete", err, 404)
	if leases() != 1 {
		t.Errorf("%d leases after delete, want b's only", leases())
	}
	_, err = api1.EndpointCreate(ctx, api.EndpointCreate{Network: "none"})
	refusedWith("an endpoint on none", err, 400)
	_, err = api1.EndpointCreate(ctx, api.EndpointCreate{Network: "no-such-network"})
	refusedWith("an endpoint on an unknown network", err, 404)
}

// ifacesOf lists the interfaces in a sandbox.
func ifacesOf(t *testing.T, name string) string {
	t.Helper()
	ns, err := nshost.OpenNS(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	return strings.Join(linksIn(t, ns), " ")
}
