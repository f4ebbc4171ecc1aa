package agent

// The packet filter and NAT (package firewall): derived from the desired
// datapath of every network on this host, so that a bridge is isolated
// from the other networks before it first forwards, and applied by the
// reconciler ahead of every batch of datapath writes. With iptables: false
// there are no rules at all: the user owns NAT and isolation.

import (
	"errors"
	"net/netip"

	"github.com/meshnet/meshnet/firewall"
	"github.com/meshnet/meshnet/overlay"
)

// rulesetOf is the filter for a desired datapath.
func rulesetOf(desired []overlay.Network) firewall.Ruleset {
	var rs firewall.Ruleset
	for _, k := range desired {
		fn := firewall.Network{Bridge: k.BridgeName(), Internal: !k.Forwarding}
		for _, gw := range []netip.Prefix{k.Gateway, k.Gateway6} {
			if gw.IsValid() {
				fn.Subnets = append(fn.Subnets, gw.Masked())
			}
		}
		rs.Networks = append(rs.Networks, fn)
	}
	return rs
}

// syncFirewall applies the filter of the current view. It runs under the
// reconciler's applyMu. A failure is logged when it changes; the next
// batch tries again.
func (a *Agent) syncFirewall() {
	rs := rulesetOf(a.desiredAll())
	rs.Ports = a.publishedPorts()
	err := a.fw.Apply(rs)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != a.fwErr {
		if err != nil {
			a.log.Warn("programming the packet filter failed; retrying with the next change", "err", err)
		} else if a.fwErr != "" {
			a.log.Info("packet filter programmed again")
		}
		a.fwErr = msg
	}
}

// startFirewall sets up the filter, or with iptables: false removes any
// table an earlier run left and says that there are no rules.
func (a *Agent) startFirewall(fw *firewall.Firewall) error {
	if a.cfg.IPTables {
		a.fw = fw
		a.recon.before = a.syncFirewall
		return nil
	}
	a.log.Warn("iptables: false: meshnet writes no packet-filter or NAT rules; sandboxes get no NAT to the outside and networks are not isolated from each other by rules")
	err := fw.Remove()
	return errors.Join(err, fw.Close())
}

// publishedPorts are the DNATs of every sandbox's published ports, to its
// address on the network carrying its default route; a sandbox without
// one (it left that network) publishes nothing.
func (a *Agent) publishedPorts() []firewall.Port {
	a.mu.Lock()
	defer a.mu.Unlock()
	routes := a.defaultRoutes()
	var out []firewall.Port
	for _, s := range a.sandboxes {
		if len(s.Ports) == 0 {
			continue
		}
		var to netip.Addr
		for _, e := range a.sandboxEndpoints(s) {
			if routes[e.ID] {
				to = e.Addr.Addr()
			}
		}
		if !to.IsValid() {
			continue
		}
		for _, m := range s.Ports {
			out = append(out, firewall.Port{Proto: m.Proto, HostIP: m.HostIP, HostPort: m.HostPort, Addr: to, Port: m.Port})
		}
	}
	return out
}
