package gossip

import (
	"testing"
	"time"
)

// rec returns a live record of net/id written by writer at ltime, for an
// endpoint on host node.
func rec(id string, ltime uint64, writer, node string, i int) wireRecord {
	e := ep("net", id, i)
	e.Node = node
	return wireRecord{Version: version{LTime: ltime, Writer: writer}, Endpoint: e}
}

// TestStaleOwnWriteNeverAdoptsOthersRecord: when a node receives a write of
// its own it does not remember (made before a restart) over a key whose
// record another node wrote, it must not rewrite that record under its own
// name: the record would no longer go away with its writer.
func TestStaleOwnWriteNeverAdoptsOthersRecord(t *testing.T) {
	stale := map[string]wireRecord{
		"put":    rec("k", 7, "a", "a", 2),
		"delete": {Version: version{LTime: 7, Writer: "a"}, Deleted: true, Residual: 10 * time.Second, Endpoint: Endpoint{Network: "net", ID: "k"}},
	}
	for name, r := range stale {
		t.Run(name, func(t *testing.T) {
			tb := newTable("a", 20*time.Second)
			tb.applyAll([]wireRecord{rec("k", 5, "b", "b", 1)}, true)
			out := tb.applyAll([]wireRecord{r}, true)
			for _, o := range out {
				if !o.Deleted && o.Version.Writer == "a" {
					t.Errorf("broadcast %s/%s as a live write of a: %s", o.Endpoint.Network, o.Endpoint.ID, fmtEndpoint(&o.Endpoint))
				}
			}
			tb.purgeOwner("b")
			if eps := tb.endpoints("net"); len(eps) != 0 {
				t.Errorf("after b is purged, net holds %s (node %s)", eps[0].ID, eps[0].Node)
			}
		})
	}
}

// TestStaleOwnWriteReassertsOwnRecord: the override still re-asserts what
// this node holds when the record is its own.
func TestStaleOwnWriteReassertsOwnRecord(t *testing.T) {
	tb := newTable("a", 20*time.Second)
	mine := ep("net", "k", 1)
	if _, ok, _ := tb.put(mine); !ok {
		t.Fatal("put stored nothing")
	}
	out := tb.applyAll([]wireRecord{rec("k", 7, "a", "a", 2)}, true)
	if len(out) != 1 || out[0].Deleted || out[0].Version.Writer != "a" || out[0].Version.LTime <= 7 || !out[0].Endpoint.Equal(&mine) {
		t.Fatalf("broadcast %+v, want a fresh write of a's own record", out)
	}
	if eps := tb.endpoints("net"); len(eps) != 1 || !eps[0].Equal(&mine) {
		t.Fatalf("net holds %v, want a's own record", eps)
	}
}

// TestPurgedOwnerRecordsRefused: once a writer is purged, its records are
// refused whatever their version, until it comes back or TombstoneTTL
// passes.
func TestPurgedOwnerRecordsRefused(t *testing.T) {
	now := time.Now()
	tb := newTable("a", 20*time.Second)
	tb.now = func() time.Time { return now }
	tb.applyAll([]wireRecord{rec("k1", 5, "b", "b", 1)}, true)
	if n := tb.purgeOwner("b"); n != 1 {
		t.Fatalf("purged %d records, want 1", n)
	}
	// A peer that has not noticed b's failure relays newer writes of b.
	out := tb.applyAll([]wireRecord{rec("k1", 9, "b", "b", 2), rec("k2", 10, "b", "b", 3)}, true)
	if eps := tb.endpoints("net"); len(eps) != 0 || len(out) != 0 {
		t.Fatalf("records of purged b accepted: table %v, broadcast %v", eps, out)
	}
	if !tb.forgetPurged("b") {
		t.Fatal("forgetPurged(b) = false after b was purged")
	}
	tb.applyAll([]wireRecord{rec("k2", 11, "b", "b", 3)}, true)
	if eps := tb.endpoints("net"); len(eps) != 1 || eps[0].ID != "k2" {
		t.Fatalf("after b came back, net holds %v, want k2", eps)
	}

	// A purged owner that never comes back is forgotten by reap after the
	// TTL (sweepOrphans takes over from there).
	tb.purgeOwner("c")
	now = now.Add(20 * time.Second)
	tb.reap()
	tb.applyAll([]wireRecord{rec("k3", 12, "c", "c", 4)}, true)
	if eps := tb.endpoints("net"); len(eps) != 2 {
		t.Fatalf("net holds %v after c's purge expired, want k2 and k3", eps)
	}
}

// Finding 5 of issue 19: a record (or a push/pull state) with a Lamport
// time of MaxUint64 used to push the clock to its end, where the next
// write wrapped it to 0 and lost to everything. A time that far ahead is
// refused now, and counted; writes go on winning.
func TestLamportJumpRefused(t *testing.T) {
	tb := newTable("a", 20*time.Second)
	tb.applyAll([]wireRecord{rec("k", 5, "b", "b", 1)}, true)
	before := tb.clock
	tb.witness(^uint64(0))
	if out := tb.applyAll([]wireRecord{rec("k", ^uint64(0), "c", "c", 2)}, true); len(out) != 0 {
		t.Errorf("a record at MaxUint64 was accepted: %+v", out)
	}
	if tb.clock != before || tb.clockJumpsRefused() != 2 {
		t.Errorf("clock %d (was %d), %d refused; want it unmoved and 2 refused", tb.clock, before, tb.clockJumpsRefused())
	}
	if eps := tb.endpoints("net"); len(eps) != 1 || eps[0].Node != "b" {
		t.Fatalf("net holds %v, want b's record", eps)
	}
	// This node's next write is newer than b's, as it should be.
	mine := ep("net", "m", 3)
	r, ok, err := tb.put(mine)
	if !ok || err != nil {
		t.Fatalf("put stored nothing: %v", err)
	}
	if r.Version.LTime <= 5 {
		t.Errorf("a's write at %d, not after b's at 5", r.Version.LTime)
	}
	// A node joining a cluster far ahead of it takes its clock.
	fresh := newTable("z", 20*time.Second)
	fresh.witness(1 << 31)
	if fresh.clock != 1<<31 {
		t.Errorf("a fresh node witnessing 2^31 has clock %d", fresh.clock)
	}
}
