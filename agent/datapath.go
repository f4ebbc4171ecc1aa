package agent

// The datapath loop: one goroutine turns the agent's view (networks, local
// sandboxes, remote endpoints from gossip) into overlay.Apply calls. Kicks
// coalesce, so a burst of gossip events costs one Apply; a periodic resync
// repairs drift (somebody deleting an FDB entry by hand).

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/meshnet/meshnet/gossip"
	"github.com/meshnet/meshnet/overlay"
)

const (
	resyncInterval = 30 * time.Second
	retryInterval  = time.Second
	// remoteSaveInterval bounds how often the remote-endpoint cache is
	// written to the data dir.
	remoteSaveInterval = 2 * time.Second
)

// kickDatapath asks the loop for an Apply; it never blocks.
func (a *Agent) kickDatapath() {
	select {
	case a.dpKick <- struct{}{}:
	default:
	}
}

func (a *Agent) datapathLoop(ctx context.Context) {
	resync := time.NewTicker(resyncInterval)
	defer resync.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	var lastSave time.Time
	dirty := false
	for {
		select {
		case <-a.dpKick:
		case <-resync.C:
		case <-retry.C:
		case <-ctx.Done():
			return
		}
		a.applyMu.Lock()
		desired, remote, synced := a.desired()
		err := a.dp.Apply(desired)
		a.applyMu.Unlock()
		if err != nil {
			a.log.Error("programming the datapath; retrying", "err", err)
			retry.Reset(retryInterval)
		}
		if synced && a.updateRemoteCache(remote) {
			dirty = true
		}
		if dirty && time.Since(lastSave) > remoteSaveInterval {
			a.saveState()
			lastSave, dirty = time.Now(), false
		} else if dirty {
			retry.Reset(remoteSaveInterval)
		}
	}
}

// updateRemoteCache stores what gossip said about remote endpoints, for a
// restart; it reports whether anything changed.
func (a *Agent) updateRemoteCache(remote map[string][]gossip.Endpoint) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if maps.EqualFunc(a.remote, remote, func(x, y []gossip.Endpoint) bool {
		return slices.EqualFunc(x, y, func(p, q gossip.Endpoint) bool { return p.Equal(&q) })
	}) {
		return false
	}
	a.remote = remote
	return true
}

// desired computes the datapath for every network with a local endpoint,
// plus the predefined bridge. It also returns the remote endpoints used,
// and whether they came from gossip alone.
func (a *Agent) desired() ([]overlay.Network, map[string][]gossip.Endpoint, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	locals := map[string][]overlay.LocalEndpoint{}
	for _, s := range a.sandboxes {
		routed := false
		for _, e := range s.Endpoints {
			n := a.networks[e.NetworkID]
			if n == nil || (n.Driver != "overlay" && n.Driver != "bridge") {
				continue
			}
			le := overlay.LocalEndpoint{ID: e.ID, Sandbox: s.NetNS, IfName: e.IfName, Addr: e.Addr, Addr6: e.Addr6}
			if !routed && !n.Internal && n.gatewayPrefix(true).IsValid() {
				le.DefaultRoute, routed = true, true
			}
			locals[n.ID] = append(locals[n.ID], le)
		}
	}
	if bridge := a.defaultBridge(); bridge != nil {
		if _, ok := locals[bridge.ID]; !ok {
			locals[bridge.ID] = nil
		}
	}
	remote := map[string][]gossip.Endpoint{}
	var out []overlay.Network
	for id, le := range locals {
		n := a.networks[id]
		on := a.overlayNetwork(n)
		on.Local = le
		if n.Driver == "overlay" {
			eps := a.remoteEndpoints(id)
			remote[id] = eps
			for _, ep := range eps {
				on.Remote = append(on.Remote, overlay.RemoteEndpoint{IP: ep.IP, IP6: ep.IPv6, MAC: ep.MAC, VTEP: ep.VTEP})
			}
		}
		out = append(out, on)
	}
	return out, remote, a.synced
}

// overlayNetwork is the datapath form of a network, without endpoints.
func (a *Agent) overlayNetwork(n *networkRecord) overlay.Network {
	on := overlay.Network{ID: n.ID, MTU: n.MTU, Gateway: n.gatewayPrefix(true), Gateway6: n.gatewayPrefix(false)}
	if n.Driver == "overlay" {
		on.VNI, on.VTEP, on.Port = n.VNI, a.vtep, uint16(a.cfg.VXLANPort)
	} else {
		on.Bridge = n.Bridge
	}
	return on
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
	slices.SortFunc(eps, func(x, y gossip.Endpoint) int { return strings.Compare(x.ID, y.ID) })
	return eps
}

// applyNetworkNow programs one network at once (a sandbox joining it
// waits for its interface) and returns that network's error.
func (a *Agent) applyNetworkNow(networkID string) error {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	desired, _, _ := a.desired()
	for _, n := range desired {
		if n.ID == networkID {
			return a.dp.ApplyNetwork(n)
		}
	}
	return a.dp.RemoveNetwork(networkID)
}
