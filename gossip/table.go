package gossip

// The replicated endpoint table.
//
// Every key (network, endpoint ID) holds at most one entry, in one of three
// states:
//
//   - live: the endpoint exists;
//   - tombstone: it was deleted. The tombstone is gossiped like a live record
//     so that the delete beats every older put still travelling, and it is
//     reaped after TombstoneTTL. A tombstone carries its remaining life on the
//     wire, so a receiver reaps it no later than the sender: tombstones cannot
//     bounce between nodes forever;
//   - purged: the node that wrote the record left or failed. The entry stays
//     locally (never gossiped) until reaped, so that older records of the key
//     still held by peers that have not noticed the failure yet are refused.
//     The purged writer itself is remembered too, and every record it wrote,
//     whatever its version, is refused until it comes back (a peer may relay
//     a write newer than the one purged here). When the node comes back, its
//     purged entries are forgotten and its records flow again.
//
// Conflicts resolve by version: Lamport time, then writer name. The writer of
// the winning version owns the record: it is the node that reannounces it
// after a restart, and its departure purges it. Ownership follows the
// version rather than Endpoint.Node because the version is what every
// replica agrees on for every state (tombstones and purged entries carry no
// endpoint), and because the writer is the node that maintains the record.
//
// A node is the authority on its own writes: if it receives a newer write of
// its own that it does not hold (made by an earlier incarnation before a
// restart), it overrides it with a fresh write of what it holds now: its own
// live record of the key if it has one, otherwise a tombstone. It never
// rewrites another node's record under its own name, which would make that
// record outlive its writer.

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

type entryState uint8

const (
	stateLive entryState = iota
	stateTombstone
	statePurged
)

type entry struct {
	ver    version
	state  entryState
	ep     Endpoint  // live: the record; otherwise the last known record (for Delete events)
	reapAt time.Time // tombstone and purged only
	sig    []byte    // the writer's signature of the record as gossiped (sign.go)
}

// table is safe for concurrent use. Its methods never block on anything but
// mu, and never call out of the package while holding it; they return the
// records to broadcast and let the caller queue them.
type table struct {
	self         string
	tombstoneTTL time.Duration
	now          func() time.Time
	seal         func(*wireRecord) []byte // signs this node's writes (sign.go); set before use

	mu sync.Mutex
	// Guarded by mu:
	clock       uint64                                // Lamport clock
	nets        map[string]map[string]*entry          // network → endpoint ID → entry
	subs        map[string]map[*Subscription]struct{} // network → subscribers
	absentSince map[string]time.Time                  // record owners missing from the member list
	purged      map[string]time.Time                  // purged owners → when to forget them
	clockJumps  uint64                                // Lamport times refused as too far ahead
	size        int                                   // entries in nets
	full        uint64                                // records refused as the table was full
	takeovers   uint64                                // records refused about another writer's endpoint
	gens        map[string]uint64                     // network → changes so far (generation)
}

// maxEntries bounds the table: endpoints and tombstones of the whole
// cluster. A record about an endpoint not in a full table is refused
// (counted in full): a peer that invents endpoints fills no memory.
const maxEntries = 1 << 18

// maxClockJump bounds how far ahead of this node's Lamport clock a
// received time may be. A peer's clock is ahead by the writes this node
// has not seen: for a node joining a long-running cluster, all of them
// (far fewer than 2^32); a time beyond that is forged or corrupt, and
// accepting it would let one record push the clock to its end, after
// which it wraps and every later write loses.
const maxClockJump = 1 << 32

func newTable(self string, tombstoneTTL time.Duration) *table {
	return &table{
		self:         self,
		tombstoneTTL: tombstoneTTL,
		now:          time.Now,
		nets:         make(map[string]map[string]*entry),
		subs:         make(map[string]map[*Subscription]struct{}),
		absentSince:  make(map[string]time.Time),
		purged:       make(map[string]time.Time),
		gens:         make(map[string]uint64),
	}
}

// generation counts the changes of a network's records: equal
// generations, equal endpoints (for caches of what endpoints says).
func (t *table) generation(network string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.gens[network]
}

func (t *table) tickLocked() uint64 {
	t.clock++
	return t.clock
}

func (t *table) witnessLocked(lt uint64) {
	if lt > t.clock {
		t.clock = lt
	}
}

// plausibleLocked reports whether a received Lamport time is within
// maxClockJump of the clock, counting those that are not.
func (t *table) plausibleLocked(lt uint64) bool {
	if lt > t.clock && lt-t.clock > maxClockJump {
		t.clockJumps++
		return false
	}
	return true
}

func (t *table) getLocked(k key) *entry {
	return t.nets[k.Network][k.ID]
}

func (t *table) setLocked(k key, e *entry) {
	n := t.nets[k.Network]
	if n == nil {
		n = make(map[string]*entry)
		t.nets[k.Network] = n
	}
	if _, ok := n[k.ID]; !ok {
		t.size++
	}
	n[k.ID] = e
}

func (t *table) emitLocked(kind EventKind, ep *Endpoint) {
	for s := range t.subs[ep.Network] {
		if s.queue.full() {
			s.queue.reset(Event{Kind: EventSnapshot, Network: ep.Network, Snapshot: t.endpointsLocked(ep.Network)})
			continue
		}
		s.push(Event{Kind: kind, Network: ep.Network, Endpoint: ep.clone()})
	}
}

// replaceLocked installs e under k and tells subscribers what became visible.
func (t *table) replaceLocked(k key, e *entry) {
	old := t.getLocked(k)
	wasLive := old != nil && old.state == stateLive
	t.setLocked(k, e) // first: a snapshot an emit makes holds e
	t.gens[k.Network]++
	switch {
	case e.state == stateLive && !wasLive:
		t.emitLocked(EventAdd, &e.ep)
	case e.state == stateLive && !old.ep.Equal(&e.ep):
		t.emitLocked(EventUpdate, &e.ep)
	case e.state != stateLive && wasLive:
		e.ep = old.ep
		t.emitLocked(EventDelete, &old.ep)
	}
}

// wireLocked returns the record to send for e, and false if e is not to be
// gossiped (purged, or a tombstone about to be reaped).
func (t *table) wireLocked(e *entry, now time.Time) (wireRecord, bool) {
	switch e.state {
	case stateLive:
		return wireRecord{Version: e.ver, Endpoint: e.ep, Sig: e.sig}, true
	case stateTombstone:
		left := e.reapAt.Sub(now)
		if left <= 0 {
			return wireRecord{}, false
		}
		return wireRecord{Version: e.ver, Deleted: true, Residual: left,
			Endpoint: Endpoint{Network: e.ep.Network, ID: e.ep.ID}, Sig: e.sig}, true
	}
	return wireRecord{}, false
}

// writeLocked makes a local write (live record or tombstone) with a fresh
// Lamport time and returns it for broadcast.
func (t *table) writeLocked(ep Endpoint, deleted bool) wireRecord {
	e := &entry{ver: version{LTime: t.tickLocked(), Writer: t.self}, ep: ep}
	if deleted {
		e.state = stateTombstone
		e.reapAt = t.now().Add(t.tombstoneTTL)
	}
	t.replaceLocked(ep.key(), e)
	return t.sealLocked(e)
}

// sealLocked signs e, a write of this node's, and returns it for
// broadcast.
func (t *table) sealLocked(e *entry) wireRecord {
	e.sig = nil
	r, _ := t.wireLocked(e, t.now())
	if t.seal != nil {
		e.sig = t.seal(&r)
		r.Sig = e.sig
	}
	return r
}

// put stores a local write. It reports false, and nothing to broadcast, when
// this node already holds exactly this record as its own write.
func (t *table) put(ep Endpoint) (wireRecord, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.getLocked(ep.key())
	if err := t.ownedLocked(cur); err != nil {
		return wireRecord{}, false, err
	}
	if cur != nil && cur.state == stateLive && cur.ep.Equal(&ep) {
		return wireRecord{}, false, nil
	}
	return t.writeLocked(ep.clone(), false), true, nil
}

// ownedLocked refuses a write over another writer's live endpoint: peers
// would refuse it (applyLocked).
func (t *table) ownedLocked(cur *entry) error {
	if cur != nil && cur.state == stateLive && cur.ver.Writer != t.self {
		return fmt.Errorf("%w: %s/%s is %s's", ErrNotOwner, cur.ep.Network, cur.ep.ID, cur.ver.Writer)
	}
	return nil
}

// del stores a local delete.
func (t *table) del(network, id string) (wireRecord, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.ownedLocked(t.getLocked(key{Network: network, ID: id})); err != nil {
		return wireRecord{}, err
	}
	return t.writeLocked(Endpoint{Network: network, ID: id}, true), nil
}

// applyAll merges records received from a peer: a gossip message
// (rebroadcast set: the epidemic step of the fast path) or the snapshot of a
// push/pull exchange, whose clock the caller witnesses first (rebroadcast
// unset: the peer that sent them already has them and push/pull spreads them
// further). It returns the records to broadcast: the accepted ones if
// rebroadcast is set, and this node's fresh overrides of stale writes of its
// own.
func (t *table) applyAll(recs []wireRecord, rebroadcast bool) []wireRecord {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var out []wireRecord
	for i := range recs {
		if r, ok := t.applyLocked(&recs[i], rebroadcast, now); ok {
			out = append(out, r)
		}
	}
	return out
}

// news keeps the records that are newer than what the table holds of
// their keys (the others would change nothing).
func (t *table) news(recs []wireRecord) []wireRecord {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := recs[:0]
	for i := range recs {
		if cur := t.getLocked(recs[i].Endpoint.key()); cur == nil || recs[i].Version.newer(cur.ver) {
			out = append(out, recs[i])
		}
	}
	return out
}

// witness advances the Lamport clock past a peer's.
func (t *table) witness(clock uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.plausibleLocked(clock) {
		t.witnessLocked(clock)
	}
}

// refused counts the records refused as the table was full, and those
// about another writer's live endpoint.
func (t *table) refused() (full, takeovers uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.full, t.takeovers
}

// clockJumpsRefused counts the Lamport times refused as too far ahead.
func (t *table) clockJumpsRefused() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.clockJumps
}

// applyLocked merges one record and returns what to broadcast, if anything.
func (t *table) applyLocked(r *wireRecord, rebroadcast bool, now time.Time) (wireRecord, bool) {
	if !t.plausibleLocked(r.Version.LTime) {
		return wireRecord{}, false
	}
	t.witnessLocked(r.Version.LTime)
	if _, ok := t.purged[r.Version.Writer]; ok {
		return wireRecord{}, false // relayed by a peer that has not noticed yet
	}
	k := r.Endpoint.key()
	cur := t.getLocked(k)
	if cur == nil && t.size >= maxEntries {
		t.full++
		return wireRecord{}, false
	}
	if cur != nil && !r.Version.newer(cur.ver) {
		return wireRecord{}, false
	}
	if cur != nil && cur.state == stateLive && cur.ver.Writer != r.Version.Writer {
		// Only the writer of a live endpoint changes or deletes it: a
		// record of another's is forged (or a stale relay of a purged
		// writer's). The owner answers with its own, newer.
		t.takeovers++
		if cur.ver.Writer == t.self {
			return t.writeLocked(cur.ep, false), true
		}
		return wireRecord{}, false
	}
	if r.Version.Writer == t.self {
		// A write of ours we do not know: an earlier incarnation made it.
		if cur != nil && cur.state == stateLive && cur.ver.Writer == t.self {
			return t.writeLocked(cur.ep, false), true
		}
		if !r.Deleted {
			return t.writeLocked(Endpoint{Network: k.Network, ID: k.ID}, true), true
		}
		// An old delete of ours: let it stand.
	}
	e := &entry{ver: r.Version, ep: r.Endpoint, sig: r.Sig}
	if r.Deleted {
		e.state = stateTombstone
		e.reapAt = now.Add(min(r.Residual, t.tombstoneTTL))
	}
	t.replaceLocked(k, e)
	if !rebroadcast {
		return wireRecord{}, false
	}
	return t.wireLocked(e, now)
}

// snapshot returns the Lamport clock and every record worth gossiping.
func (t *table) snapshot() (uint64, []wireRecord) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var recs []wireRecord
	for _, n := range t.nets {
		for _, e := range n {
			if r, ok := t.wireLocked(e, now); ok {
				recs = append(recs, r)
			}
		}
	}
	return t.clock, recs
}

// reannounce rewrites every live record this node owns with a fresh Lamport
// time, so that it beats whatever peers remember of this node's earlier
// incarnation or purged while it was away.
func (t *table) reannounce() []wireRecord {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []wireRecord
	for _, n := range t.nets {
		for _, e := range n {
			if e.state == stateLive && e.ver.Writer == t.self {
				e.ver.LTime = t.tickLocked()
				out = append(out, t.sealLocked(e))
			}
		}
	}
	return out
}

// endpointsLocked returns the live endpoints of network, sorted by ID.
func (t *table) endpointsLocked(network string) []Endpoint {
	m := t.nets[network]
	out := make([]Endpoint, 0, len(m))
	for _, id := range slices.Sorted(maps.Keys(m)) {
		if e := m[id]; e.state == stateLive {
			out = append(out, e.ep.clone())
		}
	}
	return out
}

func (t *table) endpoints(network string) []Endpoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.endpointsLocked(network)
}

// networks returns the networks with at least one live endpoint, sorted.
func (t *table) networks() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for netID, m := range t.nets {
		for _, e := range m {
			if e.state == stateLive {
				out = append(out, netID)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// subscribe registers s and queues the snapshot as its first event, under
// one lock so that no change falls between the snapshot and the stream.
func (t *table) subscribe(s *Subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s.push(Event{Kind: EventSnapshot, Network: s.network, Snapshot: t.endpointsLocked(s.network)})
	m := t.subs[s.network]
	if m == nil {
		m = make(map[*Subscription]struct{})
		t.subs[s.network] = m
	}
	m[s] = struct{}{}
}

func (t *table) unsubscribe(s *Subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.subs[s.network], s)
	if len(t.subs[s.network]) == 0 {
		delete(t.subs, s.network)
	}
}
