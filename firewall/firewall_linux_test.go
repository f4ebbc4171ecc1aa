package firewall

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/meshnet/meshnet/testenv/nshost"
)

// newNS makes a namespace for the test, deleted when it ends.
func newNS(t testing.TB) *nshost.NS {
	t.Helper()
	ns, err := nshost.NewNS(nshost.Prefix("fw") + "-h")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

func newFirewall(t testing.TB, ns *nshost.NS) *Firewall {
	t.Helper()
	f, err := New(ns.Handle())
	if err != nil {
		t.Fatal(err)
	}
	f.recheck = 0 // every Apply reads the kernel: the tests edit it by hand
	t.Cleanup(func() { f.Close() })
	return f
}

// kernel reads the namespace's meshnet table of a family as the
// fingerprint.
func kernel(t *testing.T, f *Firewall, family nftables.TableFamily) (string, bool) {
	t.Helper()
	c, err := f.conn()
	if err != nil {
		t.Fatal(err)
	}
	fp, exists, err := readTable(c, family)
	if err != nil {
		t.Fatal(err)
	}
	return fp, exists
}

func mustApply(t *testing.T, f *Firewall, rs Ruleset) {
	t.Helper()
	if err := f.Apply(rs); err != nil {
		t.Fatal(err)
	}
	inet, bridge := render(rs)
	for family, want := range map[nftables.TableFamily]*table{nftables.TableFamilyINet: inet, nftables.TableFamilyBridge: bridge} {
		fp, exists := kernel(t, f, family)
		switch {
		case want == nil && exists:
			t.Fatalf("table of family %d left when none is wanted:\n%s", family, fp)
		case want != nil && fp != fingerprint(family, want):
			t.Fatalf("kernel holds:\n%s\nwant:\n%s", fp, fingerprint(family, want))
		}
	}
}

func net(bridge, cidr string, internal bool) Network {
	return Network{Bridge: bridge, Subnets: []netip.Prefix{netip.MustParsePrefix(cidr)}, Internal: internal}
}

// TestApply: the table is written once, left alone when nothing changed,
// repaired when edited by hand, removed when no network needs it, and no
// other table is ever touched.
func TestApply(t *testing.T) {
	ns := newNS(t)
	f := newFirewall(t, ns)
	c, err := f.conn()
	if err != nil {
		t.Fatal(err)
	}
	// Somebody else's table, with a chain and a rule.
	other := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "other"})
	oc := c.AddChain(&nftables.Chain{Name: "keep", Table: other})
	c.AddRule(&nftables.Rule{Table: other, Chain: oc, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	otherRules := func() int {
		rules, err := c.GetRules(other, oc)
		if err != nil {
			t.Fatal(err)
		}
		return len(rules)
	}

	rs := Ruleset{Networks: []Network{net("br-a", "10.1.0.0/24", false), net("br-i", "10.2.0.0/24", true)}}
	mustApply(t, f, rs)
	writes := f.Writes()
	mustApply(t, f, rs)
	if f.Writes() != writes {
		t.Errorf("a no-op Apply wrote %d transactions", f.Writes()-writes)
	}

	// Drift: a rule deleted by hand, a rule added by hand, an element
	// added to a set by hand.
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
	fwd := &nftables.Chain{Name: "forward", Table: tbl}
	rules, err := c.GetRules(tbl, fwd)
	if err != nil || len(rules) == 0 {
		t.Fatalf("rules of forward: %v, %v", rules, err)
	}
	for name, edit := range map[string]func() error{
		"rule deleted": func() error { return c.DelRule(rules[1]) },
		"rule added": func() error {
			c.AddRule(&nftables.Rule{Table: tbl, Chain: fwd, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}})
			return nil
		},
		// Finding 9: drift was judged by comments; a rule whose
		// expressions change and whose comment stays is drift too.
		"rule changed, its comment kept": func() error {
			c.ReplaceRule(&nftables.Rule{Table: tbl, Chain: fwd, Handle: rules[0].Handle, UserData: rules[0].UserData,
				Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}})
			return nil
		},
		"element added": func() error {
			return c.SetAddElements(&nftables.Set{Table: tbl, Name: "bridges", KeyType: nftables.TypeIFName},
				[]nftables.SetElement{{Key: ifname("eth0")}})
		},
	} {
		if err := edit(); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		if fp, _ := kernel(t, f, nftables.TableFamilyINet); fp == fingerprint(nftables.TableFamilyINet, renderInet(rs)) {
			t.Fatalf("%s: the edit did not show", name)
		}
		mustApply(t, f, rs)
		if rules, err = c.GetRules(tbl, fwd); err != nil {
			t.Fatal(err)
		}
	}

	mustApply(t, f, Ruleset{})
	if err := f.Remove(); err != nil {
		t.Fatalf("Remove without a table: %v", err)
	}
	mustApply(t, f, rs)
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, exists := kernel(t, f, nftables.TableFamilyINet); exists {
		t.Error("Remove left the table")
	}
	if otherRules() != 1 {
		t.Error("another table was touched")
	}
}

// TestStates applies rulesets in random order: each time the kernel holds
// exactly the desired table, whatever came before.
func TestStates(t *testing.T) {
	states := []Ruleset{
		{},
		{Networks: []Network{net("mesh0", "172.17.0.0/16", false)}},
		{Networks: []Network{net("mesh0", "172.17.0.0/16", false), net("mnbr-4096", "10.0.0.0/24", false)}},
		{Networks: []Network{net("mnbr-4096", "10.0.0.0/24", false), net("br-i", "10.9.0.0/24", true)}},
		{Networks: []Network{net("br-i", "10.9.0.0/24", false)}},
		{Networks: []Network{net("a", "10.0.0.0/8", false), net("b", "192.168.0.0/16", false), net("c", "172.16.0.0/12", true)}},
		{Networks: []Network{net("mesh0", "172.17.0.0/16", false)}, Ports: []Port{
			{Proto: "tcp", HostPort: 8080, Addr: netip.MustParseAddr("172.17.0.2"), Port: 80},
			{Proto: "udp", HostPort: 8080, Addr: netip.MustParseAddr("172.17.0.2"), Port: 80},
			{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 9090, Addr: netip.MustParseAddr("172.17.0.3"), Port: 90}}},
		{Networks: []Network{net("mesh0", "172.17.0.0/16", false)}, Ports: []Port{
			{Proto: "tcp", HostPort: 8080, Addr: netip.MustParseAddr("172.17.0.4"), Port: 8080}}},
		{Networks: []Network{{Bridge: "mesh0", Subnets: []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16")}, NoICC: true, Veths: []string{"mnve01", "mnve02"}}}},
		{Networks: []Network{{Bridge: "mesh0", Subnets: []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16")}, NoICC: true, Veths: []string{"mnve01", "mnve02"},
			Addrs: []netip.Addr{netip.MustParseAddr("172.17.0.2"), netip.MustParseAddr("172.17.0.3")}}, net("br-x", "10.3.0.0/24", false)},
			Links: []Link{{From: netip.MustParseAddr("172.17.0.3"), To: netip.MustParseAddr("172.17.0.2"), Proto: "tcp", Port: 5432},
				{From: netip.MustParseAddr("172.17.0.4"), To: netip.MustParseAddr("172.17.0.2"), Proto: "udp", Port: 53}}},
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	f := newFirewall(t, newNS(t))
	for i := range 40 {
		j := r.IntN(len(states))
		t.Run(fmt.Sprintf("%d-state%d", i, j), func(t *testing.T) { mustApply(t, f, states[j]) })
	}
}
