package gossip

import (
	"sync"
	"sync/atomic"
)

// maxQueue bounds every queue: a peer that floods the cluster with
// changes costs dropped items (counted), never unbounded memory. Nothing
// is lost for good: push/pull repairs the fanout, the orphan sweep the
// member events, and a subscription's events are replaced by a snapshot
// (Subscription.push).
const maxQueue = 1 << 16

// fifo is a queue between a producer that must never block (a memberlist
// callback, or the table under its lock) and one consumer goroutine.
type fifo[T any] struct {
	wake    chan struct{}  // capacity 1: "items is not empty"
	dropped *atomic.Uint64 // shared by the queues of a Cluster

	mu sync.Mutex
	// Guarded by mu:
	items []T
}

func newFIFO[T any](dropped *atomic.Uint64) *fifo[T] {
	return &fifo[T]{wake: make(chan struct{}, 1), dropped: dropped}
}

// push appends v, dropping the oldest item when the queue is full. It
// never blocks.
func (q *fifo[T]) push(v T) {
	q.mu.Lock()
	if len(q.items) >= maxQueue {
		q.items = q.items[1:]
		q.dropped.Add(1)
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.signal()
}

// full reports whether the next push would drop an item.
func (q *fifo[T]) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) >= maxQueue
}

// reset replaces everything queued with v, counting the items dropped.
func (q *fifo[T]) reset(v T) {
	q.mu.Lock()
	q.dropped.Add(uint64(len(q.items)))
	q.items = append(q.items[:0:0], v)
	q.mu.Unlock()
	q.signal()
}

func (q *fifo[T]) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take waits until items are queued or done is closed, and returns everything
// queued, in order; ok is false once done is closed.
func (q *fifo[T]) take(done <-chan struct{}) (batch []T, ok bool) {
	select {
	case <-done:
		return nil, false
	case <-q.wake:
	}
	q.mu.Lock()
	batch, q.items = q.items, nil
	q.mu.Unlock()
	return batch, true
}
