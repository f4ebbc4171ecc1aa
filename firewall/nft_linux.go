package firewall

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Firewall programs meshnet's table in one network namespace. Its methods
// are safe for concurrent use; they are serialised.
type Firewall struct {
	mu     sync.Mutex
	ns     netns.NsHandle // guarded by mu; the namespace (None: the caller's)
	closed bool           // guarded by mu
	writes int            // guarded by mu; transactions sent, for tests

	// The tables last written or found right, and when the kernel was
	// last read: an Apply of the same tables within recheck trusts them
	// and reads nothing (the kernel read costs ~10 ms with 1,000 ports).
	last    map[string]string // guarded by mu; family → fingerprint
	checked time.Time         // guarded by mu
	recheck time.Duration
}

// Recheck is how long Apply trusts that the kernel still holds what it
// wrote; after that it reads the tables again and repairs drift. It is
// shorter than the agent's resync (30 s), so that every resync reads.
const Recheck = 25 * time.Second

// New returns a Firewall for the namespace hostNS (netns.None() for the
// caller's own). The handle may be closed once New returns.
func New(hostNS netns.NsHandle) (*Firewall, error) {
	f := &Firewall{ns: netns.None(), recheck: Recheck}
	if hostNS.IsOpen() {
		fd, err := unix.Dup(int(hostNS))
		if err != nil {
			return nil, fmt.Errorf("keeping the host namespace: %w", err)
		}
		f.ns = netns.NsHandle(fd)
	}
	return f, nil
}

// Close releases the namespace handle. It leaves the rules in place (they
// keep working while the agent is down) and is idempotent.
func (f *Firewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		if f.ns.IsOpen() {
			f.ns.Close()
		}
	}
	return nil
}

var errClosed = errors.New("firewall closed")

func (f *Firewall) conn() (*nftables.Conn, error) {
	if f.closed {
		return nil, errClosed
	}
	var opts []nftables.ConnOption
	if f.ns.IsOpen() {
		opts = append(opts, nftables.WithNetNSFd(int(f.ns)))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("opening nftables: %w", err)
	}
	return c, nil
}

// families are the tables meshnet keeps: one per family, both called
// TableName.
var families = []struct {
	name   string
	family nftables.TableFamily
}{{"inet", nftables.TableFamilyINet}, {"bridge", nftables.TableFamilyBridge}}

// Apply makes meshnet's tables exactly the ones the ruleset asks for
// (none for no networks; the bridge one only for icc off). Tables that
// differ are replaced, in one transaction. See the package comment.
func (f *Firewall) Apply(rs Ruleset) error {
	if err := rs.validate(); err != nil {
		return err
	}
	inet, bridge := render(rs)
	return f.apply(map[string]*table{"inet": inet, "bridge": bridge})
}

// Remove deletes meshnet's tables, if there are any.
// Equivalent to: `nft delete table inet meshnet; nft delete table bridge meshnet`.
func (f *Firewall) Remove() error {
	return f.apply(map[string]*table{})
}

func (f *Firewall) apply(want map[string]*table) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fps := map[string]string{}
	for name, t := range want {
		if t != nil {
			fps[name] = fingerprint(t)
		}
	}
	if maps.Equal(fps, f.last) && time.Since(f.checked) < f.recheck {
		return nil
	}
	c, err := f.conn()
	if err != nil {
		return err
	}
	f.last, f.checked = nil, time.Time{} // known again only once written or found right
	changed := false
	for _, fam := range families {
		have, exists, err := readTable(c, fam.family)
		if err != nil {
			return err
		}
		t := want[fam.name]
		switch {
		case t == nil && !exists, t != nil && exists && have == fingerprint(t):
			continue
		case exists:
			c.DelTable(&nftables.Table{Family: fam.family, Name: TableName})
		}
		if t != nil {
			if err := build(c, fam.family, t); err != nil {
				return err
			}
		}
		changed = true
	}
	if changed {
		f.writes++
		if err := c.Flush(); err != nil {
			return fmt.Errorf("writing meshnet's nftables tables: %w", err)
		}
	}
	f.last, f.checked = fps, time.Now()
	return nil
}

// Writes counts the transactions sent to the kernel.
func (f *Firewall) Writes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

// fingerprint renders a table for comparison: set definitions with their
// encoded elements, chains with their hooks and rule comments.
func fingerprint(t *table) string {
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
			b = fmt.Appendf(b, "\t%s\n", r.comment)
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
			b = fmt.Appendf(b, "\t%s\n", comment)
		}
	}
	return string(b), true, nil
}

// The order sets and chains are declared in; anything else sorts last,
// so a stray one makes the fingerprints differ.
var (
	setNames   = []string{"bridges", "internal", "egress4", "ports4", "ports4-addr", "noicc", "noicc4", "links"}
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

// build adds the whole table to the batch of c.
// Equivalent to: `nft -f` of the listing in the package comment.
func build(c *nftables.Conn, family nftables.TableFamily, t *table) error {
	tbl := c.AddTable(&nftables.Table{Family: family, Name: TableName})
	sets := map[string]*nftables.Set{}
	for _, s := range t.sets {
		elems, keyType := setElements(s)
		set := &nftables.Set{Table: tbl, Name: s.name, KeyType: keyType, Interval: s.interval}
		switch s.kind {
		case "ifname":
			set.KeyByteOrder = binaryutil.NativeEndian // as nft declares ifname: so that it lists the names
		case kindPortMap, kindAddrPortMap:
			set.IsMap, set.Concatenation = true, true
			set.DataType = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
		case kindLinks:
			set.Concatenation = true
		}
		if err := c.AddSet(set, elems); err != nil {
			return fmt.Errorf("adding set %s: %w", s.name, err)
		}
		sets[s.name] = set
	}
	chains := map[string]*nftables.Chain{}
	accept := nftables.ChainPolicyAccept
	for _, cs := range t.chains {
		ch := &nftables.Chain{Name: cs.name, Table: tbl}
		if h, ok := hooks[cs.hook]; ok {
			prio := h.prio
			ch.Type, ch.Hooknum, ch.Priority, ch.Policy = h.typ, nftables.ChainHookRef(h.hook), &prio, &accept
		}
		chains[cs.name] = c.AddChain(ch)
	}
	for _, cs := range t.chains {
		for _, r := range cs.rules {
			exprs, err := ruleExprs(r.ops, sets)
			if err != nil {
				return fmt.Errorf("rule %q: %w", r.comment, err)
			}
			c.AddRule(&nftables.Rule{Table: tbl, Chain: chains[cs.name], Exprs: exprs,
				UserData: userdata.AppendString(nil, userdata.TypeComment, r.comment)})
		}
	}
	return nil
}

// setElements encodes a set's elements and returns its key type.
func setElements(s setSpec) ([]nftables.SetElement, nftables.SetDatatype) {
	var out []nftables.SetElement
	switch s.kind {
	case "ifname":
		for _, e := range s.elems {
			out = append(out, nftables.SetElement{Key: ifname(e)})
		}
		return out, nftables.TypeIFName
	case kindLinks:
		for _, e := range s.elems {
			f := strings.Fields(e) // FROM TO PROTO PORT
			key := append(netip.MustParseAddr(f[0]).AsSlice(), netip.MustParseAddr(f[1]).AsSlice()...)
			key = append(key, protoNum(f[2]), 0, 0, 0)
			out = append(out, nftables.SetElement{Key: append(key, port4(f[3])...)})
		}
		return out, nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	case kindPortMap, kindAddrPortMap:
		for _, e := range s.elems {
			out = append(out, mapElement(e))
		}
		if s.kind == kindPortMap {
			return out, nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
		}
		return out, nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	default: // ipv4_addr, intervals from prefixes
		for _, e := range s.elems {
			p := netip.MustParsePrefix(e)
			start := p.Masked().Addr()
			end := lastAddr(p).Next()
			out = append(out, nftables.SetElement{Key: start.AsSlice()})
			if end.IsValid() {
				out = append(out, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
			}
		}
		return out, nftables.TypeIPAddr
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

const (
	kindPortMap     = "proto.port:addr.port"
	kindAddrPortMap = "addr.proto.port:addr.port"
)

// mapElement encodes a port map element written "[HOSTIP] PROTO HOSTPORT
// : ADDR PORT": each field of a concatenation takes 4 bytes (a register),
// protocols one byte and ports two in network order, zero-padded.
func mapElement(e string) nftables.SetElement {
	keyPart, valPart, _ := strings.Cut(e, " : ")
	kf, vf := strings.Fields(keyPart), strings.Fields(valPart)
	var key []byte
	if len(kf) == 3 {
		key = append(key, netip.MustParseAddr(kf[0]).AsSlice()...)
		kf = kf[1:]
	}
	key = append(key, protoNum(kf[0]), 0, 0, 0)
	key = append(key, port4(kf[1])...)
	val := append(netip.MustParseAddr(vf[0]).AsSlice(), port4(vf[1])...)
	return nftables.SetElement{Key: key, Val: val}
}

// protoNum is a protocol's number.
func protoNum(proto string) byte {
	if proto == "udp" {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

// port4 is a port as a concatenation field: two bytes big-endian, padded.
func port4(s string) []byte {
	p, _ := strconv.ParseUint(s, 10, 16)
	return []byte{byte(p >> 8), byte(p), 0, 0}
}

// ifname is an interface name as nftables compares it: 16 bytes, padded.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// ruleExprs turns a rule's ops into nftables expressions.
func ruleExprs(ops []op, sets map[string]*nftables.Set) ([]expr.Any, error) {
	var out []expr.Any
	isIPv4 := false // a "protocol ip" op matched already (the bridge family has no nfproto of IPv4)
	lookup := func(name string, inv bool) (expr.Any, error) {
		s := sets[name]
		if s == nil {
			return nil, fmt.Errorf("no set %s", name)
		}
		return &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, Invert: inv}, nil
	}
	for _, o := range ops {
		switch o.kind {
		case "iifname", "oifname":
			op := expr.CmpOpEq
			if o.inv {
				op = expr.CmpOpNeq
			}
			out = append(out, &expr.Meta{Key: metaKey(o.kind), Register: 1},
				&expr.Cmp{Op: op, Register: 1, Data: ifname(o.arg)})
		case "iifname@", "oifname@":
			l, err := lookup(o.arg, o.inv)
			if err != nil {
				return nil, err
			}
			out = append(out, &expr.Meta{Key: metaKey(o.kind[:7]), Register: 1}, l)
		case "ip-saddr@":
			l, err := lookup(o.arg, o.inv)
			if err != nil {
				return nil, err
			}
			if !isIPv4 {
				out = append(out,
					&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}})
			}
			out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}, l)
		case "protocol":
			proto := []byte{0x08, 0x00} // ETH_P_IP, network order
			isIPv4 = o.arg == "ip"
			if o.arg == "ip6" {
				proto = []byte{0x86, 0xdd}
			}
			out = append(out, &expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: proto})
		case "link@", "link-reply@":
			s := sets[o.arg]
			if s == nil {
				return nil, fmt.Errorf("no set %s", o.arg)
			}
			// ip saddr . ip daddr . meta l4proto . th dport, or for the
			// answers ip daddr . ip saddr . meta l4proto . th sport, in
			// consecutive 32-bit registers from 8.
			src, dst, port := uint32(12), uint32(16), uint32(2)
			if o.kind == "link-reply@" {
				src, dst, port = 16, 12, 0
			}
			out = append(out,
				&expr.Payload{DestRegister: 8, Base: expr.PayloadBaseNetworkHeader, Offset: src, Len: 4},
				&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseNetworkHeader, Offset: dst, Len: 4},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 10},
				&expr.Payload{DestRegister: 11, Base: expr.PayloadBaseTransportHeader, Offset: port, Len: 2},
				&expr.Lookup{SourceRegister: 8, SetName: s.Name, SetID: s.ID})
		case "ct-dnat":
			out = append(out,
				&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
					Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: binaryutil.NativeEndian.PutUint32(0)},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)})
		case "ip-saddr-loopback", "ip-daddr-loopback":
			offset := uint32(12)
			if o.kind == "ip-daddr-loopback" {
				offset = 16
			}
			out = append(out,
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{127, 0, 0, 0}})
		case "fib-daddr-local":
			out = append(out,
				&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
		case "dnat-map", "dnat-map-addr":
			s := sets[o.arg]
			if s == nil {
				return nil, fmt.Errorf("no map %s", o.arg)
			}
			// dnat ip to [ip daddr .] meta l4proto . th dport map @MAP:
			// the key is built in consecutive 32-bit registers from
			// NFT_REG32_00 (8); the looked-up address . port lands in
			// NFT_REG_1 (its first 32 bits: register 8) and register 9.
			out = append(out,
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}})
			reg := uint32(8)
			if o.kind == "dnat-map-addr" {
				out = append(out, &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4})
				reg++
			}
			out = append(out,
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
				&expr.Payload{DestRegister: reg + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: 8, SetName: s.Name, SetID: s.ID, DestRegister: 1, IsDestRegSet: true},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9, Specified: true})
		case "ct-established":
			out = append(out,
				&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
					Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
					Xor:  binaryutil.NativeEndian.PutUint32(0)},
				&expr.Cmp{Op: cmpOp(!o.inv), Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)})
		case "accept":
			out = append(out, &expr.Verdict{Kind: expr.VerdictAccept})
		case "drop":
			out = append(out, &expr.Verdict{Kind: expr.VerdictDrop})
		case "jump":
			out = append(out, &expr.Verdict{Kind: expr.VerdictJump, Chain: o.arg})
		case "masquerade":
			out = append(out, &expr.Masq{})
		default:
			return nil, fmt.Errorf("unknown op %q", o.kind)
		}
	}
	return out, nil
}

// ipsDstNAT is IPS_DST_NAT of the conntrack status: the connection's
// destination was translated.
const ipsDstNAT = 1 << 5

// cmpOp is "!= 0" (a bit set) or, inverted, "== 0".
func cmpOp(set bool) expr.CmpOp {
	if set {
		return expr.CmpOpNeq
	}
	return expr.CmpOpEq
}

func metaKey(kind string) expr.MetaKey {
	if kind == "iifname" {
		return expr.MetaKeyIIFNAME
	}
	return expr.MetaKeyOIFNAME
}
