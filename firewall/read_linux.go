package firewall

// Reading meshnet's tables back from the kernel, in the form they are
// compared in (fingerprint).

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
)

// fingerprint renders a table of family for comparison: set definitions
// with their encoded elements, chains with their hooks, rules with their
// comments and their expressions (canonical_linux.go).
func fingerprint(family nftables.TableFamily, t *table) string {
	byName := map[string]*nftables.Set{}
	for _, s := range t.sets {
		byName[s.name] = &nftables.Set{Name: s.name}
	}
	var b []byte
	for _, s := range t.sets {
		b = fmt.Appendf(b, "set %s %s interval=%v:", s.name, s.kind, s.interval)
		elems, _ := setElements(s)
		for _, e := range sortedElems(elems) {
			b = fmt.Appendf(b, " %s", e)
		}
		b = append(b, '\n')
	}
	for _, c := range t.chains {
		b = fmt.Appendf(b, "chain %s %s\n", c.name, c.hook)
		for _, r := range c.rules {
			exprs, err := ruleExprs(r.ops, byName)
			code := "unencodable"
			if err == nil {
				code = ruleCode(family, exprs)
			}
			b = fmt.Appendf(b, "\t%s %s\n", r.comment, code)
		}
	}
	return string(b)
}

// sortedElems renders set elements as comparable strings.
func sortedElems(elems []nftables.SetElement) []string {
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		s := hex.EncodeToString(e.Key)
		if e.IntervalEnd {
			s += "/end"
		}
		if len(e.Val) > 0 {
			s += ":" + hex.EncodeToString(e.Val)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// readTable reads meshnet's table of a family in the fingerprint's form;
// exists is false when there is none.
// Equivalent to: `nft list table FAMILY meshnet`.
func readTable(c *nftables.Conn, family nftables.TableFamily) (fp string, exists bool, err error) {
	tables, err := c.ListTablesOfFamily(family)
	if err != nil {
		return "", false, fmt.Errorf("listing nftables tables: %w", err)
	}
	var t *nftables.Table
	for _, x := range tables {
		if x.Name == TableName {
			t = x
		}
	}
	if t == nil {
		return "", false, nil
	}
	var b []byte
	sets, err := c.GetSets(t)
	if err != nil {
		return "", true, fmt.Errorf("listing the sets of table %s: %w", TableName, err)
	}
	slices.SortFunc(sets, func(x, y *nftables.Set) int { return setOrder(x.Name) - setOrder(y.Name) })
	for _, s := range sets {
		elems, err := c.GetSetElements(s)
		if err != nil {
			return "", true, fmt.Errorf("listing set %s: %w", s.Name, err)
		}
		b = fmt.Appendf(b, "set %s %s interval=%v:", s.Name, setKind(s), s.Interval)
		for _, e := range sortedElems(elems) {
			b = fmt.Appendf(b, " %s", e)
		}
		b = append(b, '\n')
	}
	chains, err := c.ListChainsOfTableFamily(family)
	if err != nil {
		return "", true, fmt.Errorf("listing chains: %w", err)
	}
	chains = slices.DeleteFunc(chains, func(ch *nftables.Chain) bool { return ch.Table.Name != TableName })
	slices.SortFunc(chains, func(x, y *nftables.Chain) int { return chainOrder(x.Name) - chainOrder(y.Name) })
	for _, ch := range chains {
		b = fmt.Appendf(b, "chain %s %s\n", ch.Name, hookName(family, ch))
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return "", true, fmt.Errorf("listing chain %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			comment, _ := userdata.GetString(r.UserData, userdata.TypeComment)
			b = fmt.Appendf(b, "\t%s %s\n", comment, ruleCode(family, r.Exprs))
		}
	}
	return string(b), true, nil
}

// The order sets and chains are declared in; anything else sorts last,
// so a stray one makes the fingerprints differ.
var (
	setNames   = []string{"bridges", "internal", "egress4", "ports4", "ports4-addr", "vteps", "noicc", "noicc4", "links"}
	chainNames = []string{"loopback", "prerouting", "output", "publish", "input", "forward", "between", "postrouting", "noicc", "routed"}
)

// setKind names a kernel set's types as setSpec.kind does.
func setKind(s *nftables.Set) string {
	if !s.IsMap {
		if len(nftables.ConcatSetTypeElements(s.KeyType)) > 1 {
			return typeKind(s.KeyType)
		}
		return s.KeyType.Name
	}
	return typeKind(s.KeyType) + ":" + typeKind(s.DataType)
}

// typeKind names a (concatenated) type: "addr.proto.port".
func typeKind(t nftables.SetDatatype) string {
	var parts []string
	for _, e := range nftables.ConcatSetTypeElements(t) {
		switch e.Name {
		case nftables.TypeIPAddr.Name:
			parts = append(parts, "addr")
		case nftables.TypeInetProto.Name:
			parts = append(parts, "proto")
		case nftables.TypeInetService.Name:
			parts = append(parts, "port")
		default:
			parts = append(parts, e.Name)
		}
	}
	return strings.Join(parts, ".")
}

func setOrder(name string) int   { return orderOf(setNames, name) }
func chainOrder(name string) int { return orderOf(chainNames, name) }

func orderOf(names []string, name string) int {
	if i := slices.Index(names, name); i >= 0 {
		return i
	}
	return len(names)
}

// hookName says how a chain hooks in, as a chainSpec does: its hook (with
// the type, priority and policy we give every base chain), or "".
func hookName(family nftables.TableFamily, ch *nftables.Chain) string {
	if ch.Hooknum == nil {
		return ""
	}
	accept := ch.Policy == nil || *ch.Policy == nftables.ChainPolicyAccept
	for name, h := range hooks {
		if h.family == family && h.hook == *ch.Hooknum && h.typ == ch.Type &&
			ch.Priority != nil && *ch.Priority == h.prio && accept {
			return name
		}
	}
	return fmt.Sprintf("hook %d type %s (not ours)", *ch.Hooknum, ch.Type)
}

// hooks are our base chains by chainSpec.hook: family, hook, type and
// priority (the bridge family's filter priority is -200).
var hooks = map[string]struct {
	family nftables.TableFamily
	hook   nftables.ChainHook
	typ    nftables.ChainType
	prio   nftables.ChainPriority
}{
	"raw-prerouting": {nftables.TableFamilyINet, *nftables.ChainHookPrerouting, nftables.ChainTypeFilter, *nftables.ChainPriorityRaw},
	"prerouting":     {nftables.TableFamilyINet, *nftables.ChainHookPrerouting, nftables.ChainTypeNAT, *nftables.ChainPriorityNATDest},
	"output":         {nftables.TableFamilyINet, *nftables.ChainHookOutput, nftables.ChainTypeNAT, *nftables.ChainPriorityNATDest},
	"input":          {nftables.TableFamilyINet, *nftables.ChainHookInput, nftables.ChainTypeFilter, *nftables.ChainPriorityFilter},
	"forward":        {nftables.TableFamilyINet, *nftables.ChainHookForward, nftables.ChainTypeFilter, *nftables.ChainPriorityFilter},
	"postrouting":    {nftables.TableFamilyINet, *nftables.ChainHookPostrouting, nftables.ChainTypeNAT, *nftables.ChainPriorityNATSource},
	"bridge-forward": {nftables.TableFamilyBridge, *nftables.ChainHookForward, nftables.ChainTypeFilter, -200},
	"bridge-output":  {nftables.TableFamilyBridge, *nftables.ChainHookOutput, nftables.ChainTypeFilter, -200},
}
