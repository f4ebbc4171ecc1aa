// Package firewall keeps meshnet's packet filter and NAT: one nftables
// table of its own, inet meshnet, declared as a whole and reconciled like
// the datapath (package datapath). It knows nothing of the cluster store,
// gossip or drivers: the caller describes the networks of this host
// (Ruleset) and calls Apply.
//
// The table a host with a bridge network br-1a2b (10.1.0.0/24, a sandbox
// at 10.1.0.2 publishing -p 8080:80), an overlay network mnbr-4096
// (10.0.0.0/24, a sandbox at 10.0.0.3 publishing -p 192.0.2.1:5353:53/udp)
// and an internal network br-9f8e gets, as `nft list table inet meshnet`
// shows it (sets written on one line):
//
//	table inet meshnet {
//		set bridges { type ifname; elements = { "br-1a2b", "br-9f8e", "mnbr-4096" } }
//		set internal { type ifname; elements = { "br-9f8e" } }
//		set egress4 { type ipv4_addr; flags interval; elements = { 10.0.0.0/24, 10.1.0.0/24 } }
//		map ports4 { type inet_proto . inet_service : ipv4_addr . inet_service
//			elements = { tcp . 8080 : 10.1.0.2 . 80 } }
//		map ports4-addr { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
//			elements = { 192.0.2.1 . udp . 5353 : 10.0.0.3 . 53 } }
//		chain loopback {
//			type filter hook prerouting priority raw; policy accept;
//			iifname != "lo" ip daddr 127.0.0.0/8 drop comment "127.0.0.0/8 only from lo"
//			iifname @bridges ip saddr 127.0.0.0/8 drop comment "no loopback source from a sandbox"
//		}
//		chain prerouting {
//			type nat hook prerouting priority dstnat; policy accept;
//			fib daddr type local jump publish comment "to the host"
//		}
//		chain output {
//			type nat hook output priority -100; policy accept;
//			fib daddr type local jump publish comment "from the host to itself"
//		}
//		chain publish {
//			dnat ip to meta l4proto . th dport map @ports4 comment "published on every address"
//			dnat ip to ip daddr . meta l4proto . th dport map @ports4-addr comment "published on one address"
//		}
//		chain input {
//			type filter hook input priority filter; policy accept;
//			iifname @bridges ip daddr 127.0.0.0/8 ct state != established,related drop comment "sandboxes do not reach the host's loopback"
//		}
//		chain forward {
//			type filter hook forward priority filter; policy accept;
//			iifname @internal oifname != @bridges drop comment "internal networks: nothing leaves to the outside"
//			oifname @internal iifname != @bridges drop comment "internal networks: nothing enters from the outside"
//			oifname @bridges ct status dnat accept comment "published ports"
//			iifname @bridges oifname @bridges jump between comment "between networks"
//			oifname @bridges ct state established,related accept comment "answers"
//			oifname @bridges drop comment "nothing else enters a network"
//		}
//		chain between {
//			iifname "br-1a2b" oifname "br-1a2b" accept comment "within br-1a2b"
//			iifname "br-9f8e" oifname "br-9f8e" accept comment "within br-9f8e"
//			iifname "mnbr-4096" oifname "mnbr-4096" accept comment "within mnbr-4096"
//			drop comment "networks are isolated"
//		}
//		chain postrouting {
//			type nat hook postrouting priority srcnat; policy accept;
//			ip saddr @egress4 oifname != @bridges masquerade comment "egress as the host"
//			ct status dnat ip saddr @egress4 oifname @bridges masquerade comment "published ports from sandboxes"
//			ip saddr 127.0.0.0/8 oifname @bridges masquerade comment "published ports from the host's loopback"
//		}
//	}
//
// Sets and maps keyed by interface name, address and port carry what
// grows with the number of networks and published ports, so a packet
// meets a handful of rules and set lookups however many there are; only
// traffic routed from one meshnet bridge to another (rare: isolation drops
// it) walks the short per-network list of the between chain.
//
// Published ports: DNAT in prerouting (from outside and from sandboxes)
// and output (from the host itself, 127.0.0.1 included) for destinations
// local to the host; forwarded DNAT traffic is accepted into any network;
// sandbox and loopback sources are masqueraded so that answers return the
// way they came. route_localnet on the bridges (package datapath) lets a
// loopback-sourced packet leave through them; the input chain keeps
// sandboxes from reaching the host's loopback in return, and the loopback
// chain, before any translation, drops 127.0.0.0/8 arriving on any
// interface but lo and loopback sources from sandboxes, so a port
// published on 127.0.0.1 stays the host's own (CVE-2020-8558).
//
// Egress: traffic from a network's subnet leaving through any interface
// that is not a meshnet bridge is masqueraded to the host's address, so
// sandboxes of bridge and overlay networks alike reach the outside
// through their own host (an overlay network's bridge holds the same
// distributed gateway on every host). IPv6 is routed, not translated
// (Docker's default). Internal networks get neither.
//
// Reconciling: Apply reads the table (chains with their rules' comments,
// sets with their elements) and compares it with the desired one; when
// they differ in anything it replaces the whole table in one netlink
// transaction, so a packet never meets half a ruleset, and a rule deleted
// or added by hand is repaired. A call that changes nothing writes
// nothing. The table is deleted when no network needs it. Other tables
// are never touched; rules in them still apply (an accept here does not
// override a drop elsewhere).
package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// TableName is the name of meshnet's tables: inet meshnet always, bridge
// meshnet while a network has icc off.
const TableName = "meshnet"

// Ruleset is the desired filter and NAT of a host.
type Ruleset struct {
	Networks []Network
	// Ports are the published ports: DNAT from the host to sandboxes.
	Ports []Port
	// Links are the exceptions to icc off.
	Links []Link
	// VXLANPort, if not 0, is the UDP port of the overlay's VXLAN devices:
	// it is answered only from VTEPs (the cluster's members), so that no
	// one else on the underlay can put frames into a network.
	VXLANPort uint16
	VTEPs     []netip.Addr
}

// Port publishes a sandbox's port on the host (IPv4).
type Port struct {
	Proto    string     // "tcp" or "udp"
	HostIP   netip.Addr // zero: every address of the host
	HostPort uint16
	Addr     netip.Addr // the sandbox's address
	Port     uint16
}

func (p Port) hostKey() string {
	if p.HostIP.IsValid() {
		return fmt.Sprintf("%s %s %d", p.HostIP, p.Proto, p.HostPort)
	}
	return fmt.Sprintf("%s %d", p.Proto, p.HostPort)
}

// Network is one network of the host, by its bridge device.
type Network struct {
	// Bridge is the network's Linux bridge (mesh0, br-…, mnbr-VNI).
	Bridge string
	// Subnets are the network's subnets (IPv4 and IPv6).
	Subnets []netip.Prefix
	// Internal networks exchange traffic only among their sandboxes.
	Internal bool
	// NoICC forbids traffic between the network's sandboxes (Docker's
	// icc=false), but for Links. It applies to Veths, the bridge's ports
	// (the host ends of the sandboxes' veths): bridged frames are told by
	// the ports they cross, the bridge's name is not available to match
	// on every kernel (nft_meta_bridge).
	NoICC bool
	Veths []string
	// Addrs are the IPv4 addresses of the sandboxes behind Veths: with
	// icc off, a packet they send is not routed back into the network
	// through its gateway either.
	Addrs []netip.Addr
}

// Link lets one sandbox reach a port of another on a network with icc
// off (Docker's --link to an exposed port), the answers included.
type Link struct {
	From, To netip.Addr // the linking and the linked sandbox (IPv4)
	Proto    string     // "tcp" or "udp"
	Port     uint16
}

// validate checks what the rules are made of.
func (rs Ruleset) validate() error {
	seen := map[string]bool{}
	for _, n := range rs.Networks {
		if n.Bridge == "" || len(n.Bridge) > 15 || strings.ContainsAny(n.Bridge, "/ \t\n\x00") {
			return fmt.Errorf("invalid bridge name %q", n.Bridge)
		}
		if seen[n.Bridge] {
			return fmt.Errorf("bridge %s is listed twice", n.Bridge)
		}
		seen[n.Bridge] = true
		for _, v := range n.Veths {
			if v == "" || len(v) > 15 {
				return fmt.Errorf("network on %s: invalid veth name %q", n.Bridge, v)
			}
		}
		for _, p := range n.Subnets {
			if !p.IsValid() {
				return fmt.Errorf("network on %s: invalid subnet", n.Bridge)
			}
		}
	}
	ports := map[string]bool{}
	for _, l := range rs.Links {
		if !l.From.Is4() || !l.To.Is4() || (l.Proto != "tcp" && l.Proto != "udp") || l.Port == 0 {
			return fmt.Errorf("link %s → %s %d/%s: want IPv4 addresses, tcp or udp and a port", l.From, l.To, l.Port, l.Proto)
		}
	}
	for _, p := range rs.Ports {
		switch {
		case p.Proto != "tcp" && p.Proto != "udp":
			return fmt.Errorf("published port %d: protocol %q is not tcp or udp", p.HostPort, p.Proto)
		case p.HostPort == 0 || p.Port == 0:
			return fmt.Errorf("published port %d/%s: a port is 0", p.HostPort, p.Proto)
		case !p.Addr.Is4() || (p.HostIP.IsValid() && !p.HostIP.Is4()):
			return fmt.Errorf("published port %d/%s: only IPv4 addresses are published", p.HostPort, p.Proto)
		case ports[p.hostKey()]:
			return fmt.Errorf("host port %s is published twice", p.hostKey())
		}
		ports[p.hostKey()] = true
	}
	return nil
}

// table is a desired table in a form both built into nftables objects and
// compared with what the kernel holds: sets with their elements, and
// chains with the comments of their rules, which name each rule.
type table struct {
	family string // "inet" or "bridge"
	sets   []setSpec
	chains []chainSpec
}

type setSpec struct {
	name     string
	kind     string // "ifname", "ipv4_addr", or a map: "proto.port:addr.port", "addr.proto.port:addr.port"
	interval bool
	elems    []string // interface names, prefixes, or map elements ("tcp 8080 : 10.1.0.2 80")
}

type chainSpec struct {
	name  string
	hook  string // "forward", "postrouting"; "" for a regular chain
	rules []ruleSpec
}

// ruleSpec is one rule: its comment names it, ops say what it does.
type ruleSpec struct {
	comment string
	ops     []op
}

// op is one step of a rule, turned into nftables expressions when built.
type op struct {
	kind string // see ruleExprs in nft_linux.go
	arg  string
	inv  bool
}

// render turns a ruleset into the inet table (nil: none at all) and the
// bridge table (nil unless a network has icc off).
func render(rs Ruleset) (inet, bridge *table) {
	if len(rs.Networks) == 0 {
		return nil, nil
	}
	return renderInet(rs), renderBridge(rs)
}

func renderInet(rs Ruleset) *table {
	nets := slices.Clone(rs.Networks)
	slices.SortFunc(nets, func(x, y Network) int { return strings.Compare(x.Bridge, y.Bridge) })
	bridges := setSpec{name: "bridges", kind: "ifname"}
	internal := setSpec{name: "internal", kind: "ifname"}
	egress := setSpec{name: "egress4", kind: "ipv4_addr", interval: true}
	between := chainSpec{name: "between"}
	for _, n := range nets {
		bridges.elems = append(bridges.elems, n.Bridge)
		if n.Internal {
			internal.elems = append(internal.elems, n.Bridge)
		} else {
			for _, p := range n.Subnets {
				if p.Addr().Is4() {
					egress.elems = append(egress.elems, p.Masked().String())
				}
			}
		}
		// With br_netfilter loaded, bridged frames pass here too: the
		// bridge table decides icc off (routed between sandboxes included).
		between.rules = append(between.rules, ruleSpec{comment: "within " + n.Bridge,
			ops: []op{{kind: "iifname", arg: n.Bridge}, {kind: "oifname", arg: n.Bridge}, {kind: "accept"}}})
	}
	slices.Sort(egress.elems)
	egress.elems = slices.Compact(egress.elems)
	anyAddr := setSpec{name: "ports4", kind: "proto.port:addr.port"}
	oneAddr := setSpec{name: "ports4-addr", kind: "addr.proto.port:addr.port"}
	for _, p := range rs.Ports {
		e := fmt.Sprintf("%s : %s %d", p.hostKey(), p.Addr, p.Port)
		if p.HostIP.IsValid() {
			oneAddr.elems = append(oneAddr.elems, e)
		} else {
			anyAddr.elems = append(anyAddr.elems, e)
		}
	}
	slices.Sort(anyAddr.elems)
	slices.Sort(oneAddr.elems)
	between.rules = append(between.rules, ruleSpec{comment: "networks are isolated", ops: []op{{kind: "drop"}}})
	forward := chainSpec{name: "forward", hook: "forward", rules: []ruleSpec{
		// Only what crosses to or from the outside: with br_netfilter
		// (dockerd loads it), frames bridged within a network cross this
		// hook too, with the bridge as both interfaces; traffic between
		// networks is the between chain's.
		{comment: "internal networks: nothing leaves to the outside", ops: []op{{kind: "iifname@", arg: "internal"}, {kind: "oifname@", arg: "bridges", inv: true}, {kind: "drop"}}},
		{comment: "internal networks: nothing enters from the outside", ops: []op{{kind: "oifname@", arg: "internal"}, {kind: "iifname@", arg: "bridges", inv: true}, {kind: "drop"}}},
		{comment: "published ports", ops: []op{{kind: "oifname@", arg: "bridges"}, {kind: "ct-dnat"}, {kind: "accept"}}},
		{comment: "between networks", ops: []op{{kind: "iifname@", arg: "bridges"}, {kind: "oifname@", arg: "bridges"}, {kind: "jump", arg: "between"}}},
		{comment: "answers", ops: []op{{kind: "oifname@", arg: "bridges"}, {kind: "ct-established"}, {kind: "accept"}}},
		{comment: "nothing else enters a network", ops: []op{{kind: "oifname@", arg: "bridges"}, {kind: "drop"}}},
	}}
	post := chainSpec{name: "postrouting", hook: "postrouting", rules: []ruleSpec{
		{comment: "egress as the host", ops: []op{{kind: "ip-saddr@", arg: "egress4"}, {kind: "oifname@", arg: "bridges", inv: true}, {kind: "masquerade"}}},
		{comment: "published ports from sandboxes", ops: []op{{kind: "ct-dnat"}, {kind: "ip-saddr@", arg: "egress4"}, {kind: "oifname@", arg: "bridges"}, {kind: "masquerade"}}},
		{comment: "published ports from the host's loopback", ops: []op{{kind: "ip-saddr-loopback"}, {kind: "oifname@", arg: "bridges"}, {kind: "masquerade"}}},
	}}
	// Before any translation: loopback addresses only on lo. Without
	// this, a port published on 127.0.0.1 would be translated for a
	// neighbour or a sandbox that sends to 127.0.0.1 through the host, and
	// route_localnet on the bridges would let a sandbox claim a loopback
	// source.
	guard := chainSpec{name: "loopback", hook: "raw-prerouting", rules: []ruleSpec{
		{comment: "127.0.0.0/8 only from lo", ops: []op{{kind: "iifname", arg: "lo", inv: true}, {kind: "ip-daddr-loopback"}, {kind: "drop"}}},
		{comment: "no loopback source from a sandbox", ops: []op{{kind: "iifname@", arg: "bridges"}, {kind: "ip-saddr-loopback"}, {kind: "drop"}}},
	}}
	pre := chainSpec{name: "prerouting", hook: "prerouting", rules: []ruleSpec{
		{comment: "to the host", ops: []op{{kind: "fib-daddr-local"}, {kind: "jump", arg: "publish"}}},
	}}
	output := chainSpec{name: "output", hook: "output", rules: []ruleSpec{
		{comment: "from the host to itself", ops: []op{{kind: "fib-daddr-local"}, {kind: "jump", arg: "publish"}}},
	}}
	publish := chainSpec{name: "publish", rules: []ruleSpec{
		{comment: "published on every address", ops: []op{{kind: "dnat-map", arg: "ports4"}}},
		{comment: "published on one address", ops: []op{{kind: "dnat-map-addr", arg: "ports4-addr"}}},
	}}
	input := chainSpec{name: "input", hook: "input", rules: []ruleSpec{
		{comment: "sandboxes do not reach the host's loopback", ops: []op{{kind: "iifname@", arg: "bridges"}, {kind: "ip-daddr-loopback"}, {kind: "ct-established", inv: true}, {kind: "drop"}}},
	}}
	sets := []setSpec{bridges, internal, egress, anyAddr, oneAddr}
	if rs.VXLANPort != 0 {
		vteps := setSpec{name: "vteps", kind: "ipv4_addr", interval: true}
		for _, a := range rs.VTEPs {
			if a.Is4() {
				vteps.elems = append(vteps.elems, netip.PrefixFrom(a, 32).String())
			}
		}
		slices.Sort(vteps.elems)
		vteps.elems = slices.Compact(vteps.elems)
		sets = append(sets, vteps)
		port := strconv.Itoa(int(rs.VXLANPort))
		input.rules = append(input.rules,
			ruleSpec{comment: "VXLAN from the cluster's members only", ops: []op{{kind: "udp-dport", arg: port}, {kind: "ip-saddr@", arg: "vteps", inv: true}, {kind: "drop"}}},
			ruleSpec{comment: "no VXLAN over IPv6", ops: []op{{kind: "protocol", arg: "ip6"}, {kind: "udp-dport", arg: port}, {kind: "drop"}}})
	}
	return &table{family: "inet", sets: sets,
		chains: []chainSpec{guard, pre, output, publish, input, forward, between, post}}
}

// renderBridge is the table of bridged traffic, for icc off:
//
//	table bridge meshnet {
//		set noicc { type ifname; elements = { "mnve1a2b3c4d5e", "mnve6f7a8b9c0d" } }
//		set noicc4 { type ipv4_addr; flags interval; elements = { 172.17.0.2, 172.17.0.3 } }
//		set links { type ipv4_addr . ipv4_addr . inet_proto . inet_service
//			elements = { 172.17.0.3 . 172.17.0.2 . tcp . 5432 } }
//		chain forward {
//			type filter hook forward priority filter; policy accept;
//			iifname @noicc oifname @noicc jump noicc comment "icc off"
//		}
//		chain noicc {
//			meta protocol ip ip saddr . ip daddr . meta l4proto . th dport @links accept comment "linked, to the exposed ports"
//			meta protocol ip ip daddr . ip saddr . meta l4proto . th sport @links accept comment "linked, the answers"
//			meta protocol ip drop comment "no IPv4 between sandboxes"
//			meta protocol ip6 drop comment "no IPv6 between sandboxes"
//		}
//		chain routed {
//			type filter hook output priority filter; policy accept;
//			oifname @noicc meta protocol ip ip saddr @noicc4 drop comment "icc off, routed through the gateway"
//		}
//	}
//
// The set holds the veths of networks with icc off; ports of two bridges
// never exchange frames, so a frame between two of them is between two
// sandboxes of one such network. Only frames bridged from one sandbox to
// another meet the chain: traffic to the host (the gateway) and routed
// traffic (published ports) do not; ARP passes.
func renderBridge(rs Ruleset) *table {
	noicc := setSpec{name: "noicc", kind: "ifname"}
	noicc4 := setSpec{name: "noicc4", kind: "ipv4_addr", interval: true}
	anyOff := false
	for _, n := range rs.Networks {
		if n.NoICC {
			anyOff = true
			noicc.elems = append(noicc.elems, n.Veths...)
			for _, a := range n.Addrs {
				noicc4.elems = append(noicc4.elems, netip.PrefixFrom(a, 32).String())
			}
		}
	}
	if !anyOff {
		return nil
	}
	slices.Sort(noicc.elems)
	noicc.elems = slices.Compact(noicc.elems)
	slices.Sort(noicc4.elems)
	noicc4.elems = slices.Compact(noicc4.elems)
	links := setSpec{name: "links", kind: kindLinks}
	for _, l := range rs.Links {
		links.elems = append(links.elems, fmt.Sprintf("%s %s %s %d", l.From, l.To, l.Proto, l.Port))
	}
	slices.Sort(links.elems)
	links.elems = slices.Compact(links.elems)
	forward := chainSpec{name: "forward", hook: "bridge-forward", rules: []ruleSpec{
		{comment: "icc off", ops: []op{{kind: "iifname@", arg: "noicc"}, {kind: "oifname@", arg: "noicc"}, {kind: "jump", arg: "noicc"}}},
	}}
	chain := chainSpec{name: "noicc", rules: []ruleSpec{
		{comment: "linked, to the exposed ports", ops: []op{{kind: "protocol", arg: "ip"}, {kind: "link@", arg: "links"}, {kind: "accept"}}},
		{comment: "linked, the answers", ops: []op{{kind: "protocol", arg: "ip"}, {kind: "link-reply@", arg: "links"}, {kind: "accept"}}},
		{comment: "no IPv4 between sandboxes", ops: []op{{kind: "protocol", arg: "ip"}, {kind: "drop"}}},
		{comment: "no IPv6 between sandboxes", ops: []op{{kind: "protocol", arg: "ip6"}, {kind: "drop"}}},
	}}
	// A sandbox could still send to its gateway's MAC for a neighbour's
	// address and have the host route it back into the bridge: that packet
	// leaves the bridge device with the sandbox's own address as source
	// (a published port reached from a sandbox is masqueraded first).
	routed := chainSpec{name: "routed", hook: "bridge-output", rules: []ruleSpec{
		{comment: "icc off, routed through the gateway", ops: []op{{kind: "oifname@", arg: "noicc"}, {kind: "protocol", arg: "ip"}, {kind: "ip-saddr@", arg: "noicc4"}, {kind: "drop"}}},
	}}
	return &table{family: "bridge", sets: []setSpec{noicc, noicc4, links}, chains: []chainSpec{forward, chain, routed}}
}

// kindLinks is the key of the links set: from . to . proto . port.
const kindLinks = "addr.addr.proto.port"

// String renders the table in a form close to `nft list table`, for
// tests and messages.
func (t *table) String() string {
	if t == nil {
		return "(no table)\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table %s\n", t.family)
	for _, s := range t.sets {
		fmt.Fprintf(&b, "set %s %s: %s\n", s.name, s.kind, strings.Join(s.elems, " "))
	}
	for _, c := range t.chains {
		fmt.Fprintf(&b, "chain %s", c.name)
		if c.hook != "" {
			fmt.Fprintf(&b, " (hook %s)", c.hook)
		}
		b.WriteString("\n")
		for _, r := range c.rules {
			fmt.Fprintf(&b, "\t%s\n", r.comment)
		}
	}
	return b.String()
}
