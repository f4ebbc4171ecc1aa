package firewall

import (
	"bytes"
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// DockerUserChain is the chain of dockerd's filter table that Docker
// leaves to its users: the only one of Docker's chains meshnet writes to.
const DockerUserChain = "DOCKER-USER"

// dockerRecheck is how often AllowInDockerUser looks at the kernel again.
const dockerRecheck = time.Second

// AllowInDockerUser makes forwarding through interfaces whose names start
// with prefix pass dockerd's filter (its FORWARD chain has policy DROP,
// and with br_netfilter even bridged frames cross it): where the chain
// DOCKER-USER exists in the ip or ip6 filter table (iptables-nft, dockerd's
// default here), it gets, first, the two rules `-i PREFIX+ -j ACCEPT` and
// `-o PREFIX+ -j ACCEPT`, written as iptables-nft writes them so that
// `iptables -L DOCKER-USER` shows them. Where the chain does not exist
// (no dockerd) nothing is done. meshnet's own table still filters that
// traffic. It looks at most once a second and reports whether it wrote.
func (f *Firewall) AllowInDockerUser(prefix string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.dockerChecked) < dockerRecheck {
		return false, nil
	}
	c, err := f.conn()
	if err != nil {
		return false, err
	}
	f.dockerChecked = time.Now()
	wrote := false
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		t := &nftables.Table{Family: fam, Name: "filter"}
		chain, err := c.ListChain(t, DockerUserChain)
		if err != nil {
			continue // no such chain: no dockerd, or not its nftables flavour
		}
		rules, err := c.GetRules(t, chain)
		if err != nil {
			return false, fmt.Errorf("reading %s: %w", DockerUserChain, err)
		}
		for _, in := range []bool{false, true} {
			if hasAccept(rules, prefix, in) {
				continue
			}
			c.InsertRule(&nftables.Rule{Table: t, Chain: chain, Exprs: acceptExprs(prefix, in)})
			wrote = true
		}
	}
	if !wrote {
		return false, nil
	}
	f.writes++
	if err := c.Flush(); err != nil {
		f.dockerChecked = time.Time{}
		return false, fmt.Errorf("writing meshnet's rules into %s: %w", DockerUserChain, err)
	}
	return true, nil
}

// acceptExprs is `-i PREFIX+ -j ACCEPT` (in) or `-o PREFIX+ -j ACCEPT`.
func acceptExprs(prefix string, in bool) []expr.Any {
	key := expr.MetaKeyOIFNAME
	if in {
		key = expr.MetaKeyIIFNAME
	}
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(prefix)},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// hasAccept reports whether one of rules is acceptExprs(prefix, in).
func hasAccept(rules []*nftables.Rule, prefix string, in bool) bool {
	key := expr.MetaKeyOIFNAME
	if in {
		key = expr.MetaKeyIIFNAME
	}
	for _, r := range rules {
		var meta, cmp, accept bool
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Meta:
				meta = meta || e.Key == key
			case *expr.Cmp:
				cmp = cmp || (e.Op == expr.CmpOpEq && bytes.Equal(e.Data, []byte(prefix)))
			case *expr.Verdict:
				accept = accept || e.Kind == expr.VerdictAccept
			}
		}
		if meta && cmp && accept && len(r.Exprs) <= 4 {
			return true
		}
	}
	return false
}
