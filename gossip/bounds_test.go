package gossip

import (
	"encoding/binary"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// Finding 7: decodeState preallocated a record per claimed byte. A state
// of 1 MB claiming a million records (each at least a byte, so the old
// check passed) now allocates about what it holds, and is refused.
func TestDecodeStateAllocatesWhatItHolds(t *testing.T) {
	const n = 1 << 20
	b := []byte{stateVersion}
	b = binary.AppendUvarint(b, 1)
	b = binary.AppendUvarint(b, n-1)
	b = append(b, make([]byte, n)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := decodeState(b)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a state of a million empty records decoded")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("decoding a %d-byte state allocated %d bytes", len(b), grew)
	}
	huge := binary.AppendUvarint(binary.AppendUvarint([]byte{stateVersion}, 1), maxEntries+1)
	if _, _, err := decodeState(append(huge, make([]byte, maxEntries+1)...)); err == nil {
		t.Error("a state claiming more records than a table holds decoded")
	}
}

// The table holds at most maxEntries endpoints: a record about another is
// refused and counted, while records about endpoints it holds still apply.
func TestTableBounded(t *testing.T) {
	tb := newTable("a", 20*time.Second)
	recs := make([]wireRecord, maxEntries)
	for i := range recs {
		recs[i] = rec("e"+strconv.Itoa(i), uint64(i+1), "b", "b", i%250+1)
	}
	tb.applyAll(recs, false)
	if got := len(tb.endpoints("net")); got != maxEntries {
		t.Fatalf("table holds %d, want %d", got, maxEntries)
	}
	tb.applyAll([]wireRecord{rec("one-more", maxEntries+5, "b", "b", 1)}, false)
	if got, _ := tb.refused(); got != 1 {
		t.Errorf("refused %d records of a full table, want 1", got)
	}
	tb.applyAll([]wireRecord{rec("e0", maxEntries+6, "b", "b", 7)}, false)
	if eps := tb.endpoints("net"); len(eps) != maxEntries {
		t.Errorf("after an update the table holds %d", len(eps))
	}
}

// Queues drop their oldest items when full, and count them; a subscriber
// that falls behind gets one snapshot in place of the events it missed.
func TestQueuesBounded(t *testing.T) {
	var dropped atomic.Uint64
	q := newFIFO[int](&dropped)
	for i := range maxQueue + 10 {
		q.push(i)
	}
	batch, _ := q.take(nil)
	if len(batch) != maxQueue || batch[0] != 10 || dropped.Load() != 10 {
		t.Errorf("queue of %d from %d, %d dropped; want %d from 10, 10 dropped", len(batch), batch[0], dropped.Load(), maxQueue)
	}

	tb := newTable("a", 20*time.Second)
	s := newSubscription("net", &dropped)
	tb.subscribe(s) // not consumed: its queue fills
	for i := range maxQueue + 3 {
		tb.applyAll([]wireRecord{rec("e"+strconv.Itoa(i), uint64(i+1), "b", "b", i%250+1)}, false)
	}
	batch2, _ := s.queue.take(nil)
	if len(batch2) > maxQueue || batch2[0].Kind != EventSnapshot {
		t.Fatalf("subscription queue of %d events, the first a %v", len(batch2), batch2[0].Kind)
	}
	// The events, applied in order, give the table's view.
	view := map[string]bool{}
	for _, ev := range batch2 {
		switch ev.Kind {
		case EventSnapshot:
			clear(view)
			for _, e := range ev.Snapshot {
				view[e.ID] = true
			}
		case EventAdd, EventUpdate:
			view[ev.Endpoint.ID] = true
		case EventDelete:
			delete(view, ev.Endpoint.ID)
		}
	}
	if len(view) != maxQueue+3 {
		t.Errorf("the subscriber's view holds %d endpoints, the table %d", len(view), maxQueue+3)
	}
}
