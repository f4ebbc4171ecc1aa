package gossip

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func tombstone(id string, ltime uint64) wireRecord {
	return wireRecord{
		Version:  version{LTime: ltime, Writer: "w"},
		Deleted:  true,
		Residual: 20 * time.Second,
		Endpoint: Endpoint{Network: "net", ID: id},
	}
}

// len returns how many records are waiting to be sent.
func (q *broadcastQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queued)
}

// sentRecords decodes what take returned.
func sentRecords(t *testing.T, msgs [][]byte) []wireRecord {
	t.Helper()
	if len(msgs) == 0 {
		return nil
	}
	recs, err := decodeMessage(packRecords(msgs))
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestBroadcastQueueKeepsEqualLengthRecords replays the sequence that makes
// memberlist's TransmitLimitedQueue drop a broadcast: a record replaced while
// it is alone in the queue, then more records of the same encoded length.
func TestBroadcastQueueKeepsEqualLengthRecords(t *testing.T) {
	q := newBroadcastQueue(3, func() int { return 100 }, testLogger())
	q.push([]wireRecord{tombstone("a", 1)})
	q.push([]wireRecord{tombstone("a", 2)})
	q.push([]wireRecord{tombstone("b", 3), tombstone("c", 4)})
	if n := q.len(); n != 3 {
		t.Fatalf("%d records queued, want 3", n)
	}
	got := make(map[string]int)
	for range 100 {
		for _, r := range sentRecords(t, q.take(1400)) {
			got[fmt.Sprintf("%s@%d", r.Endpoint.ID, r.Version.LTime)]++
		}
	}
	want := map[string]int{"a@2": 9, "b@3": 9, "c@4": 9}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sent %v, want %v", got, want)
	}
}

// TestBroadcastQueueSendsEveryRecord pushes bursts of records, replacing some
// while they are queued, and takes them with packet budgets too small for
// the whole queue: every record not replaced must go out exactly
// retransmitLimit times, and no replaced one after its replacement.
func TestBroadcastQueueSendsEveryRecord(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const nodes = 100
	limit := retransmitLimit(3, nodes)
	q := newBroadcastQueue(3, func() int { return nodes }, testLogger())
	latest := make(map[string]uint64) // key → last pushed LTime
	sends := make(map[string]int)     // "key@ltime" → times sent
	ltime := uint64(0)
	for round := range 2000 {
		if round < 1500 {
			for range rng.IntN(8) {
				ltime++
				id := fmt.Sprintf("k%d", rng.IntN(200))
				r := tombstone(id, ltime)
				if rng.IntN(2) == 0 {
					r = wireRecord{Version: version{LTime: ltime, Writer: "w"}, Endpoint: ep("net", id, rng.IntN(500))}
				}
				latest[id] = ltime
				q.push([]wireRecord{r})
			}
		}
		for _, r := range sentRecords(t, q.take(100+rng.IntN(1300))) {
			if r.Version.LTime < latest[r.Endpoint.ID] {
				t.Fatalf("sent %s@%d after it was replaced by @%d", r.Endpoint.ID, r.Version.LTime, latest[r.Endpoint.ID])
			}
			sends[fmt.Sprintf("%s@%d", r.Endpoint.ID, r.Version.LTime)]++
		}
	}
	if n := q.len(); n != 0 {
		t.Fatalf("%d records still queued", n)
	}
	for id, lt := range latest {
		if n := sends[fmt.Sprintf("%s@%d", id, lt)]; n != limit {
			t.Errorf("%s@%d sent %d times, want %d", id, lt, n, limit)
		}
	}
}

// TestBroadcastQueueTombstoneResidual checks that a tombstone carries the
// life it has left when it is sent, and is not sent once that is over.
func TestBroadcastQueueTombstoneResidual(t *testing.T) {
	now := time.Now()
	q := newBroadcastQueue(3, func() int { return 10 }, testLogger())
	q.now = func() time.Time { return now }
	q.push([]wireRecord{tombstone("a", 1)})
	now = now.Add(15 * time.Second)
	recs := sentRecords(t, q.take(1400))
	if len(recs) != 1 || recs[0].Residual != 5*time.Second {
		t.Fatalf("sent %+v, want one tombstone with 5s left", recs)
	}
	now = now.Add(5 * time.Second)
	if recs := sentRecords(t, q.take(1400)); len(recs) != 0 {
		t.Fatalf("sent %+v after the tombstone's time was up", recs)
	}
	if n := q.len(); n != 0 {
		t.Fatalf("%d records still queued", n)
	}
}

// TestBroadcastQueueDropsOversizedRecords: a record too large for any packet
// (relayed from a peer that did not check its size) is dropped, not kept
// queued forever, and does not hold up the others.
func TestBroadcastQueueDropsOversizedRecords(t *testing.T) {
	q := newBroadcastQueue(3, func() int { return 10 }, testLogger())
	big := wireRecord{Version: version{LTime: 1, Writer: "w"}, Endpoint: ep("net", "big", 1)}
	big.Endpoint.Sandbox = strings.Repeat("s", 2000)
	bigTomb := tombstone(strings.Repeat("i", 2000), 2)
	small := wireRecord{Version: version{LTime: 3, Writer: "w"}, Endpoint: ep("net", "small", 3)}
	q.push([]wireRecord{big, bigTomb, small})
	var sent []string
	for range 20 {
		for _, r := range sentRecords(t, q.take(1400)) {
			sent = append(sent, r.Endpoint.ID)
		}
	}
	if want := retransmitLimit(3, 10); len(sent) != want || sent[0] != "small" {
		t.Errorf("sent %v, want small %d times", sent, want)
	}
	if n := q.len(); n != 0 {
		t.Errorf("%d records still queued", n)
	}
}
