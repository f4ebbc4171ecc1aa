package agent

// The desired datapath: the agent's view of one network (its record, the
// endpoints joined here, the endpoints gossip knows elsewhere) rendered by
// the network's driver. The reconciler (reconciler.go) applies it.

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/datapath"
	"github.com/meshnet/meshnet/gossip"
)

// remoteSaveDelay bounds how often the remote-endpoint cache is written
// to the data dir.
const remoteSaveDelay = 2 * time.Second

// desiredNetwork is one network's desired state on this host.
func (a *Agent) desiredNetwork(id string) (datapath.Network, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.networks[id]
	if n == nil {
		a.forgetRemote(id)
		return datapath.Network{}, false
	}
	k, ok := a.renderLocked(n)
	a.failClosed(&k)
	return k, ok
}

// failClosed takes back what only the packet filter makes safe: a bridge
// may route to and from the host's loopback (route_localnet) only with
// the filter on, and forwards nothing while the filter could not be
// written (it would not be isolated). The caller holds mu.
func (a *Agent) failClosed(k *datapath.Network) {
	if !a.cfg.IPTables {
		k.RouteLocalnet = false
	}
	if a.fwDown.Load() {
		k.Forwarding, k.RouteLocalnet = false, false
	}
}

// desiredAll is the desired state of every network this host needs.
func (a *Agent) desiredAll() []datapath.Network {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []datapath.Network
	for _, n := range a.networks {
		if k, ok := a.renderLocked(n); ok {
			a.failClosed(&k)
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(x, y datapath.Network) int { return strings.Compare(x.ID, y.ID) })
	return out
}

// renderLocked asks the network's driver for its kernel state. The caller
// holds mu.
func (a *Agent) renderLocked(n *driver.Network) (datapath.Network, bool) {
	d, ok := a.driverOf(n)
	if !ok {
		return datapath.Network{}, false
	}
	v := driver.View{Network: n, Local: a.localEndpoints(n.ID)}
	if n.Global() && len(v.Local) > 0 {
		eps := a.remoteEndpoints(n.ID)
		for _, ep := range eps {
			v.Remote = append(v.Remote, datapath.RemoteEndpoint{IP: ep.IP, IP6: ep.IPv6, MAC: ep.MAC, VTEP: ep.VTEP})
		}
		a.rememberRemote(n.ID, eps)
	} else {
		a.forgetRemote(n.ID)
	}
	return d.Render(v)
}

// localEndpoints are a network's endpoints on this host, in id order. The
// caller holds mu.
func (a *Agent) localEndpoints(networkID string) []datapath.LocalEndpoint {
	return a.someLocalEndpoints(networkID, -1)
}

// someLocalEndpoints is localEndpoints, but at most limit of them (all
// for a negative limit), in no particular order. The caller holds mu.
func (a *Agent) someLocalEndpoints(networkID string, limit int) []datapath.LocalEndpoint {
	m := a.byNetwork[networkID]
	n := len(m)
	if limit >= 0 {
		n = min(n, limit)
	}
	out := make([]datapath.LocalEndpoint, 0, n)
	for _, e := range m {
		if len(out) == limit {
			return out
		}
		s := a.sandboxes[e.SandboxID]
		if s == nil {
			continue
		}
		out = append(out, datapath.LocalEndpoint{ID: e.ID, Sandbox: s.NetNS, SandboxID: s.NSID,
			IfName: e.IfName, Addr: e.Addr, Addr6: e.Addr6, MAC: e.mac(), DefaultRoute: a.defaultRoute(s) == e})
	}
	if limit < 0 {
		slices.SortFunc(out, func(x, y datapath.LocalEndpoint) int { return strings.Compare(x.ID, y.ID) })
	}
	return out
}

// defaultRoute returns the sandbox's endpoint that carries its default
// route: the first joined whose driver offers external connectivity on
// its network; nil if none does. The caller holds mu.
func (a *Agent) defaultRoute(s *sandboxRecord) *endpointRecord {
	for _, e := range a.sandboxEndpoints(s) {
		n := a.networks[e.NetworkID]
		if n == nil {
			continue
		}
		d, _ := a.driverOf(n)
		if ec, ok := d.(driver.ExternalConnectivity); ok && ec.DefaultRoute(n) {
			return e
		}
	}
	return nil
}

// remoteEndpoints are a network's endpoints on other hosts: gossip's view,
// plus, until gossip has caught up after a restart, the cached ones it
// does not know yet. The caller holds mu.
func (a *Agent) remoteEndpoints(networkID string) []gossip.Endpoint {
	var eps []gossip.Endpoint
	seen := map[string]bool{}
	for _, ep := range a.gossip.Endpoints(networkID) {
		seen[ep.ID] = true
		if ep.Node != a.cfg.NodeName && ep.VTEP != a.vtep {
			eps = append(eps, ep)
		}
	}
	if !a.synced {
		for _, ep := range a.remote[networkID] {
			if !seen[ep.ID] {
				eps = append(eps, ep)
			}
		}
	}
	slices.SortFunc(eps, func(x, y gossip.Endpoint) int { return cmp.Compare(x.ID, y.ID) })
	return eps
}

// rememberRemote keeps what gossip said of a network's remote endpoints,
// for a restart, once gossip has caught up. The caller holds mu.
func (a *Agent) rememberRemote(id string, eps []gossip.Endpoint) {
	if !a.synced || slices.EqualFunc(a.remote[id], eps, func(p, q gossip.Endpoint) bool { return p.Equal(&q) }) {
		return
	}
	a.remote[id] = eps
	a.remoteChanged()
}

// forgetRemote drops a network from the cache. The caller holds mu.
func (a *Agent) forgetRemote(id string) {
	if _, ok := a.remote[id]; ok && a.synced {
		delete(a.remote, id)
		a.remoteChanged()
	}
}

// remoteChanged schedules a save of the cache, at most one per
// remoteSaveDelay. The caller holds mu.
func (a *Agent) remoteChanged() {
	if a.remoteSave == nil {
		a.remoteSave = time.AfterFunc(remoteSaveDelay, func() {
			a.mu.Lock()
			a.remoteSave = nil
			stopped := a.stopped
			a.mu.Unlock()
			if !stopped {
				a.saveState()
			}
		})
	}
}

// endpointError keeps, of the errors of applying a network, those that
// concern the given endpoint or the whole network: a join fails for its
// own endpoint, not for another's (say, a sandbox whose namespace is gone,
// which the reaper cleans up).
func endpointError(err error, endpointID string) error {
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
