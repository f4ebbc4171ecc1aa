package firewall

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/nftables"
)

// rulesetWithPorts is one bridge network with n published ports, one
// sandbox each.
func rulesetWithPorts(n int) Ruleset {
	rs := Ruleset{Networks: []Network{net("mesh0", "172.17.0.0/16", false)}}
	for i := range n {
		rs.Ports = append(rs.Ports, Port{Proto: "tcp", HostPort: uint16(20000 + i),
			Addr: netip.AddrFrom4([4]byte{172, 17, byte(i >> 8), byte(2 + i%250)}), Port: 80})
	}
	return rs
}

// rules counts the rules of meshnet's inet table.
func rules(b *testing.B, f *Firewall) int {
	c, err := f.conn()
	if err != nil {
		b.Fatal(err)
	}
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		rs, err := c.GetRules(tbl, ch)
		if err != nil {
			b.Fatal(err)
		}
		n += len(rs)
	}
	return n
}

// BenchmarkPublish programs N published ports at once (the table from
// nothing) and reports the rules the table holds: they do not grow with
// the ports, which live in a map.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("ports=%d", n), func(b *testing.B) {
			f := newFirewall(b, newNS(b))
			rs := rulesetWithPorts(n)
			for b.Loop() {
				b.StopTimer()
				if err := f.Remove(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := f.Apply(rs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rules(b, f)), "rules")
		})
	}
}

// BenchmarkApplyNoop reapplies an unchanged table of 1,000 ports, reading
// the kernel's to compare (as Apply does every Recheck; in between it
// trusts what it wrote and costs nothing).
func BenchmarkApplyNoop(b *testing.B) {
	f := newFirewall(b, newNS(b))
	rs := rulesetWithPorts(1000)
	if err := f.Apply(rs); err != nil {
		b.Fatal(err)
	}
	writes := f.Writes()
	for b.Loop() {
		if err := f.Apply(rs); err != nil {
			b.Fatal(err)
		}
	}
	if f.Writes() != writes {
		b.Fatal("a no-op apply wrote")
	}
}
