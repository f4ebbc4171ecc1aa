package membership

import (
	"context"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/meshnet/meshnet/gossip"
)

// Registry is the list of nodes in the cluster store (agent/storeconn).
type Registry interface {
	// Seeds returns the gossip addresses of the registered nodes but
	// this one; ok is false when the store cannot tell now.
	Seeds(ctx context.Context, self string) (addrs []string, ok bool)
	// Up is signalled when the store is first connected.
	Up() <-chan struct{}
}

// Run joins registered nodes that are not members yet until ctx ends,
// then ends the subscriptions and waits for their consumers. The first
// time a join reaches a peer (which pushes its whole table during the
// join), or there is nobody to join, or syncTimeout passes, the gossip
// view is taken as caught up and replaces the cached remote endpoints.
func (m *Membership) Run(ctx context.Context, reg Registry) {
	defer m.wg.Wait()
	defer m.closeSubscriptions()
	start := time.Now()
	t := time.NewTicker(joinInterval)
	defer t.Stop()
	for {
		joined, alone := m.joinPeers(ctx, reg)
		m.mu.Lock()
		first := !m.synced && (joined > 0 || alone || time.Since(start) > syncTimeout)
		if first {
			m.synced = true
		}
		m.mu.Unlock()
		if first {
			m.log.Info("gossip caught up", "joined", joined, "members", len(m.cluster.Members()))
			m.hooks.CaughtUp()
		}
		m.rememberPeers()
		select {
		case <-t.C:
		case <-reg.Up(): // new seeds may be listed now
		case <-ctx.Done():
			return
		}
	}
}

// joinPeers joins every registered node (or, without a store, every peer
// last seen) that is not a member. It returns how many it reached and
// whether there was nobody to join at all.
func (m *Membership) joinPeers(ctx context.Context, reg Registry) (joined int, alone bool) {
	members := map[string]bool{}
	for _, mb := range m.cluster.Members() {
		members[mb.Addr.String()] = true
	}
	seeds, known := reg.Seeds(ctx, m.cfg.NodeName)
	if !known {
		m.mu.Lock()
		seeds = slices.Clone(m.peers)
		m.mu.Unlock()
	}
	self := net.JoinHostPort(m.cfg.VTEP.String(), strconv.Itoa(m.cfg.Port))
	seeds = slices.DeleteFunc(seeds, func(s string) bool { return s == self || members[s] })
	if len(seeds) == 0 {
		return 0, known || len(members) > 1
	}
	n, err := m.cluster.Join(seeds)
	if err != nil && n == 0 {
		m.log.Debug("joining gossip peers", "seeds", seeds, "err", err)
	}
	return n, false
}

// rememberPeers keeps the members' addresses for a restart without store.
func (m *Membership) rememberPeers() {
	var peers []string
	for _, mb := range m.cluster.Members() {
		if mb.Name != m.cfg.NodeName {
			peers = append(peers, mb.Addr.String())
		}
	}
	slices.Sort(peers)
	m.mu.Lock()
	changed := !slices.Equal(peers, m.peers) && len(peers) > 0
	if changed {
		m.peers = peers
	}
	m.mu.Unlock()
	if changed {
		m.hooks.Save()
	}
}

// Subscribe makes the subscriptions those of the global networks given:
// new ones get a consumer, the others end. A consumer marks its network
// dirty on a change of another host's endpoints; changes of this host's
// own are skipped, since the join or leave that made them has programmed
// the datapath already.
func (m *Membership) Subscribe(networkIDs []string) {
	m.subMu.Lock()
	defer m.subMu.Unlock()
	if m.subsClosed {
		return
	}
	want := map[string]bool{}
	for _, id := range networkIDs {
		want[id] = true
	}
	for id, sub := range m.subs {
		if !want[id] {
			sub.Close()
			delete(m.subs, id)
		}
	}
	for id := range want {
		if m.subs[id] != nil {
			continue
		}
		sub, err := m.cluster.Subscribe(id)
		if err != nil {
			return // closed
		}
		m.subs[id] = sub
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			for ev := range sub.C() {
				if m.remoteChange(ev) {
					m.hooks.Dirty(id)
				}
			}
		}()
	}
}

// remoteChange reports whether a gossip event changes what this host
// programs: anything about another node's endpoints.
func (m *Membership) remoteChange(ev gossip.Event) bool {
	if ev.Kind == gossip.EventSnapshot {
		return slices.ContainsFunc(ev.Snapshot, func(ep gossip.Endpoint) bool { return ep.Node != m.cfg.NodeName })
	}
	return ev.Endpoint.Node != m.cfg.NodeName
}

// closeSubscriptions ends every subscription (and so its consumer).
func (m *Membership) closeSubscriptions() {
	m.subMu.Lock()
	defer m.subMu.Unlock()
	for id, sub := range m.subs {
		sub.Close()
		delete(m.subs, id)
	}
	m.subsClosed = true
}
