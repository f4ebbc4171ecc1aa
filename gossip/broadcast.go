package gossip

// The fast path's outgoing queue.
//
// Every record this node queues is sent retransmitLimit times, to a few
// random peers each gossip round; a newer record of the same key replaces
// the queued one. This is what memberlist.TransmitLimitedQueue does, but
// that queue (v0.5.4) can silently lose a broadcast: it orders items by
// (transmits, length, id) in a B-tree, resets its id counter whenever the
// tree is momentarily empty (an item taken for sending, or replaced by a
// newer one of the same name), and lets a new item with a reused id replace
// an unrelated one of equal length and transmit count. All tombstones encode
// to the same length, so a burst of deletes lost some of them before they
// ever left their writer (hashicorp/memberlist#263). A tombstone that misses
// the fast path has to reach every node by push/pull within its TTL, or the
// record it deleted comes back; at a hundred nodes it did not.
//
// Tombstones are encoded when sent, not when queued, so that the residual
// life they carry is the sender's: a tombstone that waited in the queue does
// not outlive its sender's copy at the receiver.
//
// A record that encodes to more than maxRecordSize can never be sent (it
// would not fit in a packet however empty), so take drops it with a warning
// instead of keeping it queued forever; push/pull still carries it. Local
// writes are checked against that size before they are made; such records
// only come from peers that did not check.

import (
	"log/slog"
	"math"
	"sync"
	"time"
)

// broadcastQueue is safe for concurrent use; no method blocks on anything
// but mu.
type broadcastQueue struct {
	retransmitMult int
	numNodes       func() int
	now            func() time.Time
	log            *slog.Logger

	mu sync.Mutex
	// Guarded by mu:
	queued map[key]*queuedRecord
	tiers  [][]*queuedRecord // tiers[n]: records sent n times, oldest first; may hold superseded ones
}

type queuedRecord struct {
	rec        wireRecord
	msg        []byte    // live records: the encoding
	reapAt     time.Time // tombstones: when the sender reaps it
	transmits  int
	superseded bool
}

func newBroadcastQueue(retransmitMult int, numNodes func() int, log *slog.Logger) *broadcastQueue {
	return &broadcastQueue{
		retransmitMult: retransmitMult,
		numNodes:       numNodes,
		now:            time.Now,
		log:            log,
		queued:         make(map[key]*queuedRecord),
	}
}

// retransmitLimit is memberlist's: how many times each node sends a record
// for it to reach all n nodes with high probability.
func retransmitLimit(mult, n int) int {
	return mult * int(math.Ceil(math.Log10(float64(n+1))))
}

// push queues records, each replacing any queued record of its key.
func (q *broadcastQueue) push(recs []wireRecord) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for _, r := range recs {
		m := &queuedRecord{rec: r}
		if r.Deleted {
			m.reapAt = now.Add(r.Residual)
		} else {
			m.msg = encodeRecord(&r)
		}
		k := r.Endpoint.key()
		if old := q.queued[k]; old != nil {
			old.superseded = true
		}
		q.queued[k] = m
		if len(q.tiers) == 0 {
			q.tiers = append(q.tiers, nil)
		}
		q.tiers[0] = append(q.tiers[0], m)
	}
}

// take returns encoded records totalling at most limit bytes, least sent
// first, and counts them as sent once more.
func (q *broadcastQueue) take(limit int) [][]byte {
	out, dropped := q.takeSome(limit)
	for _, d := range dropped {
		q.log.Warn("dropping a gossip record too large to send; push/pull still carries it",
			"network", d.rec.Endpoint.Network, "endpoint", d.rec.Endpoint.ID,
			"writer", d.rec.Version.Writer, "bytes", d.size, "limit", maxRecordSize)
	}
	return out
}

type oversizedRecord struct {
	rec  *wireRecord
	size int
}

// takeSome is take without the logging, which waits until mu is released.
func (q *broadcastQueue) takeSome(limit int) (out [][]byte, dropped []oversizedRecord) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.queued) == 0 {
		q.tiers = nil // only superseded records left
		return nil, nil
	}
	maxSends := retransmitLimit(q.retransmitMult, q.numNodes())
	now := q.now()
	var sent []*queuedRecord
	for n := 0; n < len(q.tiers) && limit > 0; n++ {
		kept := q.tiers[n][:0]
		for _, m := range q.tiers[n] {
			if m.superseded {
				continue
			}
			msg, ok := m.encode(now)
			if !ok || m.transmits >= maxSends {
				q.forgetLocked(m)
				continue
			}
			if len(msg) > maxRecordSize {
				q.forgetLocked(m)
				dropped = append(dropped, oversizedRecord{&m.rec, len(msg)})
				continue
			}
			if len(msg) > limit {
				kept = append(kept, m)
				continue
			}
			limit -= len(msg)
			out = append(out, msg)
			sent = append(sent, m)
		}
		clear(q.tiers[n][len(kept):])
		q.tiers[n] = kept
	}
	for _, m := range sent {
		m.transmits++
		if m.transmits >= maxSends {
			q.forgetLocked(m)
			continue
		}
		for len(q.tiers) <= m.transmits {
			q.tiers = append(q.tiers, nil)
		}
		q.tiers[m.transmits] = append(q.tiers[m.transmits], m)
	}
	return out, dropped
}

// forgetLocked drops m, which is out of every tier or about to be.
func (q *broadcastQueue) forgetLocked(m *queuedRecord) {
	if k := m.rec.Endpoint.key(); q.queued[k] == m {
		delete(q.queued, k)
	}
}

// encode returns the record as sent now, and false for a tombstone whose
// time is up.
func (m *queuedRecord) encode(now time.Time) ([]byte, bool) {
	if !m.rec.Deleted {
		return m.msg, true
	}
	left := m.reapAt.Sub(now)
	if left <= 0 {
		return nil, false
	}
	r := m.rec
	r.Residual = left
	return encodeRecord(&r), true
}
