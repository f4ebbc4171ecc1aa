// Package membership is the agent's side of gossip (package gossip):
// joining the peers registered in the cluster store (and those last seen,
// when the store is down), announcing this host's endpoints, subscribing
// to the global networks, and the remote endpoints the datapath is
// programmed with — gossip's view, and until gossip has caught up after a
// restart, the cache of what was programmed before.
//
// Goroutines: Run (the join loop) and one consumer per subscription, all
// waited for by Run. Gossip callbacks never block here: a subscription's
// consumer only marks its network dirty. Locks: mu guards the cache and
// peers, subMu the subscriptions; both are leaves.
package membership

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
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
	// saveDelay bounds how often the cache is written to the data dir.
	saveDelay = 2 * time.Second
)

// Config is what membership needs of the agent's configuration.
type Config struct {
	NodeName string
	VTEP     netip.Addr // gossip's bind address and this host's VTEP
	Port     int
	Version  string
	// Keys is the gossip keyring, the key gossip encrypts with first;
	// none: gossip in clear.
	Keys [][]byte
	// Identity, when set, signs this host's records and checks its
	// peers' (gossip.Identity); SetIdentity sets it later.
	Identity *gossip.Identity
}

// Hooks are how membership tells the rest of the agent; none may block.
type Hooks struct {
	// Dirty: another host's endpoints of the network changed.
	Dirty func(networkID string)
	// CaughtUp: gossip has caught up after start; every network should
	// be programmed from its view.
	CaughtUp func()
	// Save: the cache or the peers changed and should be saved.
	Save func()
}

// Membership is this agent in the gossip cluster.
type Membership struct {
	cfg     Config
	log     *slog.Logger
	hooks   Hooks
	cluster *gossip.Cluster

	mu      sync.Mutex                   // guards the fields below; a leaf lock
	cache   map[string][]gossip.Endpoint // remote endpoints last programmed, by network
	synced  bool                         // gossip has caught up; until then cache fills in
	peers   []string                     // members' gossip addresses last seen
	saving  *time.Timer                  // a pending save of the cache
	stopped bool                         // Close has run: no more saves

	subMu      sync.Mutex                      // guards the fields below; a leaf lock
	subs       map[string]*gossip.Subscription // per global network
	subsClosed bool

	wg sync.WaitGroup
}

// New returns membership with the cache and peers kept in the data dir.
func New(cfg Config, cache map[string][]gossip.Endpoint, peers []string, hooks Hooks, log *slog.Logger) *Membership {
	if cache == nil {
		cache = map[string][]gossip.Endpoint{}
	}
	return &Membership{cfg: cfg, log: log, hooks: hooks, cache: cache, peers: peers, subs: map[string]*gossip.Subscription{}}
}

// Start starts the gossip listeners. A restarted agent may find its port
// still held for a moment by the previous process finishing its shutdown,
// so binding is retried for a while.
func (m *Membership) Start(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := gossip.New(gossip.Config{
			NodeName: m.cfg.NodeName, BindAddr: m.cfg.VTEP.String(), BindPort: m.cfg.Port,
			VTEP: m.cfg.VTEP, Version: m.cfg.Version, Keys: m.cfg.Keys, Identity: m.cfg.Identity, Logger: m.log,
		})
		if err == nil {
			m.cluster = c
			return nil
		}
		// memberlist formats the bind error with %v: match its text.
		if !strings.Contains(err.Error(), syscall.EADDRINUSE.Error()) || time.Now().After(deadline) {
			return err
		}
		m.log.Warn("gossip port busy; retrying", "port", m.cfg.Port)
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// SetIdentity sets this host's identity (see gossip.Cluster.SetIdentity).
func (m *Membership) SetIdentity(id *gossip.Identity) error { return m.cluster.SetIdentity(id) }

// SetKeys replaces the gossip keyring (see gossip.Cluster.SetKeys).
func (m *Membership) SetKeys(keys [][]byte) error { return m.cluster.SetKeys(keys) }

// Quiesce ends the subscriptions (Run waits for their consumers) and
// stops saving, while gossip goes on answering the peers: an agent
// shutting down keeps doing so until the very end, since peers that stop
// hearing from it for the failure detector's few seconds drop its
// endpoints.
func (m *Membership) Quiesce() {
	m.closeSubscriptions()
	m.mu.Lock()
	m.stopped = true
	if m.saving != nil {
		m.saving.Stop()
	}
	m.mu.Unlock()
}

// Close quiesces and closes the gossip listeners without leaving the
// cluster: peers keep this host's endpoints while it restarts.
func (m *Membership) Close() {
	m.Quiesce()
	if m.cluster != nil {
		m.cluster.Close()
	}
}

// Announce publishes a local endpoint to the cluster.
func (m *Membership) Announce(ep gossip.Endpoint) error { return m.cluster.Put(ep) }

// Withdraw deletes a local endpoint from the cluster.
func (m *Membership) Withdraw(networkID, endpointID string) { m.cluster.Delete(networkID, endpointID) }

// Endpoints are gossip's endpoints of a network, this host's included.
func (m *Membership) Endpoints(networkID string) []gossip.Endpoint {
	return m.cluster.Endpoints(networkID)
}

// Generation changes whenever Endpoints(networkID) does.
func (m *Membership) Generation(networkID string) uint64 { return m.cluster.Generation(networkID) }

// ClockJumpsRefused counts gossip refused for a forged Lamport time.
func (m *Membership) ClockJumpsRefused() uint64 {
	if m.cluster == nil {
		return 0
	}
	return m.cluster.ClockJumpsRefused()
}

// Refusals counts what gossip refused to take (gossip.Refusals).
func (m *Membership) Refusals() gossip.Refusals {
	if m.cluster == nil {
		return gossip.Refusals{}
	}
	return m.cluster.Refusals()
}

// VTEPs are the VTEPs of the gossip members and, until gossip has caught
// up after a restart, of the cached remote endpoints: the hosts whose
// VXLAN packets this host takes.
func (m *Membership) VTEPs() []netip.Addr {
	var out []netip.Addr
	for _, mb := range m.cluster.Members() {
		if mb.VTEP.IsValid() {
			out = append(out, mb.VTEP)
		}
	}
	m.mu.Lock()
	if !m.synced {
		for _, eps := range m.cache {
			for _, ep := range eps {
				out = append(out, ep.VTEP)
			}
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// Members are the gossip members, this node included.
func (m *Membership) Members() []gossip.Member { return m.cluster.Members() }

// MemberNames are the members' names.
func (m *Membership) MemberNames() []string {
	var names []string
	for _, mb := range m.cluster.Members() {
		names = append(names, mb.Name)
	}
	return names
}

// Remote is a network's endpoints on other hosts: gossip's view, plus,
// until gossip has caught up after a restart, the cached ones it does not
// know yet; by id. Once gossip has caught up, what it says is kept in the
// cache for the next restart.
func (m *Membership) Remote(networkID string) []gossip.Endpoint {
	var eps []gossip.Endpoint
	seen := map[string]bool{}
	for _, ep := range m.cluster.Endpoints(networkID) {
		seen[ep.ID] = true
		if ep.Node != m.cfg.NodeName && ep.VTEP != m.cfg.VTEP {
			eps = append(eps, ep)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.synced {
		for _, ep := range m.cache[networkID] {
			if !seen[ep.ID] {
				eps = append(eps, ep)
			}
		}
	}
	slices.SortFunc(eps, func(x, y gossip.Endpoint) int { return strings.Compare(x.ID, y.ID) })
	if m.synced && !slices.EqualFunc(m.cache[networkID], eps, func(p, q gossip.Endpoint) bool { return p.Equal(&q) }) {
		m.cache[networkID] = eps
		m.changedLocked()
	}
	return eps
}

// Forget drops a network from the cache: this host no longer needs it.
func (m *Membership) Forget(networkID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.cache[networkID]; ok && m.synced {
		delete(m.cache, networkID)
		m.changedLocked()
	}
}

// changedLocked schedules a save of the cache, at most one per
// saveDelay. The caller holds mu.
func (m *Membership) changedLocked() {
	if m.saving == nil && !m.stopped {
		m.saving = time.AfterFunc(saveDelay, func() {
			m.mu.Lock()
			m.saving = nil
			stopped := m.stopped
			m.mu.Unlock()
			if !stopped {
				m.hooks.Save()
			}
		})
	}
}

// Saved returns the cache and the peers, for the data dir.
func (m *Membership) Saved() (map[string][]gossip.Endpoint, []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cache := make(map[string][]gossip.Endpoint, len(m.cache))
	for id, eps := range m.cache {
		cache[id] = eps
	}
	return cache, slices.Clone(m.peers)
}
