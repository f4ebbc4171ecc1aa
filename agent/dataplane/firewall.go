package dataplane

// The packet filter and NAT (package firewall): derived from the desired
// datapath of every network on this host (and the drivers' say on icc),
// so that a bridge is isolated from the other networks before it first
// forwards, and applied by the reconciler ahead of every batch of
// datapath writes. With iptables: false there is no filter at all: the
// user owns NAT and isolation.

import (
	"net/netip"
	"strings"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/datapath"
	"github.com/meshnet/meshnet/firewall"
)

// ruleset is the filter of the current view: every network this host
// programs, by its bridge (and the ports of a network with icc off), the
// published ports, and the links that icc off lets through.
func (d *Dataplane) ruleset() firewall.Ruleset {
	var rs firewall.Ruleset
	for _, n := range d.nets.Table.All() {
		drv, ok := d.nets.Driver(n)
		if !ok {
			continue
		}
		f, ok := drv.(driver.ICCFilter)
		noICC := ok && !f.ICC(n)
		// The filter needs a network's devices and settings, and its
		// endpoints only when icc is off: the others are rendered with
		// one endpoint (which tells the driver the network is on this
		// host), so that a ruleset costs no more with many endpoints.
		limit := 1
		if noICC {
			limit = -1
		}
		k, ok := drv.Render(driver.View{Network: n, Local: d.localEndpoints(n.ID, limit)})
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
	rs.Ports = d.publishedPorts()
	rs.Links = d.links()
	rs.VXLANPort, rs.VTEPs = d.cfg.VXLANPort, d.remote.VTEPs()
	return rs
}

// links are the exceptions to icc off: each --link lets the linking
// sandbox reach the linked one's exposed ports.
func (d *Dataplane) links() []firewall.Link {
	var out []firewall.Link
	for _, e := range d.recs.Endpoints() {
		if !e.Joined() {
			continue
		}
		for _, l := range e.Links {
			name, _, _ := strings.Cut(l, ":")
			t, err := d.recs.LinkTarget(name, e.NetworkID)
			if err != nil {
				continue
			}
			if ts := d.recs.Sandbox(t.SandboxID); ts != nil {
				for _, x := range ts.Exposed {
					out = append(out, firewall.Link{From: e.Addr.Addr(), To: t.Addr.Addr(), Proto: x.Proto, Port: x.Port})
				}
			}
		}
	}
	return out
}

// publishedPorts are the DNATs of every sandbox's published ports, to its
// address on the network carrying its default route; a sandbox without
// one (it left that network) publishes nothing.
func (d *Dataplane) publishedPorts() []firewall.Port {
	var out []firewall.Port
	for _, s := range d.recs.Sandboxes() {
		if len(s.Ports) == 0 {
			continue
		}
		e := d.DefaultRoute(s)
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

// syncFirewall applies the filter of the current view. It runs under the
// reconciler's applyMu. A failure is logged when it changes; the next
// batch tries again.
func (d *Dataplane) syncFirewall() {
	err := d.fw.Apply(d.ruleset())
	if wrote, derr := d.fw.AllowInDockerUser(datapath.BridgePrefix); derr != nil {
		d.log.Warn("letting meshnet's bridges through dockerd's filter", "chain", firewall.DockerUserChain, "err", derr)
	} else if wrote {
		d.log.Info("meshnet's bridges let through dockerd's filter", "chain", firewall.DockerUserChain, "rules", "-i "+datapath.BridgePrefix+"+ -j ACCEPT, -o "+datapath.BridgePrefix+"+ -j ACCEPT")
	}
	d.fwDown.Store(err != nil)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != d.fwErr {
		if err != nil {
			d.log.Warn("programming the packet filter failed; bridges forward nothing until it works", "err", err)
		} else if d.fwErr != "" {
			d.log.Info("packet filter programmed again")
		}
		d.fwErr = msg
	}
}
