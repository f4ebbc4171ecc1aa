// Package gossip keeps the cluster's membership and replicates, per network,
// where every endpoint lives, over hashicorp/memberlist.
//
// memberlist provides the failure detector (SWIM), the transport and the two
// dissemination paths this package builds on:
//
//   - fast path: a local write is sent straight to every member
//     (fanout.go), and queued as a broadcast (broadcast.go);
//     memberlist piggybacks it on its next gossip round
//     (every GossipInterval, to GossipNodes random peers), and each node that
//     learns something new queues it again, so an update spreads
//     epidemically in O(log N) rounds;
//   - repair path: every PushPullInterval a node swaps its whole table with a
//     random peer over TCP (LocalState/MergeRemoteState). This repairs lost
//     packets, gives a joining node everything at join, and reconciles the
//     two sides of a healed partition.
//
// The table (table.go) is last-writer-wins per key with Lamport versions,
// tombstones for deletes, and per-owner purging when a node leaves or fails.
//
// Scope: every node currently holds every network. Records are keyed and
// subscribed per network, and the wire format reserves a message type, so
// that interest-based replication can be added without changing the API: a
// node would announce the networks it has endpoints in (one small record per
// node and network, gossiped cluster-wide), send a network's records only to
// its interested peers (memberlist.SendBestEffort plus per-network push/pull
// over SendReliable), and drop records of networks it has no interest in.
package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("gossip cluster is closed")

// ErrNotOwner is returned by a write of another node's endpoint: only the
// node that holds an endpoint writes or deletes its record.
var ErrNotOwner = errors.New("the endpoint is another node's")

// Cluster is this node's membership in the gossip cluster and its replica of
// the endpoint table. Its methods are safe for concurrent use and never wait
// on the network, except Join and Leave.
type Cluster struct {
	cfg          Config
	log          *slog.Logger
	meta         atomic.Pointer[[]byte] // encoded node metadata
	sig          *signing               // sign.go
	table        *table
	bcast        *broadcastQueue
	ml           *memberlist.Memberlist // set once in New, before any goroutine of ours
	memberEvents *fifo[memberEvent]
	fanout       *fifo[wireRecord] // local writes to send to every member at once (fanout.go)

	// done is closed by Close; every goroutine in wg watches it.
	keyring *memberlist.Keyring // nil: gossip in clear

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closed    atomic.Bool

	// leaveMu orders Leave before Close's memberlist shutdown (memberlist
	// panics on Leave after Shutdown): Leave holds it, and checks closed,
	// while it waits for memberlist; Close sets closed under it. Nothing
	// else takes it, so a Leave in progress stalls only Close.
	leaveMu sync.Mutex

	// memMu is separate from mu because memberlist's event callbacks take it
	// with memberlist's own lock held. memberlist.Members is not used: it
	// returns pointers into memberlist's state that its goroutines keep
	// writing.
	memMu sync.Mutex
	// Guarded by memMu:
	members map[string]memberlist.Node // alive and suspect members, self included

	numMembers atomic.Int64  // len(members), read by the broadcast queue
	dropped    atomic.Uint64 // items the queues dropped when full (fifo.go)
	invalid    atomic.Uint64 // received records refused (admit.go)

	mu sync.Mutex
	// Guarded by mu:
	subs   map[*Subscription]struct{}
	failed map[string]failedNode // members that failed, for reconnecting
}

type failedNode struct {
	addr  string
	since time.Time
}

// Member is a node of the cluster as seen by this node.
type Member struct {
	Name    string
	Addr    netip.AddrPort // gossip address
	VTEP    netip.Addr
	Version string
}

// New starts this node's gossip listeners. It does not contact anyone: call
// Join with seeds, or wait to be joined.
func New(cfg Config) (*Cluster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("configuring gossip: %w", err)
	}
	c := &Cluster{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "gossip", "node", cfg.NodeName),
		sig:     newSigning(),
		table:   newTable(cfg.NodeName, cfg.TombstoneTTL),
		done:    make(chan struct{}),
		members: make(map[string]memberlist.Node),
		subs:    make(map[*Subscription]struct{}),
		failed:  make(map[string]failedNode),
	}
	meta, _ := encodeMeta(cfg.meta()) // checked by withDefaults
	c.meta.Store(&meta)
	c.sig.id = cfg.Identity
	c.table.seal = func(r *wireRecord) []byte { return c.sig.identity().seal(r) }
	c.memberEvents, c.fanout = newFIFO[memberEvent](&c.dropped), newFIFO[wireRecord](&c.dropped)
	c.bcast = newBroadcastQueue(cfg.Timing.RetransmitMult,
		func() int { return max(1, int(c.numMembers.Load())) }, c.log)
	mc := cfg.memberlistConfig(&delegate{c: c})
	c.keyring = mc.Keyring
	if err := guard(mc); err != nil {
		return nil, fmt.Errorf("starting memberlist on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
	}
	m, err := memberlist.Create(mc)
	if err != nil {
		mc.Transport.Shutdown()
		return nil, fmt.Errorf("starting memberlist on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
	}
	c.ml = m

	c.goRun(c.memberLoop)
	c.goRun(c.fanoutLoop)
	c.goRun(c.maintainLoop)
	c.goRun(c.reconnectLoop)
	c.goRun(c.retryPending)
	return c, nil
}

func (c *Cluster) goRun(f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// Join contacts the seeds ("host:port"), exchanges full state with each one
// it reaches, and re-announces this node's own records so they beat anything
// peers remember from an earlier life of this node. It returns how many seeds
// answered, and an error only if none did.
func (c *Cluster) Join(seeds []string) (int, error) {
	if c.closed.Load() {
		return 0, ErrClosed
	}
	n, err := c.ml.Join(seeds)
	if err != nil {
		return n, fmt.Errorf("joining cluster via %v: %w", seeds, err)
	}
	c.queueBroadcasts(c.table.reannounce())
	return n, nil
}

// Leave tells the cluster this node is going away, so peers drop its records
// at once instead of after failure detection, waiting up to timeout (0: no
// limit) for the message to go out. Call Close afterwards; Close waits for a
// Leave in progress.
//
// If the timeout passes first, Leave returns an error, but the message stays
// queued and keeps going out with gossip until Close. memberlist announces a
// leave only once: calling Leave again returns at once without waiting.
func (c *Cluster) Leave(timeout time.Duration) error {
	c.leaveMu.Lock()
	defer c.leaveMu.Unlock()
	if c.closed.Load() {
		return ErrClosed // memberlist panics on Leave after Shutdown
	}
	if err := c.ml.Leave(timeout); err != nil {
		return fmt.Errorf("leaving cluster: %w", err)
	}
	return nil
}

// Close stops gossip without telling peers (use Leave first for a graceful
// exit), ends all subscriptions and waits for every goroutine the Cluster
// started. It is idempotent.
func (c *Cluster) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.leaveMu.Lock() // waits for a Leave in progress
		c.closed.Store(true)
		c.leaveMu.Unlock()
		// Stop our goroutines from starting new exchanges (rejoins and
		// resyncs) before memberlist goes, so none is left to time out.
		close(c.done)

		c.mu.Lock()
		subs := c.subs
		c.subs = nil
		c.mu.Unlock()

		if e := c.ml.Shutdown(); e != nil {
			err = fmt.Errorf("shutting down memberlist: %w", e)
		}
		for s := range subs {
			s.Close()
		}
		c.wg.Wait()
	})
	return err
}

// stopping reports whether Close has begun, for goroutines about to start
// a network exchange.
func (c *Cluster) stopping() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// ClockJumpsRefused counts the received records and push/pull states
// whose Lamport time was too far ahead of this node's clock to be true
// (forged or corrupt): refused, so that no one can run the clock out.
func (c *Cluster) ClockJumpsRefused() uint64 { return c.table.clockJumpsRefused() }

// Name returns this node's name.
func (c *Cluster) Name() string { return c.cfg.NodeName }

// Addr returns this node's advertised gossip address, usable as a seed.
func (c *Cluster) Addr() string { return c.ml.LocalNode().Address() }

// Members returns the members currently alive or suspect, sorted by name.
func (c *Cluster) Members() []Member {
	c.memMu.Lock()
	out := make([]Member, 0, len(c.members))
	for _, n := range c.members {
		m := Member{Name: n.Name}
		if ip, ok := netip.AddrFromSlice(n.Addr); ok {
			m.Addr = netip.AddrPortFrom(ip.Unmap(), n.Port)
		}
		meta := decodeMeta(n.Meta)
		m.VTEP, m.Version = meta.VTEP, meta.Version
		out = append(out, m)
	}
	c.memMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Put creates or replaces an endpoint record and gossips it. Node and VTEP
// default to this node's.
func (c *Cluster) Put(ep Endpoint) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if ep.Node == "" {
		ep.Node = c.cfg.NodeName
	}
	if ep.Node != c.cfg.NodeName {
		return fmt.Errorf("%w: it is on node %s", ErrNotOwner, ep.Node)
	}
	if !ep.VTEP.IsValid() {
		ep.VTEP = c.cfg.VTEP
	}
	if err := ep.validate(c.cfg.NodeName); err != nil {
		return err
	}
	r, changed, err := c.table.put(ep)
	if err != nil {
		return err
	}
	if changed {
		c.queueBroadcasts([]wireRecord{r})
		c.fanout.push(r)
	}
	return nil
}

// Delete removes an endpoint record everywhere. Deleting an unknown endpoint
// is not an error (it may not have reached this node yet; the tombstone
// still wins over it).
func (c *Cluster) Delete(network, id string) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if network == "" || id == "" {
		return fmt.Errorf("deleting endpoint %q/%q: network and ID are required", network, id)
	}
	if err := checkTombstoneSize(network, id, c.cfg.NodeName); err != nil {
		return fmt.Errorf("deleting endpoint %s/%s: %w", network, id, err)
	}
	r, err := c.table.del(network, id)
	if err != nil {
		return err
	}
	c.queueBroadcasts([]wireRecord{r})
	c.fanout.push(r)
	return nil
}

// Generation changes whenever the network's endpoints do: a cache of
// Endpoints(network) is good while it stays the same.
func (c *Cluster) Generation(network string) uint64 { return c.table.generation(network) }

// Endpoints returns the live endpoints of a network, sorted by ID.
func (c *Cluster) Endpoints(network string) []Endpoint { return c.table.endpoints(network) }

// Networks returns the networks that have endpoints, sorted.
func (c *Cluster) Networks() []string { return c.table.networks() }

// Subscribe starts a stream of one network's changes (see Subscription).
func (c *Cluster) Subscribe(network string) (*Subscription, error) {
	s := newSubscription(network, &c.dropped)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subs == nil {
		return nil, ErrClosed
	}
	c.subs[s] = struct{}{}
	s.cancel = func() {
		c.table.unsubscribe(s)
		c.mu.Lock()
		delete(c.subs, s)
		c.mu.Unlock()
	}
	c.table.subscribe(s)
	c.goRun(s.run)
	return s, nil
}

func (c *Cluster) queueBroadcasts(recs []wireRecord) {
	if len(recs) > 0 {
		c.bcast.push(recs)
	}
}

// memberLoop reacts to membership changes queued by the event delegate.
func (c *Cluster) memberLoop() {
	for {
		batch, ok := c.memberEvents.take(c.done)
		if !ok {
			return
		}
		for _, ev := range batch {
			c.handleMemberEvent(ev)
		}
	}
}

func (c *Cluster) handleMemberEvent(ev memberEvent) {
	n := &ev.node
	if n.Name == c.cfg.NodeName {
		return
	}
	if !ev.join {
		purged := c.table.purgeOwner(n.Name)
		c.log.Info("member gone", "member", n.Name, "purged", purged)
		// memberlist does not tell a failure from a graceful leave here
		// (Node.State is stale in callbacks), so every departed member is
		// retried; one that left for good just refuses the connection
		// until ReconnectTimeout.
		c.mu.Lock()
		c.failed[n.Name] = failedNode{addr: n.Address(), since: time.Now()}
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	delete(c.failed, n.Name)
	c.mu.Unlock()
	if !c.table.forgetPurged(n.Name) {
		c.log.Debug("member joined", "member", n.Name)
		return
	}
	// The node is back after we dropped its records (a healed partition or
	// a false failure): swap full state with it now instead of waiting for
	// the next random push/pull. memberlist's Join is that exchange.
	c.log.Info("member back, resyncing", "member", n.Name)
	addr := n.Address()
	c.goRun(func() {
		if c.stopping() {
			return
		}
		if _, err := c.ml.Join([]string{addr}); err != nil && !c.stopping() {
			c.log.Debug("resync with returning member failed", "member", addr, "err", err)
		}
	})
}

// maintainLoop reaps expired tombstones and orphaned records.
func (c *Cluster) maintainLoop() {
	// At least 25ms: withDefaults refuses shorter grace and TTL.
	every := min(time.Second, c.cfg.OrphanGrace/2, c.cfg.TombstoneTTL/4)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		c.table.reap()
		alive := make(map[string]bool)
		c.memMu.Lock()
		for name := range c.members {
			alive[name] = true
		}
		c.memMu.Unlock()
		if n := c.table.sweepOrphans(alive, c.cfg.OrphanGrace); n > 0 {
			c.log.Info("dropped records of absent owners", "records", n)
		}
	}
}

// reconnectLoop periodically tries to rejoin one failed member, so that a
// partition that outlasts memberlist's gossip to the dead still heals.
func (c *Cluster) reconnectLoop() {
	t := time.NewTicker(c.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		c.mu.Lock()
		var addrs []string
		for name, f := range c.failed {
			if time.Since(f.since) > c.cfg.ReconnectTimeout {
				delete(c.failed, name)
				continue
			}
			addrs = append(addrs, f.addr)
		}
		c.mu.Unlock()
		if len(addrs) == 0 || c.stopping() { // a tick and done may be ready together
			continue
		}
		addr := addrs[rand.IntN(len(addrs))]
		if _, err := c.ml.Join([]string{addr}); err == nil {
			c.log.Info("reconnected to failed member", "addr", addr)
		}
	}
}

// trackMember records a membership change; called from memberlist's event
// callbacks, so it only takes memMu.
func (c *Cluster) trackMember(n *memberlist.Node, present bool) {
	c.memMu.Lock()
	defer c.memMu.Unlock()
	if present {
		c.members[n.Name] = *n
		c.sig.published(n.Name, decodeMeta(n.Meta).Cert)
	} else {
		delete(c.members, n.Name)
	}
	c.numMembers.Store(int64(len(c.members)))
}
