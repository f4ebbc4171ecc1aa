package agent

// Gossip from the agent's side: joining the peers registered in the store
// (and those last seen, when the store is down), publishing local
// endpoints, and subscribing to the networks the datapath needs.

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/meshnet/meshnet/gossip"
)

const (
	// joinInterval is how often the agent looks for registered nodes that
	// are not yet gossip members.
	joinInterval = 3 * time.Second
	// syncTimeout bounds how long a restarted agent programs remote
	// endpoints from its cache while it cannot reach any peer.
	syncTimeout = 30 * time.Second
)

// gossipLoop joins registered nodes that are not members yet. The first
// time a join reaches a peer (which pushes its whole table during the
// join), or there is nobody to join, or syncTimeout passes, the gossip view
// is taken as caught up and replaces the cached remote endpoints.
func (a *Agent) gossipLoop(ctx context.Context) {
	start := time.Now()
	t := time.NewTicker(joinInterval)
	defer t.Stop()
	for {
		joined, alone := a.joinPeers(ctx)
		a.mu.Lock()
		first := !a.synced && (joined > 0 || alone || time.Since(start) > syncTimeout)
		if first {
			a.synced = true
		}
		a.mu.Unlock()
		if first {
			a.log.Info("gossip caught up", "joined", joined, "members", len(a.gossip.Members()))
			a.recon.MarkAllDirty()
		}
		a.rememberPeers()
		select {
		case <-t.C:
		case <-a.storeUp: // new seeds may be listed now
		case <-ctx.Done():
			return
		}
	}
}

// joinPeers joins every registered node (or, without a store, every peer
// last seen) that is not a member. It returns how many it reached and
// whether there was nobody to join at all.
func (a *Agent) joinPeers(ctx context.Context) (joined int, alone bool) {
	members := map[string]bool{}
	for _, m := range a.gossip.Members() {
		members[m.Name] = true
	}
	var seeds []string
	a.mu.Lock()
	store, storeErr, peers := a.store, a.storeErr, a.peers
	a.mu.Unlock()
	known := false
	if store != nil && storeErr == nil {
		listCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		nodes, _, err := registeredNodes(listCtx, store)
		cancel()
		if err == nil {
			known = true
			for name, ni := range nodes {
				if name == a.cfg.NodeName || members[name] {
					continue
				}
				if addr, err := netip.ParseAddr(ni.Address); err == nil && ni.GossipPort > 0 {
					seeds = append(seeds, net.JoinHostPort(addr.String(), strconv.Itoa(ni.GossipPort)))
				}
			}
		} else {
			a.noteStoreErr(err)
		}
	}
	if !known {
		for _, p := range peers {
			if p != a.selfGossipAddr() {
				seeds = append(seeds, p)
			}
		}
	}
	if len(seeds) == 0 {
		return 0, known || len(members) > 1
	}
	n, err := a.gossip.Join(seeds)
	if err != nil && n == 0 {
		a.log.Debug("joining gossip peers", "seeds", seeds, "err", err)
	}
	return n, false
}

func (a *Agent) selfGossipAddr() string {
	return net.JoinHostPort(a.vtep.String(), strconv.Itoa(a.cfg.GossipPort))
}

// rememberPeers keeps the members' addresses for a restart without store.
func (a *Agent) rememberPeers() {
	var peers []string
	for _, m := range a.gossip.Members() {
		if m.Name != a.cfg.NodeName {
			peers = append(peers, m.Addr.String())
		}
	}
	slices.Sort(peers)
	a.mu.Lock()
	changed := !slices.Equal(peers, a.peers) && len(peers) > 0
	if changed {
		a.peers = peers
	}
	a.mu.Unlock()
	if changed {
		a.saveState()
	}
}

// announceLocal publishes every joined local endpoint of a global network
// (after a restart: the peers may have aged our records out).
func (a *Agent) announceLocal() {
	a.mu.Lock()
	var eps []gossip.Endpoint
	for _, e := range a.endpoints {
		s := a.sandboxes[e.SandboxID]
		if n := a.networks[e.NetworkID]; s != nil && n != nil && n.Global() {
			eps = append(eps, a.gossipEndpoint(s, e))
		}
	}
	a.mu.Unlock()
	for _, ep := range eps {
		if err := a.gossip.Put(ep); err != nil {
			a.log.Warn("announcing endpoint", "endpoint", ep.ID, "err", err)
		}
	}
}

// syncSubscriptions subscribes to the endpoints of every global network
// and drops subscriptions of networks that are gone. Each subscription's
// goroutine consumes its events: a change of another host's endpoint
// marks the network for reprogramming; changes of this host's own
// endpoints are skipped, since the join or leave that made them has
// programmed the datapath already.
func (a *Agent) syncSubscriptions() {
	a.subMu.Lock()
	defer a.subMu.Unlock()
	if a.subsClosed {
		return
	}
	if a.subs == nil {
		a.subs = map[string]*gossip.Subscription{}
	}
	a.mu.Lock()
	want := map[string]bool{}
	for id, n := range a.networks {
		if n.Global() {
			want[id] = true
		}
	}
	a.mu.Unlock()
	for id, sub := range a.subs {
		if !want[id] {
			sub.Close()
			delete(a.subs, id)
		}
	}
	for id := range want {
		if a.subs[id] != nil {
			continue
		}
		sub, err := a.gossip.Subscribe(id)
		if err != nil {
			return // closed
		}
		a.subs[id] = sub
		a.goRun(func() {
			for ev := range sub.C() {
				if a.remoteChange(ev) {
					a.recon.MarkDirty(id)
				}
			}
		})
	}
}

// remoteChange reports whether a gossip event changes what this host
// programs: anything about another node's endpoints.
func (a *Agent) remoteChange(ev gossip.Event) bool {
	if ev.Kind == gossip.EventSnapshot {
		return slices.ContainsFunc(ev.Snapshot, func(ep gossip.Endpoint) bool { return ep.Node != a.cfg.NodeName })
	}
	return ev.Endpoint.Node != a.cfg.NodeName
}

// closeSubscriptions ends every subscription (and so its goroutine).
func (a *Agent) closeSubscriptions() {
	a.subMu.Lock()
	defer a.subMu.Unlock()
	for id, sub := range a.subs {
		sub.Close()
		delete(a.subs, id)
	}
	a.subsClosed = true
}
