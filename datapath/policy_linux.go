package datapath

// A network's kernel policy (Network.Forwarding) is state like its devices:
// read and repaired on every apply. The host holds every network's gateway,
// so a network that does not forward must be kept from routing in both
// families. IPv4 has a per-interface switch that governs packets arriving
// on the interface (net.ipv4.conf.BRIDGE.forwarding; writing
// net.ipv4.ip_forward resets it on every interface, which the next apply
// repairs). IPv6 has none that works: ip6_forward only looks at
// net.ipv6.conf.all.forwarding. So an isolated network with an IPv6
// gateway gets a policy rule that answers whatever arrives on its bridge
// for elsewhere with "prohibited", after the local table (the host's own
// addresses, the gateway's among them, are still reached) and before the
// main table. Rules are not devices: they name their input interface and
// outlive it, so removing a network removes its rule explicitly, and Apply
// sweeps the rules at IsolationRulePriority that no desired network wants.

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/meshnet/meshnet/internal/netlinksafe"
)

// isolationRules is one dump of our IPv6 isolation rules, the names of the
// interfaces they match; nil when the kernel has no IPv6, which leaves
// nothing to isolate.
type isolationRules map[string]bool

// ensurePolicy makes the policy of n's bridge, called name, match
// n.Forwarding and n.RouteLocalnet: its IPv4 forwarding and route_localnet
// switches and, unless rules is nil, its IPv6 isolation rule. rules is
// updated.
// Equivalent to: `sysctl -w net.ipv4.conf.BRIDGE.forwarding=0|1` and
// `ip -6 rule add|del priority 1000 iif BRIDGE prohibit`, each only when
// the kernel holds something else.
func (d *Datapath) ensurePolicy(name string, n *Network, rules isolationRules) error {
	value := "0"
	if n.Forwarding {
		value = "1"
	}
	localnet := "0"
	if n.RouteLocalnet {
		localnet = "1"
	}
	errs := []error{ensureSysctl(d.ns, "/proc/sys/net/ipv4/conf/"+name+"/forwarding", value),
		ensureSysctl(d.ns, "/proc/sys/net/ipv4/conf/"+name+"/route_localnet", localnet)}
	if rules == nil {
		return errors.Join(errs...)
	}
	switch want := n.isolated6(); {
	case want && !rules[name]:
		if err := d.addIsolationRule(name); err != nil {
			errs = append(errs, err)
		} else {
			rules[name] = true
		}
	case !want && rules[name]:
		if err := d.delIsolationRule(name); err != nil {
			errs = append(errs, err)
		} else {
			delete(rules, name)
		}
	}
	return errors.Join(errs...)
}

// sweepIsolationRules deletes the isolation rules whose interface is not
// in keep: those of networks removed while their bridge was already gone,
// or renamed by hand, or that Apply no longer knows.
func (d *Datapath) sweepIsolationRules(rules isolationRules, keep map[string]bool) error {
	var errs []error
	for name := range rules {
		if keep[name] {
			continue
		}
		if err := d.delIsolationRule(name); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(rules, name)
	}
	return errors.Join(errs...)
}

// isolationRule is our rule for the bridge called name.
func isolationRule(name string) *netlink.Rule {
	r := netlink.NewRule()
	r.Family = unix.AF_INET6
	r.Priority = IsolationRulePriority
	r.IifName = name
	r.Type = unix.RTN_PROHIBIT // = FR_ACT_PROHIBIT, the rule's action
	return r
}

// addIsolationRule keeps IPv6 arriving on the bridge called name from
// being routed. An existing identical rule is not an error.
// Equivalent to: `ip -6 rule add priority 1000 iif BRIDGE prohibit`.
func (d *Datapath) addIsolationRule(name string) error {
	if err := d.h.RuleAdd(isolationRule(name)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("adding IPv6 isolation rule for %s: %w", name, err)
	}
	return nil
}

// delIsolationRule deletes the isolation rule of the bridge called name.
// A missing rule, or a kernel without IPv6, is not an error. The kernel
// matches the action too, so no other rule at our priority is deleted.
// Equivalent to: `ip -6 rule del priority 1000 iif BRIDGE prohibit`.
func (d *Datapath) delIsolationRule(name string) error {
	err := d.h.RuleDel(isolationRule(name))
	if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EAFNOSUPPORT) {
		return fmt.Errorf("deleting IPv6 isolation rule for %s: %w", name, err)
	}
	return nil
}

// listIsolationRules dumps the IPv6 rules and returns ours: prohibit rules
// at IsolationRulePriority with an input interface. It reads the rule
// messages itself because netlink's RuleList leaves out a rule's action
// (the header's type byte), and without it an administrator's rule at our
// priority would pass for ours.
// Equivalent to: `ip -6 rule show priority 1000`.
func (d *Datapath) listIsolationRules() (isolationRules, error) {
	msgs, err := netlinksafe.Dump("IPv6 rules", func() ([][]byte, error) {
		req := &nl.NetlinkRequest{
			NlMsghdr: unix.NlMsghdr{
				Len:   unix.SizeofNlMsghdr,
				Type:  unix.RTM_GETRULE,
				Flags: unix.NLM_F_REQUEST | unix.NLM_F_DUMP,
			},
			Sockets: map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: d.rt},
		}
		req.AddData(nl.NewIfInfomsg(unix.AF_INET6))
		msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWRULE)
		if err != nil {
			return nil, err
		}
		return msgs, nil
	})
	if errors.Is(err, unix.EAFNOSUPPORT) {
		return nil, nil // no IPv6 in this kernel
	}
	if err != nil {
		return nil, err
	}
	rules := make(isolationRules)
	for _, m := range msgs {
		if name, ok := parseIsolationRule(m); ok {
			rules[name] = true
		}
	}
	return rules, nil
}

// parseIsolationRule returns the input interface of one RTM_NEWRULE
// message (struct fib_rule_hdr and attributes) if it is one of our rules.
func parseIsolationRule(m []byte) (iif string, ok bool) {
	if len(m) < unix.SizeofRtMsg {
		return "", false
	}
	// fib_rule_hdr has the layout of rtmsg; its action is rtmsg's type.
	hdr := nl.DeserializeRtMsg(m)
	if hdr.Family != unix.AF_INET6 || hdr.Type != unix.RTN_PROHIBIT {
		return "", false
	}
	attrs, err := nl.ParseRouteAttr(m[unix.SizeofRtMsg:])
	if err != nil {
		return "", false
	}
	prio := 0 // a rule without FRA_PRIORITY has priority 0
	for _, a := range attrs {
		switch a.Attr.Type {
		case nl.FRA_PRIORITY:
			if len(a.Value) >= 4 {
				prio = int(nl.NativeEndian().Uint32(a.Value))
			}
		case nl.FRA_IIFNAME:
			iif = unix.ByteSliceToString(a.Value)
		}
	}
	return iif, prio == IsolationRulePriority && iif != ""
}
