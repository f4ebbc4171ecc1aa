package firewall

// Encoding a table (sets, maps, chains, rules) as nftables netlink
// objects.

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

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
		case "udp-dport":
			port, err := strconv.ParseUint(o.arg, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("udp-dport %q", o.arg)
			}
			out = append(out,
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(port))})
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
