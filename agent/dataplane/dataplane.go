// Package dataplane turns what the agent knows into kernel state: each
// network's view (its record, this host's endpoints in it, the endpoints
// gossip knows elsewhere) rendered by its driver (agent/driver) and
// applied by the reconciler (reconciler.go) through the kernel datapath
// (package datapath); the packet filter (package firewall) derived from
// every network, ahead of every batch of datapath writes; and the
// embedded DNS (package resolver): names answered per sandbox, and its
// redirect into each sandbox that uses it.
//
// Goroutines: Run (the reconciler). Locks: the reconciler's (one kernel
// write at a time); reads of the networks, the records and gossip take
// their own leaf locks.
package dataplane

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/networks"
	"github.com/meshnet/meshnet/agent/sandboxes"
	"github.com/meshnet/meshnet/datapath"
	"github.com/meshnet/meshnet/firewall"
	"github.com/meshnet/meshnet/gossip"
)

// Config is what the dataplane needs of the agent's configuration.
type Config struct {
	NodeName string
	// IPTables: the agent owns a packet filter (with false, bridges may
	// not route to the host's loopback).
	IPTables bool
	// The daemon's resolver defaults.
	DNS       []netip.Addr
	DNSOpts   []string
	DNSSearch []string
	// DockerDNS is where the agent answers for Docker's resolver (never
	// an upstream of its own).
	DockerDNS netip.Addr
	// VXLANPort is the overlay's VXLAN port, which the packet filter
	// opens to the cluster's VTEPs only.
	VXLANPort uint16
}

// Remote is gossip's view as the dataplane reads it (agent/membership).
type Remote interface {
	// Endpoints are gossip's endpoints of a network, this host's too.
	Endpoints(networkID string) []gossip.Endpoint
	// Generation changes whenever Endpoints(networkID) does.
	Generation(networkID string) uint64
	// Remote are a network's endpoints on other hosts, for programming.
	Remote(networkID string) []gossip.Endpoint
	// Forget: this host no longer programs the network.
	Forget(networkID string)
	// VTEPs are the hosts whose VXLAN packets this host takes: gossip's
	// members (and, until gossip has caught up, the cached endpoints').
	VTEPs() []netip.Addr
}

// Filter is the packet filter (a *firewall.Firewall).
type Filter interface {
	Apply(rs firewall.Ruleset) error
	// AllowInDockerUser lets forwarding through interfaces named
	// PREFIX… pass dockerd's filter, where there is one (a *firewall.Firewall).
	AllowInDockerUser(prefix string) (bool, error)
	// Watch calls changed whenever meshnet's tables change in the
	// kernel, until ctx ends (a *firewall.Firewall).
	Watch(ctx context.Context, changed func()) error
}

// Dataplane programs this host's kernel from the agent's view.
type Dataplane struct {
	cfg    Config
	log    *slog.Logger
	nets   *networks.Manager
	recs   *sandboxes.Table
	remote Remote
	recon  *reconciler

	fw     Filter      // nil with iptables: false
	fwErr  string      // the filter's last error, guarded by recon.applyMu
	fwDown atomic.Bool // the filter's last write failed: bridges do not forward

	dns   Resolver // nil until SetResolver
	names *names
}

// New returns a dataplane programming k (and fw, unless nil). failed is
// told of every failure to program a network (it must not block).
func New(cfg Config, nets *networks.Manager, recs *sandboxes.Table, remote Remote, k Kernel, fw Filter,
	failed func(networkID string, err error), log *slog.Logger) *Dataplane {
	d := &Dataplane{cfg: cfg, log: log, nets: nets, recs: recs, remote: remote, fw: fw}
	d.names = &names{d: d}
	d.recon = newReconciler(k, d.desired, d.desiredAll, failed, log)
	if fw != nil {
		d.recon.before = d.syncFirewall
	}
	return d
}

// Run applies everything once, then what changes, until ctx ends. A
// change of the packet filter made by anyone else (`nft flush ruleset`)
// is seen at once and repaired in the next pass.
func (d *Dataplane) Run(ctx context.Context) {
	if d.fw != nil {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			for ctx.Err() == nil {
				if err := d.fw.Watch(ctx, d.recon.MarkBeforeDue); err != nil {
					d.log.Warn("watching the packet filter; the resync still repairs it", "err", err)
					select {
					case <-time.After(time.Second):
					case <-ctx.Done():
					}
				}
			}
		}()
	}
	d.recon.Run(ctx)
}

// ApplyNow programs a network at once and returns its error (a join or
// leave waits for its interface).
func (d *Dataplane) ApplyNow(networkID string) error { return d.recon.ApplyNow(networkID) }

// MarkDirty asks for a network to be programmed again soon.
func (d *Dataplane) MarkDirty(networkID string) { d.recon.MarkDirty(networkID) }

// MarkAllDirty asks for every network to be programmed again soon.
func (d *Dataplane) MarkAllDirty() { d.recon.MarkAllDirty() }

// Failing is the number of networks in back-off.
func (d *Dataplane) Failing() int { return d.recon.Failing() }

// Applies counts the calls into the kernel datapath.
func (d *Dataplane) Applies() int64 { return d.recon.Applies() }

// desired is one network's desired state on this host.
func (d *Dataplane) desired(id string) (datapath.Network, bool) {
	n := d.nets.Table.Get(id)
	if n == nil {
		d.remote.Forget(id)
		return datapath.Network{}, false
	}
	k, ok := d.render(n)
	d.failClosed(&k)
	return k, ok
}

// desiredAll is the desired state of every network this host needs.
func (d *Dataplane) desiredAll() []datapath.Network {
	var out []datapath.Network
	for _, n := range d.nets.Table.All() {
		if k, ok := d.render(n); ok {
			d.failClosed(&k)
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(x, y datapath.Network) int { return strings.Compare(x.ID, y.ID) })
	return out
}

// failClosed takes back what only the packet filter makes safe: a bridge
// may route to and from the host's loopback (route_localnet) only with
// the filter on, and forwards nothing while the filter could not be
// written (it would not be isolated).
func (d *Dataplane) failClosed(k *datapath.Network) {
	if !d.cfg.IPTables {
		k.RouteLocalnet = false
	}
	if d.fwDown.Load() {
		k.Forwarding, k.RouteLocalnet = false, false
	}
}

// render asks the network's driver for its kernel state.
func (d *Dataplane) render(n *driver.Network) (datapath.Network, bool) {
	drv, ok := d.nets.Driver(n)
	if !ok {
		return datapath.Network{}, false
	}
	v := driver.View{Network: n, Local: d.localEndpoints(n.ID, -1)}
	if n.Global() && len(v.Local) > 0 {
		for _, ep := range d.remote.Remote(n.ID) {
			v.Remote = append(v.Remote, datapath.RemoteEndpoint{IP: ep.IP, IP6: ep.IPv6, MAC: ep.MAC, VTEP: ep.VTEP})
		}
	} else {
		d.remote.Forget(n.ID)
	}
	return drv.Render(v)
}

// localEndpoints are a network's joined endpoints on this host, by id;
// at most limit of them, in no order, for a limit of 0 or more.
func (d *Dataplane) localEndpoints(networkID string, limit int) []datapath.LocalEndpoint {
	eps := d.recs.OnNetwork(networkID, limit)
	out := make([]datapath.LocalEndpoint, 0, len(eps))
	for _, e := range eps {
		s := d.recs.Sandbox(e.SandboxID)
		if s == nil {
			continue
		}
		def := d.DefaultRoute(s)
		out = append(out, datapath.LocalEndpoint{ID: e.ID, Sandbox: s.NetNS, SandboxID: s.NSID,
			IfName: e.IfName, Addr: e.Addr, Addr6: e.Addr6, MAC: e.HardwareAddr(), Handoff: e.Handoff,
			DefaultRoute: def != nil && def.ID == e.ID})
	}
	return out
}

// DefaultRoute returns the sandbox's endpoint that carries its default
// route: the first joined whose driver offers external connectivity on
// its network; nil if none does.
func (d *Dataplane) DefaultRoute(s *sandboxes.Sandbox) *sandboxes.Endpoint {
	for _, e := range d.recs.Joined(s.ID) {
		n := d.nets.Table.Get(e.NetworkID)
		if n == nil {
			continue
		}
		drv, _ := d.nets.Driver(n)
		if ec, ok := drv.(driver.ExternalConnectivity); ok && ec.DefaultRoute(n) {
			return e
		}
	}
	return nil
}

// EndpointError keeps, of the errors of applying a network, those that
// concern the given endpoint or the whole network: a join fails for its
// own endpoint, not for another's (say, a sandbox whose namespace is gone,
// which the reaper cleans up).
func EndpointError(err error, endpointID string) error {
	var keep []error
	var walk func(e error)
	walk = func(e error) {
		var ee *datapath.EndpointError
		if !errors.As(e, &ee) {
			keep = append(keep, e) // about the network itself
			return
		}
		switch x := e.(type) {
		case *datapath.EndpointError:
			if x.Endpoint == endpointID {
				keep = append(keep, x)
			}
		case interface{ Unwrap() []error }:
			for _, c := range x.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(x.Unwrap())
		}
	}
	if err != nil {
		walk(err)
	}
	return errors.Join(keep...)
}
