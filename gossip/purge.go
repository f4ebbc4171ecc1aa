package gossip

// The table's housekeeping: the records of members that left or failed,
// and tombstones past their time.

import (
	"maps"
	"time"
)

// purgeOwner removes every live record written by node, which has left or
// failed, and refuses its records until forgetPurged or TombstoneTTL.
func (t *table) purgeOwner(node string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.purgeOwnerLocked(node)
}

func (t *table) purgeOwnerLocked(node string) int {
	if node == t.self {
		return 0
	}
	reapAt := t.now().Add(t.tombstoneTTL)
	t.purged[node] = reapAt
	n := 0
	for netID, m := range t.nets {
		for id, e := range m {
			if e.state == stateLive && e.ver.Writer == node {
				t.replaceLocked(key{netID, id}, &entry{ver: e.ver, state: statePurged, reapAt: reapAt})
				n++
			}
		}
	}
	delete(t.absentSince, node)
	return n
}

// forgetPurged drops the purged entries of node, which is back, so that its
// records are accepted again. It reports whether node had been purged (and
// records of it may have been refused since).
func (t *table) forgetPurged(node string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, found := t.purged[node]
	delete(t.purged, node)
	for netID, m := range t.nets {
		for id, e := range m {
			if e.state == statePurged && e.ver.Writer == node {
				delete(m, id)
				t.size--
				found = true
			}
		}
		if len(m) == 0 {
			delete(t.nets, netID)
		}
	}
	return found
}

// sweepOrphans purges the records of owners that have not been in the member
// list for grace. Failure events alone are not enough: a node that joined
// after another one failed never hears of the failure, yet may receive that
// node's records from a peer that has not noticed it yet.
func (t *table) sweepOrphans(alive map[string]bool, grace time.Duration) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	owners := make(map[string]bool)
	for _, m := range t.nets {
		for _, e := range m {
			if e.state == stateLive && e.ver.Writer != t.self && !alive[e.ver.Writer] {
				owners[e.ver.Writer] = true
			}
		}
	}
	purged := 0
	for o := range owners {
		since, ok := t.absentSince[o]
		switch {
		case !ok:
			t.absentSince[o] = now
		case now.Sub(since) >= grace:
			purged += t.purgeOwnerLocked(o)
		}
	}
	maps.DeleteFunc(t.absentSince, func(o string, _ time.Time) bool { return !owners[o] })
	return purged
}

// reap drops tombstones, purged entries and purged owners whose time is up.
func (t *table) reap() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	maps.DeleteFunc(t.purged, func(_ string, reapAt time.Time) bool { return !now.Before(reapAt) })
	n := 0
	for netID, m := range t.nets {
		for id, e := range m {
			if e.state != stateLive && !now.Before(e.reapAt) {
				delete(m, id)
				t.size--
				n++
			}
		}
		if len(m) == 0 {
			delete(t.nets, netID)
		}
	}
	return n
}
