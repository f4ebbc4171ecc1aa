package agent

// The packet filter and NAT (package firewall): derived from the desired
// datapath of every network on this host (and the drivers' say on icc),
// so that a bridge is isolated from the other networks before it first
// forwards, and applied by the reconciler ahead of every batch of
// datapath writes. With iptables: false
// there are no rules at all: the user owns NAT and isolation.

import (
	"errors"
	"net/netip"
	"strings"

	"github.com/meshnet/meshnet/agent/driver"

	"github.com/meshnet/meshnet/datapath"
	"github.com/meshnet/meshnet/firewall"
)

// ruleset is the filter of the current view: every network this host
// programs, by its bridge (and the ports of a network with icc off), the
// published ports, and the links that icc off lets through.
func (a *Agent) ruleset() firewall.Ruleset {
	a.mu.Lock()
	defer a.mu.Unlock()
	var rs firewall.Ruleset
	for _, n := range a.networks {
		d, ok := a.driverOf(n)
		if !ok {
			continue
		}
		f, ok := d.(driver.ICCFilter)
		noICC := ok && !f.ICC(n)
		// The filter needs a network's devices and settings, and its
		// endpoints only when icc is off: the others are rendered with
		// one endpoint (which tells the driver the network is on this
		// host), so that a ruleset costs no more with many endpoints.
		limit := 1
		if noICC {
			limit = -1
		}
		local := a.someLocalEndpoints(n.ID, limit)
		k, ok := d.Render(driver.View{Network: n, Local: local})
		if !ok {
			continue
		}
		fn := firewall.Network{Bridge: k.BridgeName(), Internal: !k.Forwarding, NoICC: noICC}
		for _, gw := range []netip.Prefix{k.Gateway, k.Gateway6} {
			if gw.IsValid() {
				fn.Subnets = append(fn.Subnets, gw.Masked())
			}
		}
		for _, le := range k.Local {
			if noICC {
				fn.Veths = append(fn.Veths, datapath.VethName(n.ID, le.ID))
				if le.Addr.Addr().Is4() {
					fn.Addrs = append(fn.Addrs, le.Addr.Addr())
				}
			}
		}
		rs.Networks = append(rs.Networks, fn)
	}
	rs.Ports = a.publishedPortsLocked()
	rs.Links = a.linksLocked()
	return rs
}

// linksLocked are the exceptions to icc off: each --link lets the linking
// sandbox reach the linked one's exposed ports. The caller holds mu.
func (a *Agent) linksLocked() []firewall.Link {
	var out []firewall.Link
	for _, e := range a.endpoints {
		for _, l := range e.Links {
			name, _, _ := strings.Cut(l, ":")
			t, err := a.linkTarget(name, e.NetworkID)
			if err != nil || !e.joined() {
				continue
			}
			for _, x := range a.sandboxes[t.SandboxID].Exposed {
				out = append(out, firewall.Link{From: e.Addr.Addr(), To: t.Addr.Addr(), Proto: x.Proto, Port: x.Port})
			}
		}
	}
	return out
}

// syncFirewall applies the filter of the current view. It runs under the
// reconciler's applyMu. A failure is logged when it changes; the next
// batch tries again.
func (a *Agent) syncFirewall() {
	err := a.fw.Apply(a.ruleset())
	a.fwDown.Store(err != nil)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != a.fwErr {
		if err != nil {
			a.log.Warn("programming the packet filter failed; bridges forward nothing until it works", "err", err)
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

// publishedPortsLocked are the DNATs of every sandbox's published ports,
// to its address on the network carrying its default route; a sandbox
// without one (it left that network) publishes nothing. The caller holds
// mu.
func (a *Agent) publishedPortsLocked() []firewall.Port {
	var out []firewall.Port
	for _, s := range a.sandboxes {
		if len(s.Ports) == 0 {
			continue
		}
		e := a.defaultRoute(s)
		if e == nil {
			continue
		}
		to := e.Addr.Addr()
		for _, m := range s.Ports {
			out = append(out, firewall.Port{Proto: m.Proto, HostIP: m.HostIP, HostPort: m.HostPort, Addr: to, Port: m.Port})
		}
	}
	return out
}
