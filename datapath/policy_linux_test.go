package datapath_test

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/meshnet/meshnet/datapath"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// prohibitRule is an isolation rule as an administrator would make it by
// hand: `ip -6 rule add priority 1000 iif NAME prohibit`.
func prohibitRule(name string, prio int) *netlink.Rule {
	r := netlink.NewRule()
	r.Family, r.Priority, r.IifName, r.Type = unix.AF_INET6, prio, name, unix.RTN_PROHIBIT
	return r
}

// writeSysctl writes /proc/sys/KEY in ns.
func writeSysctl(t *testing.T, ns *nshost.NS, key, value string) {
	t.Helper()
	if err := ns.Do(func() error { return os.WriteFile("/proc/sys/"+key, []byte(value), 0) }); err != nil {
		t.Fatal(err)
	}
}

// TestForwardingPolicy checks that a network's Forwarding is reconciled like
// any other state: the bridge's IPv4 forwarding switch both ways, the IPv6
// isolation rule exactly when the network does not forward and has an IPv6
// gateway, drift repaired, and rules removed with the network however it
// goes (Apply, RemoveNetwork, renamed bridge, bridge deleted by hand).
func TestForwardingPolicy(t *testing.T) {
	tb := newTestbed(t, "ovfw", 1)
	dp, host := tb.dps[0], tb.hosts[0]
	h, err := host.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	check := func(step, bridge, forwarding string, rules ...string) {
		t.Helper()
		if bridge != "" {
			if got := readSysctl(t, host.NS, "net/ipv4/conf/"+bridge+"/forwarding"); got != forwarding {
				t.Errorf("%s: %s forwarding=%s, want %s", step, bridge, got, forwarding)
			}
		}
		got, err := datapath.IsolationRules(dp)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, rules) {
			t.Errorf("%s: isolation rules for %q, want %q", step, got, rules)
		}
		var want []string
		for _, r := range rules {
			want = append(want, "rule6 pref=1000 iif="+r+" table=0")
		}
		if got := renderRules6(t, h); !slices.Equal(got, want) {
			t.Errorf("%s: IPv6 rules %q, want %q", step, got, want)
		}
	}

	n := bridgeNet("def", "mesh0", "172.17.0.1/16", local(tb, "a", "s1", "eth0", "172.17.0.2/16", "fd00:17::2/64", true))
	n.Gateway6 = pfx("fd00:17::1/64")
	mustApply(t, dp, n)
	check("isolated", "mesh0", "0", "mesh0")

	writeSysctl(t, host.NS, "net/ipv4/conf/mesh0/forwarding", "1")
	if err := h.RuleDel(prohibitRule("mesh0", datapath.IsolationRulePriority)); err != nil {
		t.Fatal(err)
	}
	mustApply(t, dp, n)
	check("isolation repaired", "mesh0", "0", "mesh0")
	// The host-wide switch sets every interface's: the next Apply repairs.
	writeSysctl(t, host.NS, "net/ipv4/ip_forward", "1")
	mustApply(t, dp, n)
	check("after ip_forward=1", "mesh0", "0", "mesh0")
	writeSysctl(t, host.NS, "net/ipv4/ip_forward", "0")

	n.Forwarding = true
	mustApply(t, dp, n)
	check("forwarding", "mesh0", "1")
	writeSysctl(t, host.NS, "net/ipv4/conf/mesh0/forwarding", "0")
	mustApply(t, dp, n)
	check("forwarding repaired", "mesh0", "1")

	n.Forwarding, n.Gateway6 = false, netip.Prefix{}
	n.Local[0].Addr6 = netip.Prefix{}
	mustApply(t, dp, n)
	check("isolated without an IPv6 gateway", "mesh0", "0")
	n.Gateway6 = pfx("fd00:17::1/64")
	mustApply(t, dp, n)
	check("IPv6 gateway back", "mesh0", "0", "mesh0")

	n.Bridge = "mesh1"
	mustApply(t, dp, n)
	check("bridge renamed", "mesh1", "0", "mesh1")

	bad := n
	bad.MTU = 20
	if err := dp.Apply([]datapath.Network{bad}); !errors.Is(err, datapath.ErrInvalid) {
		t.Fatalf("Apply(invalid) = %v, want ErrInvalid", err)
	}
	check("invalid update", "mesh1", "0", "mesh1")

	mustApply(t, dp)
	check("network gone", "", "")
	if err := dp.ApplyNetwork(n); err != nil {
		t.Fatal(err)
	}
	check("ApplyNetwork", "mesh1", "0", "mesh1")
	if err := dp.RemoveNetwork("def"); err != nil {
		t.Fatal(err)
	}
	check("RemoveNetwork", "", "")

	// A rule outlives its bridge: deleted by hand, then the network goes.
	mustApply(t, dp, n)
	vandalise(t, tb, func(h *netlink.Handle) error { return delLink(h, "mesh1") })
	check("bridge deleted by hand", "", "", "mesh1")
	mustApply(t, dp)
	check("network gone after its bridge", "", "")

	// Rules at our priority that are not ours are left alone.
	foreign := []*netlink.Rule{prohibitRule("mesh1", datapath.IsolationRulePriority+1), netlink.NewRule()}
	foreign[1].Family, foreign[1].Priority, foreign[1].IifName, foreign[1].Table = unix.AF_INET6, datapath.IsolationRulePriority, "mesh1", unix.RT_TABLE_MAIN
	for _, r := range foreign {
		if err := h.RuleAdd(r); err != nil {
			t.Fatal(err)
		}
	}
	before := renderRules6(t, h)
	mustApply(t, dp)
	if got := renderRules6(t, h); !slices.Equal(got, before) || len(got) != 2 {
		t.Errorf("foreign rules changed: %q, want %q", got, before)
	}
	for _, r := range foreign {
		if err := h.RuleDel(r); err != nil {
			t.Fatal(err)
		}
	}
}

// TestForwardingTraffic runs two local networks with gateways on one host,
// a sandbox on each, and checks that they reach each other (IPv4 and IPv6)
// exactly when both networks forward, even with IPv6 forwarding enabled
// host-wide.
func TestForwardingTraffic(t *testing.T) {
	tb := newTestbed(t, "ovft", 1)
	dp, host := tb.dps[0], tb.hosts[0]
	// Forwarding on host-wide, only in the test's host: new interfaces
	// are born forwarding IPv4, and IPv6 has no other switch.
	writeSysctl(t, host.NS, "net/ipv4/ip_forward", "1")
	writeSysctl(t, host.NS, "net/ipv6/conf/all/forwarding", "1")
	a := bridgeNet("a", "fwa0", "10.71.0.1/24", local(tb, "a1", "sa", "eth0", "10.71.0.2/24", "fd00:71::2/64", true))
	a.Gateway6 = pfx("fd00:71::1/64")
	b := bridgeNet("b", "fwb0", "10.72.0.1/24", local(tb, "b1", "sb", "eth0", "10.72.0.2/24", "fd00:72::2/64", true))
	b.Gateway6 = pfx("fd00:72::1/64")
	sa, sb := tb.sandbox("sa"), tb.sandbox("sb")
	serve(t, sa, "sa", ":7000")
	serve(t, sb, "sb", ":7000")
	serve(t, host.NS, "h1", ":7001")
	// reach checks in parallel (what is not answered takes seconds to
	// tell) that sa and sb reach each other, or not, and their gateways.
	reach := func(yes bool) {
		t.Helper()
		var wg sync.WaitGroup
		for _, c := range []struct {
			from *nshost.NS
			addr string
			want string
		}{
			{sa, "10.72.0.2:7000", "sb"}, {sa, "[fd00:72::2]:7000", "sb"},
			{sb, "10.71.0.2:7000", "sa"}, {sb, "[fd00:71::2]:7000", "sa"},
		} {
			wg.Go(func() {
				if yes {
					mustReach(t, c.from, c.addr, c.want)
				} else {
					mustNotReach(t, c.from, c.addr)
				}
			})
		}
		// The gateways, the host's own addresses, are reached either way.
		mustReach(t, sa, "10.71.0.1:7001", "h1")
		mustReach(t, sb, "[fd00:72::1]:7001", "h1")
		wg.Wait()
	}

	mustApply(t, dp, a, b)
	reach(false)
	a.Forwarding, b.Forwarding = true, true
	mustApply(t, dp, a, b)
	reach(true)
	a.Forwarding = false // requests from a's side are not routed
	mustApply(t, dp, a, b)
	var wg sync.WaitGroup
	wg.Go(func() { mustNotReach(t, sa, "10.72.0.2:7000") })
	mustNotReach(t, sa, "[fd00:72::2]:7000")
	wg.Wait()
	b.Forwarding = false
	mustApply(t, dp, a, b)
	reach(false)
	if got := render(t, host.NS); !strings.Contains(got, "rule6 pref=1000 iif=fwa0 ") || !strings.Contains(got, "rule6 pref=1000 iif=fwb0 ") {
		t.Errorf("no isolation rules:\n%s", got)
	}
}
